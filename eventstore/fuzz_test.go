package eventstore_test

import (
	"bytes"
	"reflect"
	"testing"
	"time"

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
