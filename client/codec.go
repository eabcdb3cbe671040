package client

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/internal/jsonquote"
)

// The client encodes every event and decodes every answer; encoding/json
// does both by reflection, which showed up as the client's main CPU cost.
// The code here does the same work by hand for the two types involved and
// is held to encoding/json's exact output and acceptance by the tests in
// codec_test.go (fuzzed against encoding/json itself).

// appendUsageEvent appends ev encoded exactly as json.Marshal(ev) encodes
// it: fields in struct order, the same omitempty rules, the same string
// escaping (HTML-safe). It grows dst once, so with a nil dst the returned
// slice is the only allocation in the common case. A timestamp that RFC
// 3339 cannot express is left to json.Marshal, so the error is its own.
func appendUsageEvent(dst []byte, ev UsageEvent) ([]byte, error) {
	start := len(dst)
	dst = slices.Grow(dst, usageEventSize(ev))
	dst = append(dst, `{"id":`...)
	dst = jsonquote.Append(dst, ev.ID)
	if ev.Timestamp != nil {
		var ok bool
		dst = append(dst, `,"timestamp":`...)
		if dst, ok = appendTime(dst, *ev.Timestamp); !ok {
			return marshalUsageEvent(dst[:start], ev)
		}
	}
	dst = append(dst, `,"amount":`...)
	dst = appendDecimal(dst, ev.Amount)
	dst = appendOptionalString(dst, `,"credit_type":`, ev.CreditType)
	dst = appendOptionalString(dst, `,"module":`, ev.Module)
	dst = appendOptionalString(dst, `,"service":`, ev.Service)
	dst = appendOptionalString(dst, `,"user_id":`, ev.UserID)
	dst = appendOptionalString(dst, `,"workflow_id":`, ev.WorkflowID)
	dst = appendOptionalString(dst, `,"workflow_run_id":`, ev.WorkflowRunID)
	dst = appendOptionalString(dst, `,"endpoint":`, ev.Endpoint)
	if ev.Success != nil {
		dst = append(dst, `,"success":`...)
		dst = strconv.AppendBool(dst, *ev.Success)
	}
	if ev.Quantity != nil {
		dst = append(dst, `,"quantity":`...)
		dst = appendDecimal(dst, *ev.Quantity)
	}
	if len(ev.Custom) > 0 {
		dst = append(dst, `,"custom":`...)
		dst = jsonquote.AppendMap(dst, ev.Custom)
	}
	dst = appendOptionalString(dst, `,"description":`, ev.Description)
	return append(dst, '}'), nil
}

// marshalUsageEvent is the reflective path for what the hand-written one
// does not cover, so that even its errors are encoding/json's.
func marshalUsageEvent(dst []byte, ev UsageEvent) ([]byte, error) {
	data, err := json.Marshal(ev)
	if err != nil {
		return dst, err
	}
	return append(dst, data...), nil
}

// usageEventSize is the encoded size of ev when no string needs escaping
// (and an upper bound for the numbers), so one allocation usually holds it.
func usageEventSize(ev UsageEvent) int {
	n := len(`{"id":"","amount":""}`) + len(ev.ID) + decimalSize(ev.Amount)
	if ev.Timestamp != nil {
		n += len(`,"timestamp":""`) + len(time.RFC3339Nano)
	}
	n += optionalStringSize(`,"credit_type":`, ev.CreditType)
	n += optionalStringSize(`,"module":`, ev.Module)
	n += optionalStringSize(`,"service":`, ev.Service)
	n += optionalStringSize(`,"user_id":`, ev.UserID)
	n += optionalStringSize(`,"workflow_id":`, ev.WorkflowID)
	n += optionalStringSize(`,"workflow_run_id":`, ev.WorkflowRunID)
	n += optionalStringSize(`,"endpoint":`, ev.Endpoint)
	n += optionalStringSize(`,"description":`, ev.Description)
	if ev.Success != nil {
		n += len(`,"success":false`)
	}
	if ev.Quantity != nil {
		n += len(`,"quantity":""`) + decimalSize(*ev.Quantity)
	}
	if len(ev.Custom) > 0 {
		n += len(`,"custom":{}`)
		for k, v := range ev.Custom {
			n += len(`"":"",`) + len(k) + len(v)
		}
	}
	return n
}

func optionalStringSize(key, s string) int {
	if s == "" {
		return 0
	}
	return len(key) + len(s) + 2
}

