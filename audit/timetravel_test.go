package audit_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/creditd/creditd/audit"
	"github.com/creditd/creditd/internal/stack"
	"github.com/creditd/creditd/projections"
	"github.com/creditd/creditd/queries"
)

// The balance as of an instant, from the live read models, equals the
// balance in read models replayed from the log up to that instant; replay
// in two halves equals replay at once; and both verify against the log.
func TestTimeTravelAndReplay(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	tenant, key := scenario(t, s)
	ctx := context.Background()

	var instants []time.Time
	rows, err := s.DB.Reader().Query(`SELECT DISTINCT created_at FROM ledger WHERE tenant_id = ? ORDER BY 1`, tenant)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var at int64
		rows.Scan(&at)
		instants = append(instants, time.UnixMicro(at).UTC())
	}
	rows.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	var picks []time.Time
	for _, at := range instants {
		picks = append(picks, at, at.Add(-time.Microsecond))
	}
	for range 6 {
		a := instants[rng.IntN(len(instants))]
		picks = append(picks, a.Add(time.Duration(rng.IntN(3600))*time.Second))
	}
	for _, at := range picks {
		db, err := projections.Open(filepath.Join(t.TempDir(), "replay.db"))
		if err != nil {
			t.Fatal(err)
		}
		p, _ := projections.NewProjector(ctx, db, nil)
		if err := p.Replay(ctx, s.NATS.Store, projections.ReplayOptions{Until: at, TenantID: tenant}); err != nil {
			t.Fatal(err)
		}
		replayed, err := queries.New(db.Reader()).Balance(ctx, tenant, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		asOf := s.Must(http.StatusOK, http.MethodGet, "/v1/balance?as_of="+at.Format(time.RFC3339Nano), key, nil)["total"].(map[string]any)
		for field, want := range map[string]string{"granted": replayed.Total.Granted.String(), "adjusted": replayed.Total.Adjusted.String(),
			"used": replayed.Total.Used.String(), "expired": replayed.Total.Expired.String(), "reserved": replayed.Total.Reserved.String(),
			"available": replayed.Total.Available.String()} {
			if got := asOf[field]; got == nil || got.(interface{ String() string }).String() != want {
				t.Fatalf("as of %s: %s = %v, replay --until says %s", at.Format(time.RFC3339Nano), field, got, want)
			}
		}
		db.Close()
	}

	t.Run("replaying_in_two_halves_equals_replaying_at_once", func(t *testing.T) {
		last, _ := s.NATS.Store.LastPosition(ctx)
		whole, _ := projections.Open(filepath.Join(t.TempDir(), "whole.db"))
		defer whole.Close()
		pw, _ := projections.NewProjector(ctx, whole, nil)
		if err := pw.Replay(ctx, s.NATS.Store, projections.ReplayOptions{}); err != nil {
			t.Fatal(err)
		}
		halves, _ := projections.Open(filepath.Join(t.TempDir(), "halves.db"))
		defer halves.Close()
		ph, _ := projections.NewProjector(ctx, halves, nil)
		if err := ph.Replay(ctx, s.NATS.Store, projections.ReplayOptions{UpTo: last / 2}); err != nil {
			t.Fatal(err)
		}
		ph2, _ := projections.NewProjector(ctx, halves, nil)
		if err := ph2.Replay(ctx, s.NATS.Store, projections.ReplayOptions{}); err != nil {
			t.Fatal(err)
		}
		a, errA := projections.Dump(whole)
		b, errB := projections.Dump(halves)
		if errA != nil || errB != nil || a != b {
			t.Fatal("replay in two halves differs from replay at once")
		}
		for _, db := range []*projections.DB{whole, halves} {
			report, err := audit.Verify(ctx, s.NATS.Store, db.Reader(), 0)
			if err != nil || !report.OK {
				t.Fatalf("verify on a replayed database: %+v %v", report, err)
			}
		}
	})
}
