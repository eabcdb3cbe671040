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
