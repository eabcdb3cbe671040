package eventstore

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
)

// The hand-written commit decoder.
//
// Replaying the log is bounded by decoding: encoding/json spends most of its
// time on reflection and on allocating every string and decimal afresh. This
// decoder reads the bytes EncodeCommit writes in one pass, without
// reflection, and builds exactly what encoding/json would: it fills the same
// wire structs (domain.EnvelopeWire, domain.EventData) and converts them with
// the same EnvelopeWire.Envelope, so event types are dispatched in one place.
//
// It only accepts the compact form json.Marshal produces. Anything it is not
// sure to decode exactly like encoding/json makes it give up (ok=false), and
// DecodeCommit falls back to encoding/json, which also produces every error
// message. Given up on:
//   - whitespace between tokens, bytes after the top-level object;
//   - a key that is not byte-for-byte one of the struct tags (encoding/json
//     also matches keys case-insensitively and skips unknown ones);
//   - null, and any value of another JSON type than the field's;
//   - a string holding an escape, a control character or invalid UTF-8
//     (encoding/json unescapes, or replaces invalid UTF-8 with U+FFFD);
//   - integers with a fraction or exponent, or out of the field's range;
//   - a repeated key whose value is an object or array (encoding/json merges
//     the second into the first); a repeated scalar key keeps the last value,
//     as encoding/json does;
//   - currency_config, a json.RawMessage of the rare SettingsChanged event;
//   - a commit of another version, and an event Envelope refuses.

const (
	// Ids, dimensions and amounts recur across the events of a commit:
	// caches of internSlots entries, local to a call, allocate each
	// recurring string (of at most internMaxLen bytes) or decimal once.
	// They are direct-mapped (a new value evicts the one in its slot),
	// which bounds them and costs less than a map lookup.
	internMaxLen = 64
	internBits   = 8
	internSlots  = 1 << internBits
	// burnSlabLen is how many burns are allocated at once.
	burnSlabLen = 64
	// eventsBufLen is how many events are gathered on the stack (see
	// events): more than a usage batch of 100 holds; a bigger commit's
	// events spill to the heap.
	eventsBufLen = 128
)

// decodeCommitFast decodes what EncodeCommit writes, exactly as
// decodeCommitJSON would; ok=false when it cannot vouch for that.
func decodeCommitFast(data []byte) (Commit, bool) {
	d := decoder{b: data, data: new(domain.EventData)}
	c := d.commit()
	if d.bad || d.i != len(d.b) || c.Version != CommitVersion {
		return Commit{}, false
	}
	return c, true
}

// decoder reads JSON from b at i. Its methods read one value each; on input
// they do not handle they set bad, after which the caller's result is thrown
// away, so they need not return an error each.
type decoder struct {
	b   []byte
	i   int
	bad bool

	strs [internSlots]string
	decs [internSlots]decimalSlot
	// data is the event data being read, reused from event to event:
	// Envelope copies the fields out of it. It is allocated apart because
	// Envelope's argument escapes: as a field it would take the decoder,
	// caches included, to the heap.
	data *domain.EventData
	// burnSlab holds the burns of the events read (see burns).
	burnSlab []domain.Burn
}

type decimalSlot struct {
	key decimalKey
	ok  bool
	v   decimal.Decimal
}

func (d *decoder) fail() { d.bad = true }

// enter consumes the opening bracket (open) of an object or array and
// reports whether a member follows; an empty {} or [] is consumed whole.
func (d *decoder) enter(open, close byte) bool {
	if d.i >= len(d.b) || d.b[d.i] != open {
		d.fail()
		return false
	}
	d.i++
	if d.i < len(d.b) && d.b[d.i] == close {
		d.i++
		return false
	}
	return true
}

// more consumes what follows a member: a comma (true, another member
// follows) or the closing bracket (false).
func (d *decoder) more(close byte) bool {
	if d.i < len(d.b) {
		switch d.b[d.i] {
		case ',':
			d.i++
			return true
		case close:
			d.i++
			return false
		}
	}
	d.fail()
	return false
}

