package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Body size limits. A usage batch of 1000 events at the field limits fits
// usageBodyMax; every other write is small.
const (
	bodyMax      = 64 << 10
	usageBodyMax = 4 << 20
)

// decodeOptions make a body mean exactly one thing. encoding/json (v1)
// replaced invalid UTF-8 with U+FFFD (so ids "g\xff" and "g\xfe" became
// one), let the last of two equal keys win and matched "AMOUNT" to
// "amount". json v2 refuses invalid UTF-8 and duplicate names and matches
// names exactly by default; unknown members are refused here, since a
// misspelt optional field would otherwise be dropped silently.
var decodeOptions = jsonv2.RejectUnknownMembers(true)

// decodeJSON reads a JSON body into dst, refusing bodies over limit,
// trailing data and anything decodeOptions refuses, each with a 4xx
// problem naming where.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, dst any) error {
	body, p := readBody(w, r, limit, nil)
	if p != nil {
		return p
	}
	if p := decodeBody(body, dst); p != nil {
		return p
	}
	return nil
}

// readBody appends the body to buf and returns it, or the problem: a body
// over limit, or one that could not be read. buf lets a caller reuse a
// buffer (POST /v1/usage does); the loop is io.ReadAll's, which would
// allocate its own.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, buf []byte) ([]byte, *Problem) {
	// The body is read as JSON whatever the Content-Type says: curl -d sends
	// a form type by default, and refusing that helps nobody.
	reader := http.MaxBytesReader(w, r.Body, limit)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // room to read into
		}
		n, err := reader.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case err == io.EOF:
			return buf, nil
		case err != nil:
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return buf, newProblem(http.StatusRequestEntityTooLarge, "request-too-large", fmt.Sprintf("the body exceeds %d bytes", limit))
			}
			return buf, newProblem(http.StatusBadRequest, "invalid-request", "the body could not be read")
		}
	}
}

// decodeBody decodes one JSON value into dst, or returns the problem.
func decodeBody(body []byte, dst any) *Problem {
	if len(bytes.TrimSpace(body)) == 0 {
		return newProblem(http.StatusBadRequest, "invalid-json", "the body is empty")
	}
	if err := jsonv2.Unmarshal(body, dst, decodeOptions); err != nil {
		return decodeProblem(body, err)
	}
	return nil
}

// decodeProblem names the location of a decode error in the body.
func decodeProblem(body []byte, err error) *Problem {
	p := newProblem(http.StatusBadRequest, "invalid-json", "the body is not valid JSON for this request")
	var semantic *jsonv2.SemanticError
	var syntactic *jsontext.SyntacticError
	switch {
	case errors.As(err, &semantic):
		location := bodyLocation(body, semantic.JSONPointer)
		switch {
		case errors.Is(semantic.Err, jsonv2.ErrUnknownName):
			p.Errors = []ProblemError{{Location: location, Message: "is not a known field"}}
		case semantic.GoType != nil:
			p.Errors = []ProblemError{{Location: location, Message: "must be " + jsonTypeName(semantic.GoType), Value: semantic.JSONKind.String()}}
		default:
			p.Errors = []ProblemError{{Location: location, Message: "cannot be read"}}
		}
	case errors.As(err, &syntactic):
		location := bodyLocation(body, syntactic.JSONPointer)
		switch {
		case errors.Is(syntactic.Err, jsontext.ErrDuplicateName):
			p.Errors = []ProblemError{{Location: location, Message: "is given twice"}}
		case syntactic.Err != nil && strings.Contains(syntactic.Err.Error(), "invalid UTF-8"):
			p.Errors = []ProblemError{{Location: location, Message: "is not valid UTF-8"}}
		default:
			p.Detail = fmt.Sprintf("invalid JSON at byte %d: %v", syntactic.ByteOffset, syntactic.Err)
		}
	default:
		// Not reached with the request types here; a generic answer keeps
		// Go internals out of the problem.
		p.Detail = "the body is not valid JSON for this request"
	}
	return p
}

// bodyLocation turns a JSON pointer (/events/1/bogus) into a location
// (body.events[1].bogus). The body itself says whether a token indexes an
// array or names a member, so a custom key "1" stays .1, not [1].
func bodyLocation(body []byte, pointer jsontext.Pointer) string {
	var b strings.Builder
	b.WriteString("body")
	dec := jsontext.NewDecoder(bytes.NewReader(body), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	walking := true
	for token := range pointer.Tokens() {
		isIndex := false
		if walking {
			isIndex, walking = seek(dec, token)
		} else {
			_, err := strconv.ParseUint(token, 10, 64)
			isIndex = err == nil
		}
		if isIndex {
			b.WriteString("[" + token + "]")
		} else {
			b.WriteString("." + token)
		}
	}
	return b.String()
}

// seek moves dec into the value at token of the container it is at, and
// reports whether the container was an array; found is false when the body
// cannot be followed (the caller then guesses from the token's form).
func seek(dec *jsontext.Decoder, token string) (isIndex, found bool) {
	open, err := dec.ReadToken()
	if err != nil {
		return false, false
	}
	switch open.Kind() {
	case '[':
		index, err := strconv.Atoi(token)
		if err != nil {
			return false, false
		}
		for range index {
			if dec.SkipValue() != nil {
				return true, false
			}
		}
		return true, true
	case '{':
		for {
			name, err := dec.ReadToken()
			if err != nil || name.Kind() != '"' {
				return false, false
			}
			if name.String() == token {
				return false, true
			}
			if dec.SkipValue() != nil {
				return false, false
			}
		}
	}
	return false, false
}

// jsonTypeName says what JSON a Go type takes, in JSON's words.
func jsonTypeName(t reflect.Type) string {
	if t == reflect.TypeFor[Amount]() {
		return "a decimal number or a decimal string"
	}
	if t == reflect.TypeFor[Timestamp]() {
		return "an RFC 3339 time string or null"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Pointer:
		return jsonTypeName(t.Elem())
	}
	return "a number"
}
