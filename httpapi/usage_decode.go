package httpapi

import (
	"encoding/binary"
	"math/bits"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/commands"
)

// The hand-written decoder of usage events: POST /v1/usage bodies and the
// events producers publish on NATS (DecodeUsageEvent).
//
// Usage is the one request that comes by the hundred per body and by the
// thousand per second, and json v2 decodes it by reflection, allocating
// every field afresh. This decoder reads the well-formed bodies producers
// send in one pass, without reflection, into the same request types, with
// the same values json v2 gives (decodeBody, with decodeOptions), so the
// rest of the request's handling is unchanged.
//
// It gives up (ok=false) on anything it is not sure to decode exactly as
// json v2 would, and the caller then decodes the body with decodeBody,
// which also produces every problem: a refused body is answered exactly as
// before. Given up on:
//   - a member name that is not one of the fields' byte for byte (json v2
//     refuses unknown names; one with an escape may be a known one), or a
//     name given twice (json v2 refuses it);
//   - a value of another JSON type than the field's, but null;
//   - a string with invalid UTF-8, a raw control character or an escaped
//     surrogate (json v2 refuses the first two, and checks pairs of the
//     last);
//   - a number that is not -?digits(.digits)?, without leading zeros;
//   - an event given as null (json v2 reads it as an empty event);
//   - anything malformed, and bytes after the body.
// Amounts and timestamps it does not read itself (an amount string with
// spaces, an exponent or more than 18 digits, a time in another form than
// 2006-01-02T15:04:05Z07:00) are handed, as json v2 hands them, to
// Amount.UnmarshalJSON and Timestamp.UnmarshalJSON.
//
// One value differs, on purpose: "custom":{} decodes to a nil map where
// json v2 makes an empty one, saving a map per event. Nothing tells them
// apart (validation, fingerprints and the stored event, where custom is
// omitempty, all read an empty map as none).

const (
	// Credit types, dimensions and amounts recur across the events of a
	// body: caches of usageInternSlots entries, local to a body, allocate
	// each recurring string (of at most usageInternMaxLen bytes) or decimal
	// once. Direct-mapped, as the commit decoder's (eventstore/decode.go).
	usageInternMaxLen = 64
	usageInternBits   = 6
	usageInternSlots  = 1 << usageInternBits
)

// usageScratch is what decoding a POST /v1/usage body takes, kept from
// body to body: the body's bytes and the events decoded from them. The
// request's commands copy what they keep (strings and maps are shared,
// never changed), so both serve the next body once the request is
// answered.
type usageScratch struct {
	body   []byte
	events []usageEventRequest
}

var usageScratches = sync.Pool{New: func() any { return new(usageScratch) }}

// A scratch grown past these (a batch of thousands of events at the field
// limits) is dropped, not kept: one large body does not stay in memory for
// good.
const (
	usageScratchBodyMax   = 1 << 20
	usageScratchEventsMax = 2 * commands.UsageBatchMax
)

// release returns s to the pool, without the answered request's strings and
// maps, which the pool would otherwise keep alive.
func (s *usageScratch) release() {
	clear(s.events)
	s.events = s.events[:0]
	if cap(s.body) <= usageScratchBodyMax && cap(s.events) <= usageScratchEventsMax {
		usageScratches.Put(s)
	}
}

// decodeUsageBatchFast decodes a POST /v1/usage body into req, whose
// Events it appends to, exactly as decodeBody would; ok=false when it
// cannot vouch for that, leaving req to be reset by the caller.
func decodeUsageBatchFast(body []byte, req *usageBatchRequest) bool {
	d := usageDecoder{b: body}
	d.batch(req)
	d.ws()
	return !d.bad && d.i == len(d.b)
}

// decodeUsageEventFast decodes one usage event (DecodeUsageEvent's input)
// into ev, exactly as decodeBody would; ok=false when it cannot vouch for
// that, leaving ev to be reset by the caller.
func decodeUsageEventFast(data []byte, ev *usageEventRequest) bool {
	var d usageDecoder
	return d.oneEvent(data, ev)
}