// key reads a struct member's key and the colon after it. The caller
// compares it with the tags byte for byte, so a key with an escape or in
// another case matches none and is refused: the raw bytes are enough.
func (d *decoder) key() []byte {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		d.fail()
		return nil
	}
	for j := d.i + 1; j < len(d.b); j++ {
		if d.b[j] == '"' {
			k := d.b[d.i+1 : j]
			d.i = j + 1
			d.colon()
			return k
		}
	}
	d.fail()
	return nil
}

func (d *decoder) colon() {
	if d.i >= len(d.b) || d.b[d.i] != ':' {
		d.fail()
		return
	}
	d.i++
}

// raw reads a string and returns the bytes between the quotes, which are
// its value when it holds no escape, control character or invalid UTF-8:
// for those encoding/json would change the bytes, so they are refused.
func (d *decoder) raw() []byte {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		d.fail()
		return nil
	}
	start := d.i + 1
	ascii := true
	for j := start; j < len(d.b); j++ {
		c := d.b[j]
		if plainByte[c] {
			continue
		}
		switch {
		case c == '"':
			s := d.b[start:j]
			if !ascii && !utf8.Valid(s) {
				d.fail()
				return nil
			}
			d.i = j + 1
			return s
		case c == '\\' || c < 0x20:
			d.fail()
			return nil
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	d.fail()
	return nil
}

// plainByte tells the bytes raw passes over: not a quote, a backslash, a
// control character or part of a multi-byte UTF-8 sequence.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads a string that is unlikely to repeat in the commit (an id).
func (d *decoder) str() string {
	return string(d.raw())
}

// istr reads a string that likely repeats in the commit (an event type, a
// dimension, a grant id), allocating each distinct value once.
func (d *decoder) istr() string {
	b := d.raw()
	if len(b) == 0 || len(b) > internMaxLen {
		return string(b)
	}
	slot := &d.strs[internSlot(b)]
	if *slot == string(b) {
		return *slot
	}
	*slot = string(b)
	return *slot
}

// internSlot hashes b (1 to internMaxLen bytes) to a slot of d.strs. It
// reads at most 16 bytes, its first and last 8: cheap for the short
// strings interned, and a collision only costs an allocation.
func internSlot(b []byte) uint64 {
	var x uint64
	if len(b) >= 8 {
		x = binary.LittleEndian.Uint64(b) ^ bits.RotateLeft64(binary.LittleEndian.Uint64(b[len(b)-8:]), 29)
	} else {
		for _, c := range b {
			x = x<<8 | uint64(c)
		}
	}
	return fibonacciHash(x ^ uint64(len(b)))
}

// fibonacciHash maps x to a slot of an intern cache, mixing all its bits
// into the top ones.
func fibonacciHash(x uint64) uint64 {
	return x * 0x9e3779b97f4a7c15 >> (64 - internBits)
}

// magnitude reads the digits of a JSON integer: "0" or a non-zero digit
// and more digits. A fraction or exponent is left unread, so the caller's
// next token check refuses it.
func (d *decoder) magnitude() uint64 {
	if d.i >= len(d.b) || d.b[d.i] < '0' || d.b[d.i] > '9' {
		d.fail()
		return 0
	}
	if d.b[d.i] == '0' {
		d.i++
		return 0
	}
	var n uint64
	for ; d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9'; d.i++ {
		c := uint64(d.b[d.i] - '0')
		if n > (math.MaxUint64-c)/10 {
			d.fail() // out of range: encoding/json refuses it
			return 0
		}
		n = n*10 + c
	}
	return n
}

func (d *decoder) int64() int64 {
	neg := d.i < len(d.b) && d.b[d.i] == '-'
	if neg {
		d.i++
	}
	n := d.magnitude()
	switch {
	case neg && n <= 1<<63:
		return int64(-n) // -(1<<63) wraps to math.MinInt64, as it should
	case !neg && n <= math.MaxInt64:
		return int64(n)
	}
	d.fail()
	return 0
}

