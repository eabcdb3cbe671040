package eventstore_test

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// FuzzDecodeCommit: stored bytes decode to a commit that re-encodes to a
// commit decoding the same, or to an error; never a panic. The hand-written
// decoder, when it accepts the bytes, gives what encoding/json gives, and
// DecodeCommit answers as encoding/json whichever path it takes.
func FuzzDecodeCommit(f *testing.F) {
	for _, seed := range []string{
		`{"v":1,"at":"2026-01-01T00:00:00Z","prev":"","events":[{"type":"CreditsGranted","tenant_id":1,"credit_type":"default","data":{"grant_id":"g","amount":"10","source":"purchase","priority":0,"effective_at":"2026-01-01T00:00:00Z"}}]}`,
		`{"v":1,"at":"2026-01-01T00:00:00Z","prev":"ab","events":[{"type":"UsageDebited","tenant_id":2,"credit_type":"gpu","data":{"usage_id":"u","amount":"1.5","occurred_at":"2026-01-01T00:00:00Z","dimensions":{"success":true,"quantity":"0"},"burned":[{"grant_id":"g","amount":"1.5"}]}}]}`,
		`{"v":2,"events":[]}`, `{"v":1,"events":[{"type":"Nope","tenant_id":1,"data":{}}]}`, `{"v":1,"events":[{"type":"GrantExpired","tenant_id":1}]}`, `not json`,
	} {
		f.Add([]byte(seed))
	}
	// Commits of every event type, as EncodeCommit writes them.
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, e := range fastEvents() {
		f.Add(encode(f, eventstore.Commit{RecordedAt: at, Events: []domain.Envelope{e}}))
	}
	f.Add(encode(f, eventstore.Commit{RecordedAt: at, Prev: "ab", Events: fastEvents()[:4]}))
	f.Fuzz(func(t *testing.T, data []byte) {
		if fast, ok := eventstore.DecodeCommitFast(data); ok {
			slow, err := eventstore.DecodeCommitJSON(data)
			if err != nil {
				t.Fatalf("fast path accepts what encoding/json refuses (%v): %q", err, data)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("fast path differs on %q:\nfast %#v\nslow %#v", data, fast, slow)
			}
		}
		sameAsJSON(t, data)
		c, err := eventstore.DecodeCommit(data)
		if err != nil {
			return
		}
		again, err := eventstore.EncodeCommit(c)
		if err != nil {
			t.Fatalf("decoded commit does not encode: %v", err)
		}
		c2, err := eventstore.DecodeCommit(again)
		if err != nil {
			t.Fatalf("re-encoded commit does not decode: %v", err)
		}
		third, _ := eventstore.EncodeCommit(c2)
		if !bytes.Equal(again, third) {
			t.Fatalf("encoding is not stable:\n%s\n%s", again, third)
		}
	})
}

// FuzzEncodeCommit: the hand-written encoder writes events of every type
// with fuzzed fields exactly as json.Marshal does, or fails where it fails
// with its error.
func FuzzEncodeCommit(f *testing.F) {
	f.Add("u-1", "g-1", "2.5", int64(7), uint64(42), int64(25), int16(-1), int64(1_780_000_000), int64(123456789), int32(0), uint8(0xff))
	f.Add("", "", "", int64(0), uint64(0), int64(0), int16(0), int64(0), int64(0), int32(0), uint8(0))
	f.Add("<&>\u2028\u2029", "\x00\x1f\"\\\xff", "-0.000001", int64(-1), uint64(1<<64-1), int64(-1<<63), int16(-30), int64(-62135596800), int64(-1), int32(-12600), uint8(1))
	f.Add("é😀", "\xe2\x80", "123456789012345678901234.5", int64(1<<63-1), uint64(1), int64(9), int16(70), int64(253402300800), int64(0), int32(86400), uint8(2))
	f.Fuzz(func(t *testing.T, text, other, amountText string, number int64, fp uint64, coef int64, exp int16, sec, nsec int64, offset int32, flags uint8) {
		// Exponents are kept small: decimal.String writes out every digit
		// of one, so a large one only measures the machine's memory.
		amount := decimal.New(coef, int32(exp%100))
		if d, err := decimal.NewFromString(amountText); err == nil && d.Exponent() > -100 && d.Exponent() < 100 {
			amount = d
		}
		v := eventValues{text: text, other: other, number: number, fp: fp, amount: amount,
			at: time.Unix(sec, nsec).In(time.FixedZone(other, int(offset%(48*3600)))), set: flags&1 != 0}
		if flags&2 != 0 {
			v.meta = map[string]string{text: other, other: text, text + other: amountText}
		}
		if flags&4 != 0 {
			v.burns = []domain.Burn{{GrantID: text, Amount: amount}, {GrantID: other, Amount: decimal.New(coef, 0)}}
		}
		if flags&8 != 0 {
			v.thresholds = []decimal.Decimal{amount, amount.Neg()}
		}
		checkEveryEvent(t, v)
	})
}