// oneEvent is decodeUsageEventFast on a decoder that may have decoded
// other events before: its interned strings and decimals serve again.
func (d *usageDecoder) oneEvent(data []byte, ev *usageEventRequest) bool {
	d.b, d.i, d.bad = data, 0, false
	d.event(ev)
	d.ws()
	return !d.bad && d.i == len(d.b)
}

// usageDecoder reads JSON from b at i. Its methods read one value each;
// on input they do not handle they set bad, after which the result is
// thrown away, so they need not return an error each.
type usageDecoder struct {
	b   []byte
	i   int
	bad bool

	// scratch holds an escaped string's value, reused from string to
	// string.
	scratch []byte
	strs    [usageInternSlots]string
	decs    [usageInternSlots]usageDecimalSlot
	// bools are what success points to: json v2 allocates a bool per
	// event, this decoder two per body. Nothing writes through the
	// pointer.
	bools *[2]bool
}

type usageDecimalSlot struct {
	coefficient int64
	places      int32
	ok          bool
	value       decimal.Decimal
}

func (d *usageDecoder) fail() { d.bad = true }

// ws skips JSON whitespace.
func (d *usageDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, 0 at the end.
func (d *usageDecoder) peek() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// enter consumes the opening bracket (open) of an object or array and
// reports whether a member follows; an empty {} or [] is consumed whole.
func (d *usageDecoder) enter(open, close byte) bool {
	if d.peek() != open {
		d.fail()
		return false
	}
	d.i++
	if d.peek() == close {
		d.i++
		return false
	}
	return true
}

// more consumes what follows a member: a comma (true, another member
// follows) or the closing bracket (false).
func (d *usageDecoder) more(close byte) bool {
	switch d.peek() {
	case ',':
		d.i++
		return true
	case close:
		d.i++
		return false
	}
	d.fail()
	return false
}

// name reads a member name and the colon after it. The caller compares it
// with the fields' names byte for byte, so one with an escape matches none
// and is given up on.
func (d *usageDecoder) name() []byte {
	if d.peek() != '"' {
		d.fail()
		return nil
	}
	for j := d.i + 1; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			n := d.b[d.i+1 : j]
			d.i = j + 1
			if d.peek() != ':' {
				d.fail()
				return nil
			}
			d.i++
			return n
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			d.fail()
			return nil
		}
	}
	d.fail()
	return nil
}

// null consumes a null, if one is next.
func (d *usageDecoder) null() bool {
	if d.peek() == 'n' && len(d.b)-d.i >= len("null") && string(d.b[d.i:d.i+len("null")]) == "null" {
		d.i += len("null")
		return true
	}
	return false
}

// text reads a string and returns its value: the bytes between the quotes
// when it holds no escape, else its unescaped value in scratch, valid
// until the next string. raw is the string as it stands in the body,
// quotes included.
func (d *usageDecoder) text() (value, raw []byte) {
	if d.peek() != '"' {
		d.fail()
		return nil, nil
	}
	start := d.i
	ascii, escaped := true, false
	j := start + 1
	for ; j < len(d.b); j++ {
		c := d.b[j]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			continue
		}
		switch {
		case c == '"':
			raw = d.b[start : j+1]
			if !ascii && !utf8.Valid(raw) {
				d.fail() // json v2 refuses invalid UTF-8
				return nil, nil
			}
			d.i = j + 1
			if escaped {
				return d.unescape(raw), raw
			}
			return raw[1 : len(raw)-1], raw
		case c == '\\':
			// Skipped here, checked by unescape: an escaped quote does
			// not end the string.
			escaped = true
			j++
		case c < 0x20:
			d.fail() // json v2 refuses a raw control character
			return nil, nil
		default:
			ascii = false
		}
	}
	d.fail()
	return nil, nil
}