func (d *decoder) int() int {
	n := d.int64()
	if int64(int(n)) != n {
		d.fail() // out of range on a 32-bit platform
		return 0
	}
	return int(n)
}

// uint64 refuses a sign: encoding/json refuses even "-0" for an unsigned
// field.
func (d *decoder) uint64() uint64 {
	return d.magnitude()
}

func (d *decoder) bool() bool {
	rest := d.b[d.i:]
	switch {
	case bytes.HasPrefix(rest, []byte("true")):
		d.i += len("true")
		return true
	case bytes.HasPrefix(rest, []byte("false")):
		d.i += len("false")
		return false
	}
	d.fail()
	return false
}

// quoted reads a string and returns it with its quotes, the literal
// encoding/json hands to a json.Unmarshaler.
func (d *decoder) quoted() []byte {
	start := d.i
	d.raw()
	if d.bad {
		return nil
	}
	return d.b[start:d.i]
}

// time decodes as encoding/json does: with Time.UnmarshalJSON on the
// literal.
func (d *decoder) time() time.Time {
	var t time.Time
	if q := d.quoted(); d.bad || t.UnmarshalJSON(q) != nil {
		d.fail()
	}
	return t
}

func (d *decoder) timePtr() *time.Time {
	t := d.time()
	if d.bad {
		return nil
	}
	return &t
}

// decimalKey is a plain decimal's value: coefficient and digits after the
// point.
type decimalKey struct {
	coef  int64
	scale int32
}

// decimal decodes as encoding/json does, with Decimal.UnmarshalJSON on the
// literal, which is NewFromString on the string. Plain decimals, the form
// Decimal.String writes, take a shortcut giving the identical value, and
// each distinct one is built once per commit (decimals are immutable, and
// copies of one share its big.Int anyway).
func (d *decoder) decimal() decimal.Decimal {
	start := d.i
	s := d.raw()
	if d.bad {
		return decimal.Decimal{}
	}
	k, ok := plainDecimal(s)
	if !ok {
		var v decimal.Decimal
		if v.UnmarshalJSON(d.b[start:d.i]) != nil {
			d.fail()
		}
		return v
	}
	slot := &d.decs[fibonacciHash(uint64(k.coef)^uint64(k.scale)<<56)]
	if !slot.ok || slot.key != k {
		*slot = decimalSlot{key: k, ok: true, v: decimal.New(k.coef, -k.scale)}
	}
	return slot.v
}

// plainDecimal parses -?digits(.digits)? of at most 18 bytes besides the
// point. That is the case where NewFromString parses the bytes, sign
// included and point skipped, as an int64 n and returns
// decimal.New(n, -digits after the point); longer forms build their big.Int
// another way, and are left to NewFromString.
func plainDecimal(s []byte) (decimalKey, bool) {
	i := 0
	if len(s) > 0 && s[0] == '-' {
		i = 1
	}
	var n int64
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
			return decimalKey{}, false
		}
	}
	if i != len(s) || intDigits == 0 || len(s)-point > 18 || fracDigits > decimal.MaxDecodeExponent {
		return decimalKey{}, false
	}
	for _, c := range s {
		if c >= '0' && c <= '9' {
			n = n*10 + int64(c-'0')
		}
	}
	if s[0] == '-' {
		n = -n
	}
	return decimalKey{coef: n, scale: int32(fracDigits)}, true
}

func (d *decoder) decimalPtr() *decimal.Decimal {
	v := d.decimal()
	if d.bad {
		return nil
	}
	return &v
}

// decimals reads an array of decimals; [] gives an empty, non-nil slice as
// with encoding/json.
func (d *decoder) decimals() []decimal.Decimal {
	out := []decimal.Decimal{}
	for more := d.enter('[', ']'); more && !d.bad; more = d.more(']') {
		out = append(out, d.decimal())
	}
	return out
}

