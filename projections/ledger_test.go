package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/seed"
)

// One commit mixing lines, tenants and entry types: the ledger insert
// groups runs of rows that share their line and totals, and every group
// boundary must keep the recorded order and the running totals.
func TestLedgerRowsKeepOrderAcrossGroups(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	p, err := NewProjector(context.Background(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	d := func(s string) decimal.Decimal { return decimal.RequireFromString(s) }
	grant := func(tenant int64, line, id, amount string) domain.Envelope {
		return domain.Envelope{TenantID: tenant, CreditType: line, Event: domain.CreditsGranted{GrantID: id, Amount: d(amount),
			Source: domain.SourcePurchase, EffectiveAt: at}}
	}
	use := func(tenant int64, line, id, amount, grantID string) domain.Envelope {
		return domain.Envelope{TenantID: tenant, CreditType: line, Event: domain.UsageDebited{UsageID: id, Amount: d(amount), OccurredAt: at,
			Dimensions: domain.Dimensions{Module: "m", Success: true, Quantity: d("1")}, Burned: []domain.Burn{{GrantID: grantID, Amount: d(amount)}}}}
	}
	events := []domain.Envelope{
		grant(1, "a", "g1", "100"),
		use(1, "a", "u1", "1", "g1"), use(1, "a", "u2", "2", "g1"),
		grant(1, "a", "g2", "50"), // the totals change mid-run
		use(1, "a", "u3", "3", "g1"),
		grant(2, "a", "g3", "10"), use(2, "a", "u4", "4", "g3"), // another tenant in between
		use(1, "a", "u5", "5", "g1"),
		grant(1, "b", "g4", "7"), use(1, "b", "u6", "0.5", "g4"), // another line
		{TenantID: 1, CreditType: "a", Event: domain.CreditsAdjusted{AdjustmentID: "adj", Amount: d("-1"), Reason: "fix",
			Burned: []domain.Burn{{GrantID: "g1", Amount: d("1")}}}},
		use(1, "a", "u7", "6", "g1"),
		grant(1, "a", "g5", "1"), grant(1, "a", "g6", "2"), // a run of credits: granted moves row by row
	}
	for i := range 200 { // more than one statement's worth of rows
		events = append(events, use(1, "a", fmt.Sprintf("bulk%d", i), "0.01", "g2"))
	}
	commits := []Decoded{{Sequence: 1, Commit: eventstore.Commit{Version: 1, RecordedAt: at, Events: events}}}
	if err := p.ApplyDecoded(context.Background(), commits); err != nil {
		t.Fatal(err)
	}
	checkLedgerChains(t, db.Reader())
	rows, err := db.Reader().Query(`SELECT source_id, granted_after, adjusted_after, used_after, expired_after FROM ledger
		WHERE tenant_id = 1 AND credit_type = 'a' ORDER BY entry_id LIMIT 10`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want := []struct {
		id                              string
		granted, adjusted, used, expire int64
	}{
		{"g1", 100e6, 0, 0, 0}, {"u1", 100e6, 0, 1e6, 0}, {"u2", 100e6, 0, 3e6, 0}, {"g2", 150e6, 0, 3e6, 0},
		{"u3", 150e6, 0, 6e6, 0}, {"u5", 150e6, 0, 11e6, 0}, {"adj", 150e6, -1e6, 11e6, 0}, {"u7", 150e6, -1e6, 17e6, 0},
		{"g5", 151e6, -1e6, 17e6, 0}, {"g6", 153e6, -1e6, 17e6, 0},
	}
	for _, w := range want {
		if !rows.Next() {
			t.Fatalf("ledger ends before %s", w.id)
		}
		var id string
		var granted, adjusted, used, expired int64
		if err := rows.Scan(&id, &granted, &adjusted, &used, &expired); err != nil {
			t.Fatal(err)
		}
		if id != w.id || granted != w.granted || adjusted != w.adjusted || used != w.used || expired != w.expire {
			t.Fatalf("entry %s: got %s granted %d adjusted %d used %d expired %d, want %+v", w.id, id, granted, adjusted, used, expired, w)
		}
	}
	var n int
	if err := db.Reader().QueryRow(`SELECT count(*) FROM ledger`).Scan(&n); err != nil || n != len(events) {
		t.Fatalf("%d ledger rows (%v), want %d", n, err, len(events))
	}
}

// A bulk load over many days and batches carries the usage cube's latest
// days from batch to batch: it must end exactly where a catch-up that
// writes every batch whole does.
func TestBulkLoadEqualsCatchUpOverManyDays(t *testing.T) {
	t.Parallel()
	srv := seedStore(t, seed.Shape{TenantID: 1, Events: 40_000, Days: 40, End: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), EventsPerCommit: 20, Seed: 3})
	ctx := context.Background()
	caughtUp, bulk := openDB(t), openDB(t)
	pc, _ := NewProjector(ctx, caughtUp, nil)
	if err := pc.CatchUp(ctx, srv.Store, 0); err != nil {
		t.Fatal(err)
	}
	pb, _ := NewProjector(ctx, bulk, nil)
	if err := pb.Replay(ctx, srv.Store, ReplayOptions{Bulk: true}); err != nil {
		t.Fatal(err)
	}
	if a, b := dump(t, caughtUp), dump(t, bulk); a != b {
		t.Fatalf("bulk load differs from catch-up:\n%s", firstDifference(a, b))
	}
	var days int
	if err := bulk.Reader().QueryRow(`SELECT count(DISTINCT day) FROM usage_daily`).Scan(&days); err != nil || days < 40 {
		t.Fatalf("the cube has %d days (%v), want 40 or more", days, err)
	}
}

// A bulk-load batch that fails before it commits leaves the carried cube
// cells as they were: applying the same commits again counts each usage
// once.
func TestCarriedCellsSurviveAFailedBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var decoded []Decoded
	shape := seed.Shape{TenantID: 1, Events: 6_000, Days: 6, End: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), EventsPerCommit: 20, Seed: 5}
	err := seed.Commits(shape, func(seq uint64, data []byte) error {
		c, err := eventstore.DecodeCommit(data)
		decoded = append(decoded, Decoded{Sequence: seq, Subject: shape.Subject(seq), Hash: eventstore.Hash(data), Commit: c})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	plain, carrying := openDB(t), openDB(t)
	pp, _ := NewProjector(ctx, plain, nil)
	if err := pp.ApplyDecoded(ctx, decoded); err != nil {
		t.Fatal(err)
	}
	pc, _ := NewProjector(ctx, carrying, nil)
	pc.carried = map[cubeKey]*cubeDelta{}
	half := len(decoded) / 2
	if err := pc.ApplyDecoded(ctx, decoded[:half]); err != nil {
		t.Fatal(err)
	}
	pc.beforeCommit = func(uint64) error { return errors.New("crash") }
	if err := pc.ApplyDecoded(ctx, decoded[half:]); err == nil {
		t.Fatal("the failing batch committed")
	}
	pc.beforeCommit = nil
	if err := pc.ApplyDecoded(ctx, decoded[half:]); err != nil {
		t.Fatal(err)
	}
	if err := pc.flushCarried(ctx); err != nil {
		t.Fatal(err)
	}
	if a, b := dump(t, plain), dump(t, carrying); a != b {
		t.Fatalf("carrying differs after a failed batch:\n%s", firstDifference(a, b))
	}
}

// Every column of every ledger row, as flushLedger writes it in either
// form: runs of one line long enough for a group's statement (ledgerGroupMin
// and over, past ledgerRowsPerInsert), and rows of different lines bound
// whole (past ledgerWholeRowsPerInsert), read back by entry id.
func TestLedgerFlushWritesEveryColumnInEitherForm(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	var rows []ledgerRow
	add := func(tenant int64, n int) {
		for range n {
			i := len(rows)
			r := ledgerRow{tenantID: tenant, creditType: "line" + fmt.Sprint(tenant%3), entryType: []string{ledgerDebit, ledgerCredit, ledgerAdjustment, ledgerExpiry}[tenant%4],
				amount: int64(-i - 1), granted: 1e12 + tenant, adjusted: -tenant, used: int64(i) * 7, expired: tenant * 3,
				sourceID: fmt.Sprintf("s%d", i), description: fmt.Sprintf("d%d", tenant), reference: fmt.Sprintf("r%d", tenant%5),
				metadata: fmt.Sprintf(`{"t":%d}`, tenant), createdAt: 1_780_000_000_000_000 + tenant, position: uint64(tenant + 1)}
			if i%3 != 0 {
				r.occurredAt, r.hasOccurredAt = r.createdAt-int64(i), true
			}
			rows = append(rows, r)
		}
	}
	add(1, 1)
	add(2, 3)
	add(3, ledgerGroupMin+1)
	add(4, 1)
	for t := range int64(ledgerWholeRowsPerInsert + 6) {
		add(100+t, 1+int(t%2)) // runs of one and two rows
	}
	add(5, ledgerRowsPerInsert+3)
	add(6, ledgerGroupMin-1)
	err := inBatchTx(t, db, true, func(b *batch, _ *sql.Tx) error {
		b.ledgerRows = rows
		return b.inFlush(b.flushLedger)
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.Reader().Query(`SELECT entry_id, tenant_id, credit_type, type, amount, balance_after, granted_after, adjusted_after,
		used_after, expired_after, source_id, description, reference, metadata, created_at, position, occurred_at FROM ledger ORDER BY entry_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	i := 0
	for ; got.Next(); i++ {
		var g ledgerRow
		var id int64
		var occurred sql.NullInt64
		if err := got.Scan(&id, &g.tenantID, &g.creditType, &g.entryType, &g.amount, &g.balance, &g.granted, &g.adjusted,
			&g.used, &g.expired, &g.sourceID, &g.description, &g.reference, &g.metadata, &g.createdAt, &g.position, &occurred); err != nil {
			t.Fatal(err)
		}
		g.occurredAt, g.hasOccurredAt = occurred.Int64, occurred.Valid
		if i >= len(rows) {
			t.Fatalf("more rows than the %d flushed", len(rows))
		}
		want := rows[i]
		want.balance = want.granted + want.adjusted - want.used - want.expired
		if id != int64(i+1) || g != want {
			t.Fatalf("entry %d (row %d):\n got %+v\nwant %+v", id, i, g, want)
		}
	}
	if err := got.Err(); err != nil {
		t.Fatal(err)
	}
	if i != len(rows) {
		t.Fatalf("%d ledger rows, want %d", i, len(rows))
	}
}