// unescape returns the value of raw, a string with escapes, in scratch.
func (d *usageDecoder) unescape(raw []byte) []byte {
	out := d.scratch[:0]
	s := raw[1 : len(raw)-1]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(s) {
			d.fail()
			return nil
		}
		switch s[i] {
		case '"', '\\', '/':
			out = append(out, s[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(s[i+1:])
			if !ok || utf16.IsSurrogate(r) {
				// A surrogate is valid only in a pair, which json v2
				// checks: left to it.
				d.fail()
				return nil
			}
			out = utf8.AppendRune(out, r)
			i += 4
		default:
			d.fail()
			return nil
		}
	}
	d.scratch = out
	return out
}

// hex4 reads the four hex digits of a \u escape.
func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// str reads a string or null (""), as json v2 into a string field.
func (d *usageDecoder) str() string {
	if d.null() {
		return ""
	}
	v, _ := d.text()
	return string(v)
}

// istr is str for a value likely to recur in the body (a credit type, a
// dimension), allocating each distinct one once.
func (d *usageDecoder) istr() string {
	if d.null() {
		return ""
	}
	v, _ := d.text()
	return d.intern(v)
}

func (d *usageDecoder) intern(b []byte) string {
	if len(b) == 0 || len(b) > usageInternMaxLen {
		return string(b)
	}
	// The hash reads at most 16 bytes, the first and last 8: cheap for
	// the short strings interned, and a collision only costs an
	// allocation.
	var x uint64
	if len(b) >= 8 {
		x = binary.LittleEndian.Uint64(b) ^ bits.RotateLeft64(binary.LittleEndian.Uint64(b[len(b)-8:]), 29)
	} else {
		for _, c := range b {
			x = x<<8 | uint64(c)
		}
	}
	slot := &d.strs[usageSlot(x^uint64(len(b)))]
	if *slot != string(b) {
		*slot = string(b)
	}
	return *slot
}

// usageSlot maps x to a slot of an intern cache, mixing all its bits into
// the top ones.
func usageSlot(x uint64) uint64 {
	return x * 0x9e3779b97f4a7c15 >> (64 - usageInternBits)
}

// success reads true, false or null (nil).
func (d *usageDecoder) success() *bool {
	if d.null() {
		return nil
	}
	var v bool
	switch rest := d.b[d.i:]; {
	case len(rest) >= len("true") && string(rest[:len("true")]) == "true":
		d.i += len("true")
		v = true
	case len(rest) >= len("false") && string(rest[:len("false")]) == "false":
		d.i += len("false")
	default:
		d.fail()
		return nil
	}
	if d.bools == nil {
		d.bools = &[2]bool{false, true}
	}
	if v {
		return &d.bools[1]
	}
	return &d.bools[0]
}

// amount reads an amount as json v2 does, which hands the value's bytes to
// Amount.UnmarshalJSON: the plain forms ("2.5", 2.5) here, others by
// UnmarshalJSON itself.
func (d *usageDecoder) amount() Amount {
	if d.null() {
		return Amount{}
	}
	// digits is the text to read as a decimal; raw the value as it stands
	// in the body, which json v2 would hand to UnmarshalJSON.
	var raw, digits []byte
	switch c := d.peek(); {
	case c == '"':
		digits, raw = d.text()
		if d.bad {
			return Amount{}
		}
	case c == '-' || (c >= '0' && c <= '9'):
		start := d.i
		for d.i < len(d.b) && (d.b[d.i] == '-' || d.b[d.i] == '.' || (d.b[d.i] >= '0' && d.b[d.i] <= '9')) {
			d.i++
		}
		digits = d.b[start:d.i]
		raw = digits
		if !jsonPlainNumber(digits) {
			d.fail() // an exponent, or not JSON: left to json v2
			return Amount{}
		}
	default:
		d.fail()
		return Amount{}
	}
	if v, ok := d.decimal(digits); ok {
		return Amount{Value: v, Set: true}
	}
	var a Amount
	if a.UnmarshalJSON(raw) != nil {
		d.fail()
	}
	return a
}

// jsonPlainNumber reports whether s is a JSON number without exponent:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?.
func jsonPlainNumber(s []byte) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i == len(s) {
			return false
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	return i == len(s)
}

// decimal parses -?digits(.digits)? of at most 18 bytes besides the
// point, exactly as decimal.NewFromString does: it parses those bytes,
// sign included and point skipped, as an int64 n and returns
// decimal.New(n, -digits after the point). Other forms (longer, with
// spaces, an exponent, a plus) are left to NewFromString (ok=false). Each
// distinct value is built once per body: decimals are immutable.
func (d *usageDecoder) decimal(s []byte) (decimal.Decimal, bool) {
	i := 0
	if len(s) > 0 && s[0] == '-' {
		i = 1
	}
	intDigits, fracDigits, point := 0, 0, 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		intDigits++
	}
	if i < len(s) && s[i] == '.' {
		point = 1
		for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			fracDigits++
		}
		if fracDigits == 0 {
			return decimal.Decimal{}, false
		}
	}
	if i != len(s) || intDigits == 0 || len(s)-point > 18 {
		return decimal.Decimal{}, false
	}
	var n int64
	for _, c := range s {
		if c >= '0' && c <= '9' {
			n = n*10 + int64(c-'0')
		}
	}
	if s[0] == '-' {
		n = -n
	}
	slot := &d.decs[usageSlot(uint64(n)^uint64(fracDigits)<<56)]
	if !slot.ok || slot.coefficient != n || slot.places != int32(fracDigits) {
		*slot = usageDecimalSlot{coefficient: n, places: int32(fracDigits), ok: true, value: decimal.New(n, -int32(fracDigits))}
	}
	return slot.value, true
}

