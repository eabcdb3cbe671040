package queries

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/seed"
	"github.com/creditd/creditd/projections"
)

// The ledger's total, computed from daily counts and edge days, equals a
// plain count for ranges that start and end anywhere in a day.
func TestLedgerTotalEqualsACount(t *testing.T) {
	t.Parallel()
	db, err := projections.Open(filepath.Join(t.TempDir(), "rm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := projections.NewProjector(context.Background(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	var msgs []eventstore.StoredMsg
	shape := seed.Shape{TenantID: 1, Events: 3000, Days: 10, End: end, EventsPerCommit: 50, Seed: 3}
	if err := seed.Commits(shape, func(seq uint64, data []byte) error {
		msgs = append(msgs, shape.Msg(seq, data))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	r := New(db.Reader())
	// The history must be in the read model, or every count below is 0.
	var rows int
	if err := db.Reader().QueryRow("SELECT count(*) FROM ledger WHERE tenant_id = 1").Scan(&rows); err != nil || rows < 3000 {
		t.Fatalf("the ledger holds %d rows (%v), want the 3000 usage events and their grants", rows, err)
	}
	start := end.AddDate(0, 0, -10)
	instants := []*time.Time{nil}
	for h := 0; h < 11*24; h += 7 {
		at := start.Add(time.Duration(h)*time.Hour + 13*time.Minute)
		instants = append(instants, &at)
	}
	for _, from := range instants {
		for _, to := range instants {
			if from != nil && to != nil && from.After(*to) {
				continue
			}
			for _, types := range [][]string{nil, {"debit"}, {"credit", "debit"}, {"credit"}, {"credit", "expiry"}} {
				f := LedgerFilter{From: from, To: to, Types: types}
				got, err := r.ledgerTotal(context.Background(), 1, f)
				if err != nil {
					t.Fatal(err)
				}
				q, args := "SELECT count(*) FROM ledger WHERE tenant_id = 1", []any{}
				if from != nil {
					q, args = q+" AND created_at >= ?", append(args, from.UnixMicro())
				}
				if to != nil {
					q, args = q+" AND created_at <= ?", append(args, to.UnixMicro())
				}
				if len(types) > 0 {
					q += " AND type IN ('" + types[0] + "'"
					for _, ty := range types[1:] {
						q += ", '" + ty + "'"
					}
					q += ")"
				}
				var want int
				if err := db.Reader().QueryRow(q, args...).Scan(&want); err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Fatalf("from %v to %v types %v: total %d, count %d", from, to, types, got, want)
				}
			}
		}
	}
}