// appendOptionalString appends key and s unless s is empty (omitempty).
func appendOptionalString(dst []byte, key, s string) []byte {
	if s == "" {
		return dst
	}
	return jsonquote.Append(append(dst, key...), s)
}

// appendTime appends t as time.Time.MarshalJSON does: RFC 3339 with
// nanoseconds, quoted. ok is false when MarshalJSON would fail, checked
// on the formatted text the way time checks it (year of four digits,
// zone offset under 24 h).
func appendTime(dst []byte, t time.Time) (_ []byte, ok bool) {
	dst = append(dst, '"')
	n0 := len(dst)
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	text := dst[n0:]
	if text[len("9999")] != '-' {
		return dst, false
	}
	if last := text[len(text)-1]; last != 'Z' {
		c := text[len(text)-len("Z07:00")]
		hours := 10*(text[len(text)-len("07:00")]-'0') + text[len(text)-len("7:00")] - '0'
		if '0' <= c && c <= '9' || hours >= 24 {
			return dst, false
		}
	}
	return append(dst, '"'), true
}

// decimalExpMax bounds the exponents formatted by hand: beyond it
// Decimal.String runs instead, which prints the same text.
const decimalExpMax = 64

// decimalSize is at least the encoded size of d when formatted by hand.
func decimalSize(d decimal.Decimal) int {
	exp := min(max(int(d.Exponent()), -int(d.Exponent())), decimalExpMax)
	return len(`"-0.`) + d.NumDigits() + exp + len(`"`)
}

// appendDecimal appends d as Decimal.MarshalJSON does: d.String(), quoted
// unless decimal.MarshalJSONWithoutQuotes is set (read at each call, like
// MarshalJSON reads it).
func appendDecimal(dst []byte, d decimal.Decimal) []byte {
	if decimal.MarshalJSONWithoutQuotes {
		return appendDecimalText(dst, d)
	}
	return append(appendDecimalText(append(dst, '"'), d), '"')
}

// appendDecimalText appends d.String() without allocating when the
// coefficient fits an int64 and the exponent is moderate; otherwise it
// calls d.String(). It honours decimal.TrimTrailingZeros and
// decimal.UseScientificNotation as String does.
func appendDecimalText(dst []byte, d decimal.Decimal) []byte {
	exp := int(d.Exponent())
	// Below 19 digits the coefficient is an int64 for sure.
	if d.NumDigits() > 18 || exp > decimalExpMax || exp < -decimalExpMax || exp > 0 && decimal.UseScientificNotation {
		return append(dst, d.String()...)
	}
	coef := d.CoefficientInt64()
	if exp >= 0 {
		dst = strconv.AppendInt(dst, coef, 10)
		if coef != 0 {
			dst = appendZeros(dst, exp)
		}
		return dst
	}
	if coef < 0 {
		dst = append(dst, '-')
		coef = -coef
	}
	var buf [20]byte
	return appendFraction(dst, strconv.AppendInt(buf[:0], coef, 10), -exp)
}

// appendFraction appends digits/10^places in plain notation, as
// Decimal.String does for a negative exponent.
func appendFraction(dst, digits []byte, places int) []byte {
	intPart, leadingZeros, frac := []byte("0"), 0, digits
	if len(digits) > places {
		intPart, frac = digits[:len(digits)-places], digits[len(digits)-places:]
	} else {
		leadingZeros = places - len(digits)
	}
	if decimal.TrimTrailingZeros {
		for len(frac) > 0 && frac[len(frac)-1] == '0' {
			frac = frac[:len(frac)-1]
		}
		if len(frac) == 0 {
			leadingZeros = 0
		}
	}
	dst = append(dst, intPart...)
	if leadingZeros+len(frac) > 0 {
		dst = appendZeros(append(dst, '.'), leadingZeros)
		dst = append(dst, frac...)
	}
	return dst
}

func appendZeros(dst []byte, n int) []byte {
	for range n {
		dst = append(dst, '0')
	}
	return dst
}