// stringMap reads a map[string]string; {} gives an empty, non-nil map and
// a repeated key keeps its last value, as with encoding/json.
func (d *decoder) stringMap() map[string]string {
	m := map[string]string{}
	for more := d.enter('{', '}'); more && !d.bad; more = d.more('}') {
		k := d.istr()
		d.colon()
		m[k] = d.istr()
	}
	return m
}

func (d *decoder) commit() Commit {
	var c Commit
	for more := d.enter('{', '}'); more && !d.bad; more = d.more('}') {
		switch string(d.key()) {
		case "v":
			c.Version = d.int()
		case "at":
			c.RecordedAt = d.time()
		case "prev":
			c.Prev = d.str()
		case "events":
			if c.Events != nil {
				d.fail() // repeated: encoding/json would merge the arrays
				break
			}
			c.Events = d.events()
		default:
			d.fail()
		}
	}
	if c.Events == nil {
		c.Events = []domain.Envelope{} // as decodeCommitJSON: never nil
	}
	return c
}

func (d *decoder) events() []domain.Envelope {
	// The events are gathered on the stack, then copied to a slice of
	// their number: cheaper than growing one or counting them first.
	var buf [eventsBufLen]domain.Envelope
	out := buf[:0]
	for more := d.enter('[', ']'); more && !d.bad; more = d.more(']') {
		env, ok := d.envelope()
		if !ok {
			d.fail()
			break
		}
		out = append(out, env)
	}
	return append(make([]domain.Envelope, 0, len(out)), out...)
}

func (d *decoder) envelope() (domain.Envelope, bool) {
	var w domain.EnvelopeWire
	for more := d.enter('{', '}'); more && !d.bad; more = d.more('}') {
		switch string(d.key()) {
		case "type":
			w.Type = domain.EventType(d.istr())
		case "tenant_id":
			w.TenantID = d.int64()
		case "credit_type":
			w.CreditType = d.istr()
		case "data":
			if w.Data != nil {
				d.fail() // repeated: encoding/json would merge the objects
				break
			}
			*d.data = domain.EventData{}
			w.Data = d.data
			d.eventData(w.Data)
		default:
			d.fail()
		}
	}
	if d.bad {
		return domain.Envelope{}, false
	}
	// Envelope's error (an unknown type, no data) is left for the
	// encoding/json path to report.
	env, err := w.Envelope()
	return env, err == nil
}

