package projections

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/seed"
)

// The live consumer decodes each delivery as it queues it. A delivery the
// log holds but creditd did not write stalls the projection there, as
// Projector.Apply does, and once an operator sets it aside the deliveries
// already decoded apply as if decoded after: a message that does not
// decode, and one that decodes but does not link to its chain (decoded,
// then set aside, it must not be applied from the decoding made before).
func TestLiveDeliveriesDecodedAheadStallAndResumeAsApplyDoes(t *testing.T) {
	t.Parallel()
	shape := seed.Shape{TenantID: 1, Events: 400, Days: 4, End: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), EventsPerCommit: 50, Seed: 7}
	var good []eventstore.StoredMsg
	if err := seed.Commits(shape, func(seq uint64, data []byte) error {
		good = append(good, shape.Msg(seq, data))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(good) < 7 {
		t.Fatalf("seed made %d commits, want 7 or more", len(good))
	}
	for _, tc := range []struct {
		name   string
		forged []byte
	}{
		{"does not decode", []byte(`{"not":"a commit"}`)},
		{"does not link", good[3].Data}, // commit 4 again, at 5
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Commits 1-4, the forged message at 5, then the rest one
			// position later: they link to commit 4.
			msgs := append([]eventstore.StoredMsg{}, good[:4]...)
			msgs = append(msgs, eventstore.StoredMsg{Subject: good[3].Subject, Sequence: 5, Data: tc.forged})
			for _, m := range good[4:] {
				m.Sequence++
				msgs = append(msgs, m)
			}
			last := msgs[len(msgs)-1].Sequence
			db := openDB(t)
			p, err := NewProjector(context.Background(), db, nil)
			if err != nil {
				t.Fatal(err)
			}
			a := newApplier(p, nil, slog.New(slog.DiscardHandler))
			batch := a.prepareAll(msgs)

			stalled, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			a.apply(stalled, batch)
			if pos := p.Position(); pos >= 5 {
				t.Fatalf("position %d: the forged message at 5 was applied", pos)
			}
			if !eventstore.IsForeign(p.Err()) {
				t.Fatalf("error shown while stalled: %v, want the foreign message", p.Err())
			}

			p.UseQuarantined(eventstore.Quarantined{5: eventstore.Hash(tc.forged)})
			resumed, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			a.apply(resumed, batch)
			if pos := p.Position(); pos != last {
				t.Fatalf("position %d after the forged message was set aside, want %d (error %v)", pos, last, p.Err())
			}
			if err := p.Err(); err != nil {
				t.Fatalf("error still shown: %v", err)
			}

			// What Projector.Apply makes of the same messages.
			ref := openDB(t)
			rp, err := NewProjector(context.Background(), ref, nil)
			if err != nil {
				t.Fatal(err)
			}
			rp.UseQuarantined(eventstore.Quarantined{5: eventstore.Hash(tc.forged)})
			if err := rp.Apply(context.Background(), msgs); err != nil {
				t.Fatal(err)
			}
			if got, want := dump(t, db), dump(t, ref); got != want {
				t.Fatalf("read models differ from Apply's:\n%s", firstDifference(got, want))
			}
		})
	}
}