// decodeResults parses creditd's answer to POST /v1/usage, {"results":
// [...]} among other members, as json.Unmarshal into
// struct{ Results []Result } would: the same inputs are refused (any
// syntax error, nesting deeper than encoding/json's 10000 levels, a value
// of the wrong type for a known member), unknown members are skipped,
// keys match case-insensitively (with encoding/json's Unicode folds),
// null leaves a field as it is, a repeated member overwrites (a repeated
// "results" array decodes into the elements the previous one left, as
// encoding/json reuses its slice), and strings are unescaped alike.
// want sizes the slice; the caller still checks the count.
//
// The strings of the results are cut from one copy of data rather than
// allocated one by one, so a Result that is kept keeps the whole answer
// (a few KB) alive.
func decodeResults(data []byte, want int) ([]Result, error) {
	d := resultsDecoder{data: data, want: min(max(want, 0), BatchSizeMax)}
	if err := d.top(); err != nil {
		return nil, err
	}
	d.skipSpace()
	if d.pos != len(d.data) {
		return nil, d.syntaxError("after top-level value")
	}
	return d.results, nil
}

// maxNestingDepth is encoding/json's limit, kept so that both refuse the
// same inputs.
const maxNestingDepth = 10000

// errAnswerType: the answer is valid JSON but not shaped as expected.
var errAnswerType = errors.New("client: answer value of unexpected type")

type resultsDecoder struct {
	data  []byte
	pos   int
	depth int
	want  int
	// all holds every element the "results" arrays decoded into, results
	// the ones the last array had (see decodeResults).
	all     []Result
	results []Result
	// text is string(data), made on first need.
	text    string
	scratch []byte
}

func (d *resultsDecoder) syntaxError(where string) error {
	if d.pos >= len(d.data) {
		return errors.New("client: answer ends unexpectedly")
	}
	return errors.New("client: answer has invalid character " + strconv.QuoteRune(rune(d.data[d.pos])) + " " + where)
}

func (d *resultsDecoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, or 0 at the end.
func (d *resultsDecoder) peek() byte {
	d.skipSpace()
	if d.pos == len(d.data) {
		return 0
	}
	return d.data[d.pos]
}

// top decodes the top-level value: the answer object, or null (no results).
func (d *resultsDecoder) top() error {
	switch d.peek() {
	case '{':
		return d.object(d.answerMember)
	case 'n':
		return d.literal("null")
	}
	return d.mistyped()
}

// mistyped checks the value at hand, so a syntax error still reads as one,
// then refuses it for its type, as encoding/json would.
func (d *resultsDecoder) mistyped() error {
	if err := d.skipValue(); err != nil {
		return err
	}
	return errAnswerType
}

// object decodes an object, handing each member's key (unescaped) to
// member, which decodes the value. member must be done with key before
// decoding: an escaped key lives in d.scratch, which nested keys reuse.
func (d *resultsDecoder) object(member func(key []byte) error) error {
	if err := d.open(); err != nil {
		return err
	}
	if d.peek() == '}' {
		return d.close()
	}
	for {
		if d.peek() != '"' {
			return d.syntaxError("looking for beginning of object key string")
		}
		raw, plain, err := d.scanString()
		if err != nil {
			return err
		}
		key := raw
		if !plain {
			d.scratch = unescape(d.scratch[:0], raw)
			key = d.scratch
		}
		if d.peek() != ':' {
			return d.syntaxError("after object key")
		}
		d.pos++
		if err := member(key); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.pos++
		case '}':
			return d.close()
		default:
			return d.syntaxError("after object key:value pair")
		}
	}
}

// open enters an object or array, refusing nesting beyond encoding/json's.
func (d *resultsDecoder) open() error {
	if d.depth++; d.depth > maxNestingDepth {
		return errors.New("client: answer exceeds max nesting depth")
	}
	d.pos++
	return nil
}

func (d *resultsDecoder) close() error {
	d.pos++
	d.depth--
	return nil
}

func (d *resultsDecoder) answerMember(key []byte) error {
	if !foldEqual(key, "results") {
		return d.skipValue()
	}
	switch d.peek() {
	case 'n':
		d.all, d.results = nil, nil
		return d.literal("null")
	case '[':
		return d.resultsArray()
	}
	return d.mistyped()
}

// resultsArray decodes the results. As encoding/json does with a slice it
// decodes into, elements merge into those of an earlier "results" array
// and an empty array leaves an empty, non-nil slice.
func (d *resultsDecoder) resultsArray() error {
	if err := d.open(); err != nil {
		return err
	}
	if d.all == nil {
		d.all = make([]Result, 0, d.want)
	}
	n := 0
	if d.peek() != ']' {
		for {
			if n == len(d.all) {
				d.all = append(d.all, Result{})
			}
			if err := d.result(&d.all[n]); err != nil {
				return err
			}
			n++
			if c := d.peek(); c == ']' {
				break
			} else if c != ',' {
				return d.syntaxError("after array element")
			}
			d.pos++
		}
	}
	if n == 0 {
		d.all, d.results = nil, []Result{}
	} else {
		d.results = d.all[:n]
	}
	return d.close()
}

