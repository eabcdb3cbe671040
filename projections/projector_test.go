package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/audit"
	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/internal/testnats"
)

// scenario writes a random history through the real engine: several
// tenants and lines, grants with expiry and priority, usage with
// dimensions (some rejected, some late), reservations captured, released
// and expired, adjustments and auto-reload.
func scenario(t *testing.T, seed uint64) (*testnats.Server, *commands.Engine, func(time.Duration)) {
	t.Helper()
	srv := testnats.Start(t, t.TempDir())
	var mu sync.Mutex
	now := time.Date(2026, 2, 1, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	engine, err := commands.New(context.Background(), srv.Store, commands.Options{Clock: clock, CheckInvariants: true, SweepInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(engine.Close)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 7))
	var tenants []int64
	for i := range 3 {
		c, err := engine.CreateTenant(ctx, commands.CreateTenant{Name: fmt.Sprintf("t%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		tenants = append(tenants, c.Tenant.ID)
	}
	amount := func(max int64) decimal.Decimal { return decimal.New(rng.Int64N(max*1000)+1, -3) }
	lines := []string{"default", "gpu"}
	modules := []string{"search", "enrich", "lasso"}
	for step := range 300 {
		tenant := tenants[rng.IntN(len(tenants))]
		line := lines[rng.IntN(len(lines))]
		id := fmt.Sprintf("s%d", step)
		switch k := rng.IntN(10); {
		case k < 2:
			g := domain.Grant{GrantID: id, Amount: amount(500), Source: domain.SourcePurchase, Priority: rng.IntN(3)}
			if rng.IntN(3) == 0 {
				exp := clock().Add(time.Duration(rng.IntN(6)+1) * time.Hour)
				g.ExpiresAt = &exp
			}
			if _, err := engine.Grant(ctx, tenant, line, g); err != nil {
				t.Fatal(err)
			}
		case k < 7:
			var batch []commands.UsageEvent
			for j := range rng.IntN(5) + 1 {
				batch = append(batch, commands.UsageEvent{CreditType: line, RecordUsage: domain.RecordUsage{
					UsageID: fmt.Sprintf("%s-%d", id, j), Amount: amount(40),
					OccurredAt: clock().Add(-time.Duration(rng.IntN(72)) * time.Hour),
					Dimensions: domain.Dimensions{Module: modules[rng.IntN(3)], UserID: fmt.Sprintf("u%d", rng.IntN(4)),
						Endpoint: "/v1/x", Success: rng.IntN(5) > 0, Quantity: decimal.NewFromInt(int64(rng.IntN(10))),
						Custom: map[string]string{"table_id": fmt.Sprint(rng.IntN(2))}},
				}})
			}
			if _, err := engine.RecordUsage(ctx, tenant, batch); err != nil {
				t.Fatal(err)
			}
		case k < 9:
			_, err := engine.Reserve(ctx, tenant, line, domain.Reserve{ReservationID: id, Amount: amount(20), TTL: time.Duration(rng.IntN(3)+1) * time.Hour})
			if errors.Is(err, domain.ErrInsufficientCredits) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			switch rng.IntN(3) {
			case 0:
				part := decimal.New(rng.Int64N(1000), -3)
				if _, err := engine.Capture(ctx, tenant, line, domain.Capture{ReservationID: id, Amount: &part}); err != nil && !errors.Is(err, domain.ErrCaptureExceedsHold) {
					t.Fatal(err)
				}
			case 1:
				if _, err := engine.Release(ctx, tenant, line, id); err != nil {
					t.Fatal(err)
				}
			}
		case k < 8 && step%7 == 0:
			// Amendments: reverse an earlier debit, void a grant.
			if _, err := engine.ReverseUsage(ctx, tenant, domain.ReverseUsage{UsageID: fmt.Sprintf("s%d-0", step-rng.IntN(step+1)), Reason: "refund"}); err != nil &&
				!errors.Is(err, domain.ErrUsageNotFound) {
				t.Fatal(err)
			}
			if _, err := engine.VoidGrant(ctx, tenant, line, domain.VoidGrant{GrantID: fmt.Sprintf("s%d", step-rng.IntN(step+1)), Reason: "refund"}); err != nil &&
				!errors.Is(err, domain.ErrGrantNotFound) {
				t.Fatal(err)
			}
		default:
			a := amount(30)
			if rng.IntN(2) == 0 {
				a = a.Neg()
			}
			if _, err := engine.Adjust(ctx, tenant, line, domain.Adjust{AdjustmentID: id, Amount: a, Reason: "correction"}); err != nil {
				t.Fatal(err)
			}
			if rng.IntN(4) == 0 {
				engine.ConfigureAutoReload(ctx, tenant, line, domain.ConfigureAutoReload{Enabled: true, Threshold: decimal.NewFromInt(50), Amount: decimal.NewFromInt(100)})
			}
		}
		if rng.IntN(20) == 0 {
			// Let holds and grants expire through the sweeper.
			advance(2 * time.Hour)
			time.Sleep(40 * time.Millisecond)
		}
	}
	advance(10 * time.Hour)
	time.Sleep(100 * time.Millisecond)
	return srv, engine, advance
}

func openDB(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "rm.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func dump(t *testing.T, db *DB) string {
	t.Helper()
	out, err := Dump(db)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func rebuild(t *testing.T, srv *testnats.Server) *DB {
	t.Helper()
	db := openDB(t)
	p, err := NewProjector(context.Background(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CatchUp(context.Background(), srv.Store, 0); err != nil {
		t.Fatal(err)
	}
	return db
}

func consumeUntil(t *testing.T, srv *testnats.Server, p *Projector, position uint64) {
	t.Helper()
	conn, err := srv.Embedded.Connect("projection-test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Consume(ctx, conn, p, srv.Store, nil) }()
	wait, cancelWait := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelWait()
	err = p.WaitFor(wait, position)
	cancel()
	<-done
	if err != nil {
		t.Fatalf("projection at %d, want %d: %v", p.Position(), position, err)
	}
}

// For random histories, the read models built live, commit by commit
// through Watermill, equal the ones rebuilt from the log in large batches
// and the ones replayed in two halves, and all verify against the log.
func TestRebuildEqualsIncremental(t *testing.T) {
	t.Parallel()
	for seed := range uint64(3) {
		t.Run(fmt.Sprintf("seed_%d", seed), func(t *testing.T) {
			t.Parallel()
			rebuildEqualsIncremental(t, seed+1)
		})
	}
}

func rebuildEqualsIncremental(t *testing.T, seed uint64) {
	srv, engine, _ := scenario(t, seed)
	engine.Close()
	last, err := srv.Store.LastPosition(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	live := openDB(t)
	p, err := NewProjector(context.Background(), live, nil)
	if err != nil {
		t.Fatal(err)
	}
	consumeUntil(t, srv, p, last)
	rebuilt := rebuild(t, srv)
	if a, b := dump(t, live), dump(t, rebuilt); a != b {
		t.Fatalf("incremental and rebuilt read models differ:\n%s", firstDifference(a, b))
	}
	halves := openDB(t)
	ph, _ := NewProjector(context.Background(), halves, nil)
	if err := ph.Replay(context.Background(), srv.Store, ReplayOptions{UpTo: last / 2}); err != nil {
		t.Fatal(err)
	}
	if err := ph.CatchUp(context.Background(), srv.Store, 0); err != nil {
		t.Fatal(err)
	}
	if a, b := dump(t, live), dump(t, halves); a != b {
		t.Fatalf("replay in two halves differs:\n%s", firstDifference(a, b))
	}
	// A bulk load (rebuild, replay) takes other paths: no ledger indexes
	// while loading, an in-memory journal. It ends with the same content,
	// every index back, and the database in WAL mode again.
	bulk := openDB(t)
	pb, _ := NewProjector(context.Background(), bulk, nil)
	if err := pb.Replay(context.Background(), srv.Store, ReplayOptions{Bulk: true}); err != nil {
		t.Fatal(err)
	}
	if a, b := dump(t, live), dump(t, bulk); a != b {
		t.Fatalf("bulk replay differs:\n%s", firstDifference(a, b))
	}
	var mode string
	var indexes int
	if err := bulk.writer.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal mode after a bulk load: %q %v", mode, err)
	}
	if err := bulk.writer.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name IN (?, ?, ?, ?, ?)`,
		bulkIndexes[0], bulkIndexes[1], bulkIndexes[2], bulkIndexes[3], bulkIndexes[4]).Scan(&indexes); err != nil || indexes != len(bulkIndexes) {
		t.Fatalf("%d of the %d indexes after a bulk load (%v)", indexes, len(bulkIndexes), err)
	}
	// The index builds' small page cache does not outlive them.
	var cacheSize int
	if err := bulk.writer.QueryRow(`PRAGMA cache_size`).Scan(&cacheSize); err != nil || cacheSize != -writerCacheKiB {
		t.Fatalf("page cache after a bulk load: %d, want %d (%v)", cacheSize, -writerCacheKiB, err)
	}
	checkLedgerChains(t, live.Reader())
	report, err := audit.Verify(context.Background(), srv.Store, live.Reader(), 0)
	if err != nil || !report.OK {
		t.Fatalf("verify: %+v %v", report, err)
	}
}

// A projection that dies mid-batch (the transaction never commits) resumes
// from its checkpoint and ends exactly where an uninterrupted one does: no
// commit lost, none counted twice.
func TestResumeAfterACrashMidBatch(t *testing.T) {
	t.Parallel()
	srv, engine, _ := scenario(t, 2)
	engine.Close()
	last, _ := srv.Store.LastPosition(context.Background())
	db := openDB(t)

	crashes := 0
	for attempt := 0; ; attempt++ {
		p, err := NewProjector(context.Background(), db, nil)
		if err != nil {
			t.Fatal(err)
		}
		crashAt := p.Position() + uint64(attempt%7) + 3
		p.beforeCommit = func(position uint64) error {
			if position >= crashAt && crashes < 5 {
				crashes++
				return errors.New("simulated crash before commit")
			}
			return nil
		}
		err = p.CatchUp(context.Background(), srv.Store, 0)
		if err == nil {
			break
		}
		if attempt > 20 {
			t.Fatalf("never finished: %v", err)
		}
	}
	if crashes == 0 {
		t.Fatal("the test crashed nothing")
	}
	// Live consumption too: stop the consumer at arbitrary points and
	// start a new one on the same database.
	live := openDB(t)
	for stop := range 4 {
		p, err := NewProjector(context.Background(), live, nil)
		if err != nil {
			t.Fatal(err)
		}
		consumeUntil(t, srv, p, min(last, uint64(stop+1)*last/4))
	}
	want := dump(t, rebuild(t, srv))
	if got := dump(t, db); got != want {
		t.Fatalf("after crashes, batch catch-up differs from a clean rebuild:\n%s", firstDifference(got, want))
	}
	if got := dump(t, live); got != want {
		t.Fatalf("after restarts, live consumption differs from a clean rebuild:\n%s", firstDifference(got, want))
	}
}

// checkLedgerChains asserts each line's ledger adds up: every entry's
// balance_after is the previous one plus its amount.
func checkLedgerChains(t *testing.T, db *sql.DB) {
	t.Helper()
	rows, err := db.Query(`SELECT tenant_id, credit_type, amount, balance_after FROM ledger ORDER BY tenant_id, credit_type, entry_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type key struct {
		tenant int64
		line   string
	}
	balances := map[key]int64{}
	n := 0
	for rows.Next() {
		var k key
		var amount, after int64
		if err := rows.Scan(&k.tenant, &k.line, &amount, &after); err != nil {
			t.Fatal(err)
		}
		if balances[k]+amount != after {
			t.Fatalf("ledger of %v: %d + %d != balance_after %d", k, balances[k], amount, after)
		}
		balances[k] = after
		n++
	}
	var lines int
	for k, b := range balances {
		var balance int64
		if err := db.QueryRow(`SELECT granted + adjusted - used - expired FROM lines WHERE tenant_id = ? AND credit_type = ?`, k.tenant, k.line).Scan(&balance); err != nil {
			t.Fatal(err)
		}
		if balance != b {
			t.Fatalf("line %v: balance %d, ledger ends at %d", k, balance, b)
		}
		lines++
	}
	if n == 0 || lines == 0 {
		t.Fatal("empty ledger: the scenario wrote nothing")
	}
}

func firstDifference(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			return fmt.Sprintf("line %d:\n  got  %s\n  want %s", i, la[i], lb[i])
		}
	}
	return fmt.Sprintf("lengths differ: %d vs %d lines", len(la), len(lb))
}
