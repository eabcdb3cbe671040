package httpapi

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// An echoed text is cut at problemTextMax bytes, back to the start of a
// rune when the cut would split a valid one; bytes that start no rune
// (invalid UTF-8) are cut where the limit falls, so the text keeps what
// names it: a long invalid parameter name still locates "query.<name>",
// not "query" alone.
func TestCutTextKeepsTheLimitWhateverTheBytes(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		keep     int // bytes of in kept before the ellipsis
	}{
		{"short", "query.limit", -1},
		{"exactly the limit", strings.Repeat("a", problemTextMax), -1},
		{"ascii", strings.Repeat("a", problemTextMax+10), problemTextMax},
		{"invalid bytes", "query." + strings.Repeat("\x9d", 300), problemTextMax},
		{"a rune across the limit", strings.Repeat("a", problemTextMax-1) + "€" + "b", problemTextMax - 1},
		{"U+FFFD across the limit", strings.Repeat("a", problemTextMax-2) + "\uFFFD", problemTextMax - 2},
		{"a rune ending at the limit", strings.Repeat("a", problemTextMax-3) + "€" + "b", problemTextMax},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cutText(tc.in)
			want := tc.in
			if tc.keep >= 0 {
				want = tc.in[:tc.keep] + "…"
			}
			if got != want {
				t.Fatalf("cutText kept %d bytes, want %d", len(strings.TrimSuffix(got, "…")), tc.keep)
			}
			if utf8.ValidString(tc.in) && !utf8.ValidString(got) {
				t.Fatalf("cutText split a rune: %q", got)
			}
		})
	}
}