// result decodes one element into r: an object, or null (no change).
func (d *resultsDecoder) result(r *Result) error {
	switch d.peek() {
	case '{':
		return d.object(func(key []byte) error { return d.resultMember(r, key) })
	case 'n':
		return d.literal("null")
	}
	return d.mistyped()
}

func (d *resultsDecoder) resultMember(r *Result, key []byte) error {
	// The keys creditd sends, before the slower case-insensitive match.
	switch string(key) {
	case "id":
		return d.stringValue(&r.ID)
	case "status":
		return d.stringValue(&r.Status)
	case "reason":
		return d.stringValue(&r.Reason)
	case "duplicate":
		return d.boolValue(&r.Duplicate)
	case "position":
		return d.uintValue(&r.Position)
	}
	switch {
	case foldEqual(key, "id"):
		return d.stringValue(&r.ID)
	case foldEqual(key, "status"):
		return d.stringValue(&r.Status)
	case foldEqual(key, "reason"):
		return d.stringValue(&r.Reason)
	case foldEqual(key, "duplicate"):
		return d.boolValue(&r.Duplicate)
	case foldEqual(key, "position"):
		return d.uintValue(&r.Position)
	}
	return d.skipValue()
}

func (d *resultsDecoder) stringValue(s *string) error {
	switch d.peek() {
	case '"':
	case 'n':
		return d.literal("null")
	default:
		return d.mistyped()
	}
	start := d.pos + 1
	raw, plain, err := d.scanString()
	switch {
	case err != nil:
		return err
	case !plain:
		*s = string(unescape(nil, raw))
		return nil
	case len(raw) == 0:
		*s = ""
		return nil
	}
	if d.text == "" {
		d.text = string(d.data)
	}
	*s = d.text[start : start+len(raw)]
	return nil
}

func (d *resultsDecoder) boolValue(b *bool) error {
	switch d.peek() {
	case 't':
		*b = true
		return d.literal("true")
	case 'f':
		*b = false
		return d.literal("false")
	case 'n':
		return d.literal("null")
	}
	return d.mistyped()
}

// uintValue decodes a number into u, refused unless strconv.ParseUint
// takes it (no sign, fraction or exponent; in range), as encoding/json.
func (d *resultsDecoder) uintValue(u *uint64) error {
	c := d.peek()
	if c == 'n' {
		return d.literal("null")
	}
	if c != '-' && (c < '0' || c > '9') {
		return d.mistyped()
	}
	num, err := d.scanNumber()
	if err != nil {
		return err
	}
	v, ok := parseUint(num)
	if !ok {
		return errAnswerType
	}
	*u = v
	return nil
}

// parseUint parses a JSON number as strconv.ParseUint(num, 10, 64)
// would, without its string conversion: digits only, at most MaxUint64.
func parseUint(num []byte) (uint64, bool) {
	var v uint64
	for _, c := range num {
		if c < '0' || c > '9' || v > math.MaxUint64/10 {
			return 0, false
		}
		v *= 10
		if digit := uint64(c - '0'); v <= math.MaxUint64-digit {
			v += digit
		} else {
			return 0, false
		}
	}
	return v, true
}

// skipValue checks and skips any value.
func (d *resultsDecoder) skipValue() error {
	switch c := d.peek(); {
	case c == '{':
		return d.object(func([]byte) error { return d.skipValue() })
	case c == '[':
		return d.skipArray()
	case c == '"':
		_, _, err := d.scanString()
		return err
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		_, err := d.scanNumber()
		return err
	}
	return d.syntaxError("looking for beginning of value")
}

func (d *resultsDecoder) skipArray() error {
	if err := d.open(); err != nil {
		return err
	}
	if d.peek() == ']' {
		return d.close()
	}
	for {
		if err := d.skipValue(); err != nil {
			return err
		}
		switch d.peek() {
		case ',':
			d.pos++
		case ']':
			return d.close()
		default:
			return d.syntaxError("after array element")
		}
	}
}

func (d *resultsDecoder) literal(word string) error {
	for i := range len(word) {
		if d.pos == len(d.data) || d.data[d.pos] != word[i] {
			return d.syntaxError("in literal " + word)
		}
		d.pos++
	}
	return nil
}

