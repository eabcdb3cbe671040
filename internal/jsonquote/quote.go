// Package jsonquote quotes strings exactly as encoding/json does by
// default, without its reflection and allocations. The commit encoder and
// the client's event encoder both write JSON that must equal
// json.Marshal's byte for byte (the commit's hash chains on it; the client
// is fuzzed against it), so both use this one implementation.
package jsonquote

import (
	"slices"
	"unicode/utf8"
)

// htmlSafe holds the ASCII bytes encoding/json writes as they are:
// printable ones except the quote, the backslash and <, >, & (escaped so
// that JSON embedded in HTML cannot close a script).
var htmlSafe = func() (safe [utf8.RuneSelf]bool) {
	for b := ' '; b < utf8.RuneSelf; b++ {
		safe[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return safe
}()

const hexDigits = "0123456789abcdef"

// Append appends s quoted as encoding/json quotes it by default (its
// appendString): \" \\ \b \f \n \r \t, \u00xx in lowercase hex for other
// control bytes and for <, >, &, \ufffd for each invalid UTF-8 byte, and
// U+2028, U+2029 escaped (they end lines in JavaScript); the rest as is.
func Append(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if htmlSafe[b] {
				i++
				continue
			}
			dst = appendEscapedByte(append(dst, s[start:i]...), b)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(append(dst, s[start:i]...), `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(append(dst, s[start:i]...), '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendEscapedByte(dst []byte, b byte) []byte {
	switch b {
	case '\\', '"':
		return append(dst, '\\', b)
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
}

// AppendMap appends m as a JSON object with its keys sorted bytewise, as
// encoding/json sorts map keys. Up to keysOnStack keys (every custom
// dimensions map creditd accepts) are sorted without allocating.
func AppendMap(dst []byte, m map[string]string) []byte {
	var onStack [keysOnStack]string
	keys := onStack[:0]
	if len(m) > keysOnStack {
		keys = make([]string, 0, len(m))
	}
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(Append(dst, k), ':')
		dst = Append(dst, m[k])
	}
	return append(dst, '}')
}

const keysOnStack = 16