// timestamp reads a timestamp as json v2 does, which hands the value's
// bytes to Timestamp.UnmarshalJSON: RFC 3339 strings here, anything else
// by UnmarshalJSON itself.
func (d *usageDecoder) timestamp() Timestamp {
	if d.null() {
		return Timestamp{}
	}
	if d.peek() != '"' {
		d.fail()
		return Timestamp{}
	}
	value, raw := d.text()
	if d.bad {
		return Timestamp{}
	}
	if t, ok := parseRFC3339(value); ok {
		return Timestamp{Value: t, Set: true}
	}
	var t Timestamp
	if t.UnmarshalJSON(raw) != nil {
		d.fail()
	}
	return t
}

// parseRFC3339 reads 2006-01-02T15:04:05(.digits)?(Z|±07:00) and returns
// the time in UTC, as time.Parse(time.RFC3339Nano, s).UTC() does: the
// form time.Parse reads itself (its parseRFC3339), with the same ranges,
// and fraction digits past the ninth dropped. ok=false for other forms,
// which time.Parse may read another way.
func parseRFC3339(s []byte) (time.Time, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digitsIn(s[0:4], 0, 9999)
	month, ok2 := digitsIn(s[5:7], 1, 12)
	hour, ok3 := digitsIn(s[11:13], 0, 23)
	minute, ok4 := digitsIn(s[14:16], 0, 59)
	second, ok5 := digitsIn(s[17:19], 0, 59)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return time.Time{}, false
	}
	day, ok := digitsIn(s[8:10], 1, daysIn(month, year))
	if !ok {
		return time.Time{}, false
	}
	rest := s[19:]
	nanos := 0
	if len(rest) >= 2 && rest[0] == '.' && rest[1] >= '0' && rest[1] <= '9' {
		n := 1
		for ; n < len(rest) && rest[n] >= '0' && rest[n] <= '9'; n++ {
		}
		for k := 1; k <= 9; k++ {
			nanos *= 10
			if k < n {
				nanos += int(rest[k] - '0')
			}
		}
		rest = rest[n:]
	}
	offset := 0
	switch {
	case len(rest) == 1 && rest[0] == 'Z':
	case len(rest) == len("+07:00") && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		zoneHours, ok1 := digitsIn(rest[1:3], 0, 23)
		zoneMinutes, ok2 := digitsIn(rest[4:6], 0, 59)
		if !ok1 || !ok2 {
			return time.Time{}, false
		}
		offset = (zoneHours*60 + zoneMinutes) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, second, nanos, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

// digitsIn reads s, decimal digits only, as a number within [low, high].
func digitsIn(s []byte, low, high int) (int, bool) {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n >= low && n <= high
}

// daysIn is the number of days of month in year, leap years included.
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// custom reads the custom dimensions: a map of strings, null values read
// as "", null or {} as nil (see the top of the file).
func (d *usageDecoder) custom() map[string]string {
	if d.null() {
		return nil
	}
	var m map[string]string
	for more := d.enter('{', '}'); more && !d.bad; more = d.more('}') {
		name, _ := d.text()
		key := d.intern(name)
		if d.bad || d.peek() != ':' {
			d.fail()
			return nil
		}
		d.i++
		value := d.istr()
		if m == nil {
			m = map[string]string{}
		}
		if _, repeated := m[key]; repeated {
			d.fail() // json v2 refuses a name given twice
			return nil
		}
		m[key] = value
	}
	return m
}

// The fields of an event, as bits of the set of those read: json v2
// refuses a name given twice.
const (
	usageFieldID = 1 << iota
	usageFieldTimestamp
	usageFieldAmount
	usageFieldCreditType
	usageFieldModule
	usageFieldService
	usageFieldUserID
	usageFieldWorkflowID
	usageFieldWorkflowRunID
	usageFieldEndpoint
	usageFieldSuccess
	usageFieldQuantity
	usageFieldCustom
	usageFieldDescription
)

func (d *usageDecoder) event(ev *usageEventRequest) {
	var read uint32
	for more := d.enter('{', '}'); more && !d.bad; more = d.more('}') {
		var field uint32
		switch string(d.name()) {
		case "id":
			field, ev.ID = usageFieldID, d.str()
		case "timestamp":
			field, ev.Timestamp = usageFieldTimestamp, d.timestamp()
		case "amount":
			field, ev.Amount = usageFieldAmount, d.amount()
		case "credit_type":
			field, ev.CreditType = usageFieldCreditType, d.istr()
		case "module":
			field, ev.Module = usageFieldModule, d.istr()
		case "service":
			field, ev.Service = usageFieldService, d.istr()
		case "user_id":
			field, ev.UserID = usageFieldUserID, d.istr()
		case "workflow_id":
			field, ev.WorkflowID = usageFieldWorkflowID, d.istr()
		case "workflow_run_id":
			field, ev.WorkflowRunID = usageFieldWorkflowRunID, d.str()
		case "endpoint":
			field, ev.Endpoint = usageFieldEndpoint, d.istr()
		case "success":
			field, ev.Success = usageFieldSuccess, d.success()
		case "quantity":
			field, ev.Quantity = usageFieldQuantity, d.amount()
		case "custom":
			field, ev.Custom = usageFieldCustom, d.custom()
		case "description":
			field, ev.Description = usageFieldDescription, d.istr()
		default:
			d.fail()
			return
		}
		if read&field != 0 {
			d.fail()
			return
		}
		read |= field
	}
}

func (d *usageDecoder) batch(req *usageBatchRequest) {
	events := false
	for more := d.enter('{', '}'); more && !d.bad; more = d.more('}') {
		if string(d.name()) != "events" || events || d.null() {
			d.fail()
			return
		}
		events = true
		if req.Events == nil {
			req.Events = []usageEventRequest{} // [] is empty, not nil, as with json v2
		}
		for more := d.enter('[', ']'); more && !d.bad; more = d.more(']') {
			if d.null() {
				d.fail()
				return
			}
			req.Events = append(req.Events, usageEventRequest{})
			d.event(&req.Events[len(req.Events)-1])
		}
	}
}