// scanNumber checks and returns a JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *resultsDecoder) scanNumber() ([]byte, error) {
	start := d.pos
	if d.pos < len(d.data) && d.data[d.pos] == '-' {
		d.pos++
	}
	switch {
	case d.pos < len(d.data) && d.data[d.pos] == '0':
		d.pos++
	case d.digits() == 0:
		return nil, d.syntaxError("in numeric literal")
	}
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		d.pos++
		if d.digits() == 0 {
			return nil, d.syntaxError("after decimal point in numeric literal")
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if d.digits() == 0 {
			return nil, d.syntaxError("in exponent of numeric literal")
		}
	}
	return d.data[start:d.pos], nil
}

// digits skips decimal digits and returns how many.
func (d *resultsDecoder) digits() int {
	start := d.pos
	for d.pos < len(d.data) && '0' <= d.data[d.pos] && d.data[d.pos] <= '9' {
		d.pos++
	}
	return d.pos - start
}

// scanString checks the string at d.pos and returns its raw content, and
// whether that is already its value (no escape, valid UTF-8).
func (d *resultsDecoder) scanString() (raw []byte, plain bool, err error) {
	d.pos++ // opening quote
	start := d.pos
	plain = true
	for d.pos < len(d.data) {
		c := d.data[d.pos]
		switch {
		case ' ' <= c && c < utf8.RuneSelf && c != '"' && c != '\\':
			d.pos++
		case c == '"':
			raw = d.data[start:d.pos]
			d.pos++
			return raw, plain, nil
		case c == '\\':
			plain = false
			if err := d.scanEscape(); err != nil {
				return nil, false, err
			}
		case c < ' ':
			return nil, false, d.syntaxError("in string literal")
		default:
			r, size := utf8.DecodeRune(d.data[d.pos:])
			if r == utf8.RuneError && size == 1 {
				plain = false
			}
			d.pos += size
		}
	}
	return nil, false, d.syntaxError("in string literal")
}

// scanEscape checks the escape at d.pos (a backslash) and skips it.
func (d *resultsDecoder) scanEscape() error {
	d.pos++
	if d.pos == len(d.data) {
		return d.syntaxError("in string escape code")
	}
	switch d.data[d.pos] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		d.pos++
		return nil
	case 'u':
		d.pos++
		for range 4 {
			if d.pos == len(d.data) || hexValue(d.data[d.pos]) < 0 {
				return d.syntaxError("in \\u hexadecimal character escape")
			}
			d.pos++
		}
		return nil
	}
	return d.syntaxError("in string escape code")
}

func hexValue(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10)
	}
	return -1
}

// unescape appends the value of raw, string content already checked by
// scanString, decoded as encoding/json decodes it: escapes resolved, a
// \u escape that is half a surrogate pair and each invalid UTF-8 byte
// becoming U+FFFD.
func unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		switch c := raw[i]; {
		case c == '\\' && raw[i+1] == 'u':
			r := escapedRune(raw[i:])
			i += len(`\uXXXX`)
			if utf16.IsSurrogate(r) {
				if pair := utf16.DecodeRune(r, escapedRune(raw[i:])); pair != utf8.RuneError {
					r = pair
					i += len(`\uXXXX`)
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		case c == '\\':
			dst = append(dst, unescapedByte(raw[i+1]))
			i += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(raw[i:])
			dst = utf8.AppendRune(dst, r)
			i += size
		}
	}
	return dst
}

// escapedRune returns the rune of the \uXXXX escape starting s, or -1
// when s does not start with one.
func escapedRune(s []byte) rune {
	if len(s) < len(`\uXXXX`) || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		v := hexValue(c)
		if v < 0 {
			return -1
		}
		r = r<<4 | v
	}
	return r
}

func unescapedByte(c byte) byte {
	switch c {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return c // '"', '\\', '/'
}

// foldEqual reports whether key matches name (lowercase ASCII) as
// encoding/json matches a key to a field name: ASCII letters in either
// case, and the two non-ASCII runes whose simple case fold is an ASCII
// letter, ſ (U+017F) for s and the Kelvin sign (U+212A) for k.
func foldEqual(key []byte, name string) bool {
	j := 0
	for i := 0; i < len(key); j++ {
		if j == len(name) {
			return false
		}
		c := key[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != name[j] {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(key[i:])
		if !(r == '\u017f' && name[j] == 's' || r == '\u212a' && name[j] == 'k') {
			return false
		}
		i += size
	}
	return j == len(name)
}