func (d *decoder) eventData(x *domain.EventData) {
	dimensions := false
	for more := d.enter('{', '}'); more && !d.bad; more = d.more('}') {
		switch string(d.key()) {
		case "grant_id":
			x.GrantID = d.istr()
		case "usage_id":
			x.UsageID = d.str()
		case "reservation_id":
			x.ReservationID = d.str()
		case "adjustment_id":
			x.AdjustmentID = d.str()
		case "amount":
			x.Amount = d.decimal()
		case "released":
			x.Released = d.decimal()
		case "threshold":
			x.Threshold = d.decimal()
		case "overdraft_limit":
			x.OverdraftLimit = d.decimal()
		case "cost_per_credit":
			x.CostPerCredit = d.decimalPtr()
		case "source":
			x.Source = domain.Source(d.istr())
		case "priority":
			x.Priority = d.int()
		case "effective_at":
			x.EffectiveAt = d.time()
		case "expires_at":
			x.ExpiresAt = d.timePtr()
		case "occurred_at":
			x.OccurredAt = d.time()
		case "created_at":
			x.CreatedAt = d.time()
		case "currency":
			x.Currency = d.istr()
		case "description":
			x.Description = d.istr()
		case "reference":
			x.Reference = d.istr()
		case "reason":
			x.Reason = d.istr()
		case "metadata":
			if x.Metadata != nil {
				d.fail() // repeated: encoding/json would merge the maps
				break
			}
			x.Metadata = d.stringMap()
		case "dimensions":
			if dimensions {
				d.fail() // repeated: encoding/json would merge the objects
				break
			}
			dimensions = true
			d.dimensions(&x.Dimensions)
		case "burned":
			if x.Burned != nil {
				d.fail() // repeated: encoding/json would merge the arrays
				break
			}
			x.Burned = d.burns()
		case "returned":
			if x.Returned != nil {
				d.fail()
				break
			}
			x.Returned = d.burns()
		case "pinned":
			if x.Pinned != nil {
				d.fail()
				break
			}
			x.Pinned = d.burns()
		case "trigger":
			x.Trigger = d.str()
		case "enabled":
			x.Enabled = d.bool()
		case "tenant_id":
			x.TenantID = d.int64()
		case "name":
			x.Name = d.istr()
		case "email":
			x.Email = d.istr()
		case "request_key":
			x.RequestKey = d.str()
		case "key_id":
			x.KeyID = d.str()
		case "key_hash":
			x.KeyHash = d.str()
		case "prefix":
			x.Prefix = d.str()
		case "fp":
			x.Fingerprint = d.uint64()
		case "subscription_id":
			x.SubscriptionID = d.istr()
		case "credits_per_period":
			x.CreditsPerPeriod = d.decimal()
		case "period":
			x.Period = domain.Period(d.istr())
		case "starts_at":
			x.StartsAt = d.time()
		case "ends_at":
			x.EndsAt = d.time()
		case "price_amount":
			x.PriceAmount = d.decimalPtr()
		case "price_currency":
			x.PriceCurrency = d.istr()
		case "rollover":
			x.Rollover = d.bool()
		case "thresholds":
			if x.Thresholds != nil {
				d.fail()
				break
			}
			x.Thresholds = d.decimals()
		case "webhook_url":
			x.WebhookURL = d.str()
		case "batch_key":
			x.BatchKey = d.str()
		case "count":
			x.Count = d.int()
		default:
			// Unknown keys, and currency_config: a json.RawMessage of a
			// rare registry event, not worth copying encoding/json's
			// compaction rules for.
			d.fail()
		}
	}
}

func (d *decoder) dimensions(x *domain.Dimensions) {
	for more := d.enter('{', '}'); more && !d.bad; more = d.more('}') {
		switch string(d.key()) {
		case "module":
			x.Module = d.istr()
		case "service":
			x.Service = d.istr()
		case "user_id":
			x.UserID = d.istr()
		case "workflow_id":
			x.WorkflowID = d.istr()
		case "workflow_run_id":
			x.WorkflowRunID = d.istr()
		case "endpoint":
			x.Endpoint = d.istr()
		case "success":
			x.Success = d.bool()
		case "quantity":
			x.Quantity = d.decimal()
		case "custom":
			if x.Custom != nil {
				d.fail() // repeated: encoding/json would merge the maps
				break
			}
			x.Custom = d.stringMap()
		default:
			d.fail()
		}
	}
}

// burns reads burned or returned; [] gives an empty, non-nil slice as with
// encoding/json.
//
// Nearly every usage event has one, so they are carved from a slab shared
// by the commit's events, saving an allocation per event. Each is capped at
// its length: an append to one copies it rather than overwrite the next.
func (d *decoder) burns() []domain.Burn {
	start := len(d.burnSlab)
	for more := d.enter('[', ']'); more && !d.bad; more = d.more(']') {
		var b domain.Burn
		for more := d.enter('{', '}'); more && !d.bad; more = d.more('}') {
			switch string(d.key()) {
			case "grant_id":
				b.GrantID = d.istr()
			case "amount":
				b.Amount = d.decimal()
			default:
				d.fail()
			}
		}
		if len(d.burnSlab) == cap(d.burnSlab) {
			// A new slab, the burns read so far moved to its start.
			slab := make([]domain.Burn, 0, max(burnSlabLen, 2*(len(d.burnSlab)-start)))
			d.burnSlab = append(slab, d.burnSlab[start:]...)
			start = 0
		}
		d.burnSlab = append(d.burnSlab, b)
	}
	if len(d.burnSlab) == start {
		return []domain.Burn{}
	}
	return d.burnSlab[start:len(d.burnSlab):len(d.burnSlab)]
}
