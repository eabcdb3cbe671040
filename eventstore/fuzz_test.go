package eventstore_test

import (
	"bytes"
	"testing"

	"github.com/creditd/creditd/eventstore"
)

// FuzzDecodeCommit: stored bytes decode to a commit that re-encodes to a
// commit decoding the same, or to an error; never a panic.
func FuzzDecodeCommit(f *testing.F) {
	for _, seed := range []string{
		`{"v":1,"at":"2026-01-01T00:00:00Z","prev":"","events":[{"type":"CreditsGranted","tenant_id":1,"credit_type":"default","data":{"grant_id":"g","amount":"10","source":"purchase","priority":0,"effective_at":"2026-01-01T00:00:00Z"}}]}`,
		`{"v":1,"at":"2026-01-01T00:00:00Z","prev":"ab","events":[{"type":"UsageDebited","tenant_id":2,"credit_type":"gpu","data":{"usage_id":"u","amount":"1.5","occurred_at":"2026-01-01T00:00:00Z","dimensions":{"success":true,"quantity":"0"},"burned":[{"grant_id":"g","amount":"1.5"}]}}]}`,
		`{"v":2,"events":[]}`, `{"v":1,"events":[{"type":"Nope","tenant_id":1,"data":{}}]}`, `{"v":1,"events":[{"type":"GrantExpired","tenant_id":1}]}`, `not json`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
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
