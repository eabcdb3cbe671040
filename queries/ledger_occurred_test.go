package queries

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/seed"
	"github.com/creditd/creditd/projections"
)

// occurredHistory projects, for tenant 1, commits a day's hours apart over
// a week on two lines: grants, usage that occurred up to three days before
// it was recorded or a minute after (some of it free), reversals of some
// of that usage, and adjustments either way.
func occurredHistory(t *testing.T, seedValue uint64) *projections.DB {
	t.Helper()
	db, err := projections.Open(filepath.Join(t.TempDir(), "rm.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	p, err := projections.NewProjector(context.Background(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seedValue, 7))
	shape := seed.Shape{TenantID: 1}
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var msgs []eventstore.StoredMsg
	prev := ""
	emit := func(at time.Time, events ...domain.Envelope) {
		data, err := eventstore.EncodeCommit(eventstore.Commit{RecordedAt: at, Prev: prev, Events: events})
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, shape.Msg(uint64(len(msgs)+1), data))
		prev = eventstore.Hash(data)
	}
	emit(start, domain.Envelope{TenantID: 1, Event: domain.TenantCreated{TenantID: 1, Name: "t", Email: "t@example.test", Currency: "USD", CreatedAt: start}})
	prev = "" // the partition's chain starts empty
	lines := []string{domain.DefaultCreditType, "keys"}
	var used []domain.Envelope // debits that may be reversed, once
	micro := func(n int) decimal.Decimal { return decimal.New(int64(n), -6) }
	for hour := 1; hour < 7*24; hour += 1 + rng.IntN(4) {
		at := start.Add(time.Duration(hour)*time.Hour + time.Duration(rng.IntN(3600e6))*time.Microsecond)
		var events []domain.Envelope
		for range 1 + rng.IntN(6) {
			ct := lines[rng.IntN(len(lines))]
			env := domain.Envelope{TenantID: 1, CreditType: ct}
			switch k := rng.IntN(10); {
			case k == 0:
				env.Event = domain.CreditsGranted{GrantID: fmt.Sprintf("g%d-%d", hour, len(events)), Amount: micro(1 + rng.IntN(1e9)),
					Source: domain.SourcePurchase, EffectiveAt: at}
			case k == 1:
				env.Event = domain.CreditsAdjusted{AdjustmentID: fmt.Sprintf("a%d-%d", hour, len(events)), Amount: micro(rng.IntN(2e8) - 1e8), Reason: "r"}
			case k == 2 && len(used) > 0:
				i := rng.IntN(len(used))
				d := used[i].Event.(domain.UsageDebited)
				env.CreditType = used[i].CreditType // a reversal is on its debit's line
				used = slices.Delete(used, i, i+1)
				env.Event = domain.UsageReversed{UsageID: d.UsageID, Amount: d.Amount, OccurredAt: d.OccurredAt, Dimensions: d.Dimensions, Reason: "refund"}
			default:
				occurred := at.Add(-time.Duration(rng.IntN(3*86400e6))*time.Microsecond + time.Minute)
				amount := micro(rng.IntN(5e6))
				if rng.IntN(8) == 0 {
					amount = decimal.Zero
				}
				d := domain.UsageDebited{UsageID: fmt.Sprintf("u%d-%d", hour, len(events)), Amount: amount, OccurredAt: occurred,
					Dimensions: domain.Dimensions{Endpoint: "/e", Success: true}}
				env.Event = d
				used = append(used, domain.Envelope{CreditType: ct, Event: d})
			}
			if env.Event != nil {
				events = append(events, env)
			}
		}
		emit(at, events...)
	}
	if err := p.Apply(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	return db
}

// occurredRow is a ledger entry as a plain scan of the ledger orders it.
type occurredRow struct {
	id, at, balance int64
	typ             string
}

// TestOccurrenceLedgerEqualsAScan: the occurrence ledger's pages, totals
// and balances, computed from daily counts, edge days, line totals and the
// usage cube, equal a plain scan of the ledger with a running sum, for
// ranges that start and end anywhere in a day, every type and pages at any
// offset.
func TestOccurrenceLedgerEqualsAScan(t *testing.T) {
	t.Parallel()
	for _, seedValue := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed ", seedValue), func(t *testing.T) {
			t.Parallel()
			db := occurredHistory(t, seedValue)
			r := New(db.Reader())
			rows, err := db.Reader().Query(`SELECT entry_id, coalesce(occurred_at, created_at), type,
				sum(amount) OVER (ORDER BY coalesce(occurred_at, created_at), entry_id ROWS UNBOUNDED PRECEDING)
				FROM ledger WHERE tenant_id = 1 ORDER BY coalesce(occurred_at, created_at) DESC, entry_id DESC`)
			if err != nil {
				t.Fatal(err)
			}
			var all []occurredRow
			for rows.Next() {
				var e occurredRow
				if err := rows.Scan(&e.id, &e.at, &e.typ, &e.balance); err != nil {
					t.Fatal(err)
				}
				all = append(all, e)
			}
			rows.Close()
			var reversals int
			if err := db.Reader().QueryRow(`SELECT count(*) FROM ledger WHERE tenant_id = 1 AND type = 'adjustment' AND occurred_at IS NOT NULL`).Scan(&reversals); err != nil {
				t.Fatal(err)
			}
			if len(all) < 150 || reversals < 5 {
				t.Fatalf("the history holds %d entries, %d reversals: too few to test", len(all), reversals)
			}
			rng := rand.New(rand.NewPCG(seedValue, 11))
			start := time.Date(2026, 2, 26, 0, 0, 0, 0, time.UTC)
			instant := func() *time.Time {
				if rng.IntN(6) == 0 {
					return nil
				}
				at := start.Add(time.Duration(rng.Int64N(int64(12 * 24 * time.Hour))))
				switch rng.IntN(6) { // on a day's edges
				case 0, 1:
					at = at.Truncate(24 * time.Hour)
				case 2:
					at = at.Truncate(24 * time.Hour).Add(-time.Microsecond)
				}
				at = at.Truncate(time.Microsecond)
				return &at
			}
			for range 300 {
				f := LedgerFilter{From: instant(), To: instant(), Limit: 1 + rng.IntN(100), Offset: rng.IntN(len(all))}
				if f.From != nil && f.To != nil && f.From.After(*f.To) {
					f.From, f.To = f.To, f.From
				}
				if rng.IntN(2) == 0 {
					// A type named twice counts once.
					f.Types = [][]string{{"debit"}, {"credit"}, {"adjustment", "expiry"}, {"credit", "debit"},
						{"debit", "credit", "debit"}, {"adjustment", "adjustment"}}[rng.IntN(6)]
				}
				var want []occurredRow
				for _, e := range all {
					if (len(f.Types) == 0 || slices.Contains(f.Types, e.typ)) && (f.From == nil || e.at >= f.From.UnixMicro()) &&
						(f.To == nil || e.at <= f.To.UnixMicro()) {
						want = append(want, e)
					}
				}
				page, err := r.OccurrenceLedger(context.Background(), 1, f)
				if err != nil {
					t.Fatal(err)
				}
				what := fmt.Sprintf("from %v to %v types %v limit %d offset %d", f.From, f.To, f.Types, f.Limit, f.Offset)
				if page.Total != len(want) {
					t.Fatalf("%s: total %d, the scan %d", what, page.Total, len(want))
				}
				want = want[min(f.Offset, len(want)):min(f.Offset+f.Limit, len(want))]
				if len(page.Entries) != len(want) {
					t.Fatalf("%s: %d entries, the scan %d", what, len(page.Entries), len(want))
				}
				for i, e := range page.Entries {
					w := want[i]
					if e.ID != w.id || e.CreatedAt.UnixMicro() != w.at || !e.BalanceAfter.Equal(fromMicro(w.balance)) {
						t.Fatalf("%s: entry %d is (%d, %s, balance %s), the scan's (%d, %s, balance %s)", what, i,
							e.ID, e.CreatedAt.Format(time.RFC3339Nano), e.BalanceAfter, w.id, fromMicros(w.at).Format(time.RFC3339Nano), fromMicro(w.balance))
					}
				}
			}
		})
	}
}
