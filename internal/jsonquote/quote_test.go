package jsonquote

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// Append equals json.Marshal on every string: escapes, control bytes, the
// HTML-unsafe bytes, U+2028/U+2029, invalid UTF-8 and random bytes. (The
// commit encoder's and the client's fuzz targets check it further, inside
// what they encode.)
func TestAppendEqualsMarshal(t *testing.T) {
	t.Parallel()
	cases := []string{"", "plain", `"quoted" \back\ `, "\b\f\n\r\t\x00\x01\x1f\x7f", "<a href='x'>&amp;</a>",
		"line\u2028sep\u2029", "\xff\xfe", "a\xc3", "é中文🙂", "\xed\xa0\x80", "\u00e9\u0301"}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		b := make([]byte, rng.IntN(24))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := Append([]byte("x"), s); string(got[1:]) != string(want) || got[0] != 'x' {
			t.Fatalf("Append(%q) = %s, json.Marshal %s", s, got, want)
		}
	}
}

// AppendMap equals json.Marshal on maps, below and above the keys it
// sorts on the stack, with keys that need escaping.
func TestAppendMapEqualsMarshal(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 2, keysOnStack, keysOnStack + 1, 40} {
		m := map[string]string{}
		for len(m) < n {
			k := make([]byte, 1+rng.IntN(6))
			for i := range k {
				k[i] = byte(rng.IntN(256))
			}
			m[string(k)] = string(k[:len(k)/2]) + "<\u2028"
		}
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendMap(nil, m); string(got) != string(want) {
			t.Fatalf("%d keys: AppendMap = %s, json.Marshal %s", n, got, want)
		}
	}
}
