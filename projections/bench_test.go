package projections

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/seed"
	"github.com/creditd/creditd/internal/testnats"
)

// BenchmarkCatchUp measures the projection's apply rate: usage events per
// second from the stream (a real embedded JetStream holding 200,000 usage
// events in commits of 100) into fresh SQLite read models, as a rebuild or
// a catch-up after downtime does it. The events are as dense as in the
// read benchmarks' tenant (10 million over two years: 13,700 a day), which
// decides how many usage-cube cells a batch touches.
//
//	go test -run '^$' -bench CatchUp -benchtime 3x ./projections/
//
// CREDITD_BENCH_EVENTS sets the count; the replay figure for 10 million:
//
//	CREDITD_BENCH_EVENTS=10000000 go test -run '^$' -bench CatchUp -benchtime 1x -timeout 60m ./projections/
func BenchmarkCatchUp(b *testing.B) {
	events := 200_000
	if v, err := strconv.Atoi(os.Getenv("CREDITD_BENCH_EVENTS")); err == nil && v > 0 {
		events = v
	}
	srv := seedStore(b, seed.Shape{TenantID: 1, Events: events, Days: max(1, events/13_700), End: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), EventsPerCommit: 100, Seed: 1})
	ctx := context.Background()
	// The replay's two phases: applying the log, then building the
	// ledger's indexes.
	var applied, indexed time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		db, err := Open(filepath.Join(b.TempDir(), "rm.db"))
		if err != nil {
			b.Fatal(err)
		}
		p, err := NewProjector(ctx, db, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		var last Progress
		if err := p.Replay(ctx, srv.Store, ReplayOptions{Bulk: true, Progress: func(p Progress) { last = p }}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		applied += last.Elapsed
		indexed += time.Since(start) - last.Elapsed
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(applied.Seconds()/float64(b.N), "apply-s")
	b.ReportMetric(indexed.Seconds()/float64(b.N), "index-s")
}

func seedDecoded(b *testing.B, events int) []Decoded {
	b.Helper()
	var msgs []eventstore.StoredMsg
	shape := seed.Shape{TenantID: 1, Events: events, Days: max(1, events/13_700), End: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), EventsPerCommit: 100, Seed: 1}
	err := seed.Commits(shape, func(seq uint64, data []byte) error {
		msgs = append(msgs, shape.Msg(seq, data))
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	decoded, err := Decode(msgs, nil)
	if err != nil {
		b.Fatal(err)
	}
	return decoded
}

// BenchmarkDecode and BenchmarkApplyDecoded split the catch-up's two
// stages, which run on separate goroutines.
func BenchmarkDecode(b *testing.B) {
	var msgs []eventstore.StoredMsg
	shape := seed.Shape{TenantID: 1, Events: 100_000, Days: 100_000 / 13_700, End: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), EventsPerCommit: 100, Seed: 1}
	seed.Commits(shape, func(seq uint64, data []byte) error {
		msgs = append(msgs, shape.Msg(seq, data))
		return nil
	})
	b.ResetTimer()
	for range b.N {
		if _, err := Decode(msgs, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(100_000*b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkApplyDecoded(b *testing.B) { benchmarkApply(b, rebuildBatchCommitsMax) }

// benchmarkApply applies 100,000 decoded usage events in commits of 100,
// commitsPerBatch to a transaction, into fresh read models.
func benchmarkApply(b *testing.B, commitsPerBatch int) {
	const events = 100_000
	decoded := seedDecoded(b, events)
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		db, err := Open(filepath.Join(b.TempDir(), "rm.db"))
		if err != nil {
			b.Fatal(err)
		}
		p, err := NewProjector(ctx, db, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for i := 0; i < len(decoded); i += commitsPerBatch {
			if err := p.ApplyDecoded(ctx, decoded[i:min(i+commitsPerBatch, len(decoded))]); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
}

// seedStore starts an embedded JetStream holding the seed's commits, as
// creditd stores them: the first (the tenant) on the registry subject, the
// rest on the tenant's partition.
func seedStore(tb testing.TB, shape seed.Shape) *testnats.Server {
	tb.Helper()
	srv := testnats.Start(tb, tb.TempDir())
	last := map[string]uint64{}
	err := seed.Commits(shape, func(seq uint64, data []byte) error {
		subject := eventstore.PartitionSubject(srv.Store.PartitionOf(shape.TenantID))
		if seq == 1 {
			subject = eventstore.RegistrySubject
		}
		got, err := srv.Store.Append(context.Background(), subject, last[subject], data)
		last[subject] = got
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return srv
}

// BenchmarkLedgerInsertManyTenants measures what the ledger's indexes cost
// a live projection: rows of 1,000 tenants in random order, as a busy
// stream interleaves them, inserted into the read models' own schema in
// transactions of 20,000, so each commit touches a page per tenant in every
// index keyed by tenant. BenchmarkApplyDecoded's single tenant appends to
// the end of each index instead.
func BenchmarkLedgerInsertManyTenants(b *testing.B) {
	const rows, txRows, tenants = 200_000, 20_000, 1000
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		db, err := Open(filepath.Join(b.TempDir(), "rm.db"))
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		b.StartTimer()
		for start := 0; start < rows; start += txRows {
			tx, err := db.writer.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			stmt, err := tx.PrepareContext(ctx, `INSERT INTO ledger (entry_id, tenant_id, credit_type, type, amount, balance_after,
				granted_after, adjusted_after, used_after, expired_after, source_id, description, reference, metadata, created_at, position, occurred_at)
				VALUES (?, ?, 'api_calls', 'debit', -2000, ?, 1000000000, 0, ?, 0, ?, '', '', '', ?, ?, ?)`)
			if err != nil {
				b.Fatal(err)
			}
			for id := int64(start + 1); id <= int64(start+txRows); id++ {
				at := int64(1_780_000_000_000_000) + id*10
				if _, err := stmt.ExecContext(ctx, id, rng.Int64N(tenants)+1, 1_000_000_000-id, id*2000, "u-"+strconv.FormatInt(id, 10), at, id/300+1, at-5); err != nil {
					b.Fatal(err)
				}
			}
			stmt.Close()
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		var bytes int64
		if err := db.writer.QueryRowContext(ctx, `SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()`).Scan(&bytes); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(bytes)/(1<<20), "MiB")
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkLedgerInsertLargeHistory measures live ledger inserts into a
// ledger that already holds a long history: the rows of many tenants in
// random order, through the batch's own flush (flushLedger), in
// transactions of 5,000, after a history of CREDITD_BENCH_HISTORY rows
// (default 1,000,000) over CREDITD_BENCH_TENANTS tenants (default 1,000)
// loaded in bulk. Once each tenant's entries fill pages of their own, a
// transaction writes a page per tenant it touches in every index keyed by
// tenant, whole, to the WAL: walB/row is what each row cost there. A fresh
// database (BenchmarkLedgerInsertManyTenants) packs many tenants per page
// and does not show it.
//
//	go test -run '^$' -bench LedgerInsertLargeHistory -benchtime 2x ./projections/
//	CREDITD_BENCH_TENANTS=10000 CREDITD_BENCH_HISTORY=5000000 go test -run '^$' -bench LedgerInsertLargeHistory -benchtime 2x -timeout 30m ./projections/
func BenchmarkLedgerInsertLargeHistory(b *testing.B) {
	const live, txRows = 100_000, 5_000
	tenants, history := int64(1000), 1_000_000
	if n, err := strconv.ParseInt(os.Getenv("CREDITD_BENCH_TENANTS"), 10, 64); err == nil && n > 0 {
		tenants = n
	}
	if n, err := strconv.Atoi(os.Getenv("CREDITD_BENCH_HISTORY")); err == nil && n >= 0 {
		history = n
	}
	ctx := context.Background()
	dir := b.TempDir()
	db, err := Open(filepath.Join(dir, "rm.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	row := func(i int, tenant int64) ledgerRow {
		at := int64(1_780_000_000_000_000) + int64(i)*1000
		return ledgerRow{tenantID: tenant, creditType: "api_calls", entryType: ledgerDebit, amount: -2000,
			granted: 1_000_000_000, used: int64(i) * 2000, sourceID: "u" + strconv.Itoa(i),
			description: "usage: search /v1/search", createdAt: at, position: uint64(i/2000 + 2),
			occurredAt: at - 5, hasOccurredAt: true}
	}
	insert := func(rows []ledgerRow) {
		conn, tx := beginBatchTx(b, ctx, db)
		defer conn.Close()
		bt := &batch{ctx: ctx, tx: tx, conn: conn, ledgerRows: rows}
		if err := bt.inFlush(bt.flushLedger); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	end, err := db.bulkLoad(ctx, false)
	if err != nil {
		b.Fatal(err)
	}
	rows := make([]ledgerRow, 0, 50_000)
	for i := range history {
		if rows = append(rows, row(i, int64(i)%tenants+1)); len(rows) == cap(rows) || i == history-1 {
			insert(rows)
			rows = rows[:0]
		}
	}
	if err := end(); err != nil {
		b.Fatal(err)
	}
	// The WAL is emptied after each transaction, untimed, so that its
	// size is what the transaction wrote.
	checkpoint := func() {
		if _, err := db.writer.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			b.Fatal(err)
		}
	}
	checkpoint()
	rng := rand.New(rand.NewPCG(1, 2))
	next, walBytes := history, int64(0)
	for b.Loop() {
		for range live / txRows {
			rows = rows[:0]
			for range txRows {
				rows = append(rows, row(next, rng.Int64N(tenants)+1))
				next++
			}
			insert(rows)
			b.StopTimer()
			st, err := os.Stat(filepath.Join(dir, "rm.db-wal"))
			if err != nil {
				b.Fatal(err)
			}
			walBytes += st.Size()
			checkpoint()
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(live*b.N)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(walBytes)/float64(live*b.N), "walB/row")
}

// BenchmarkLiveApply measures the live consumer's pipeline without the
// transport: commits handed to the applier's queue as the consumer's
// handler hands them (one at a time, in order), applied in its batches,
// until the read models reach the last. 100,000 usage events in commits of
// 100, into fresh read models.
//
//	go test -run '^$' -bench LiveApply -benchtime 5x ./projections/
func BenchmarkLiveApply(b *testing.B) {
	const events = 100_000
	var msgs []eventstore.StoredMsg
	shape := seed.Shape{TenantID: 1, Events: events, Days: events / 13_700, End: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), EventsPerCommit: 100, Seed: 1}
	if err := seed.Commits(shape, func(seq uint64, data []byte) error {
		msgs = append(msgs, shape.Msg(seq, data))
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	last := msgs[len(msgs)-1].Sequence
	for b.Loop() {
		b.StopTimer()
		db, err := Open(filepath.Join(b.TempDir(), "rm.db"))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		p, err := NewProjector(ctx, db, nil)
		if err != nil {
			b.Fatal(err)
		}
		a := newApplier(p, nil, slog.New(slog.DiscardHandler))
		done := make(chan struct{})
		b.StartTimer()
		go func() {
			defer close(done)
			a.run(ctx)
		}()
		for _, m := range msgs {
			if err := a.enqueue(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
		if err := p.WaitFor(ctx, last); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := p.Err(); err != nil {
			b.Fatal(err)
		}
		cancel()
		<-done
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkFlushLedgerInterleaved measures the ledger's flush when
// consecutive rows belong to different lines: usage of 1,000 tenants round
// robin, as `creditd bench generate` writes its commits and as a commit
// interleaves many producers' small batches. The rows go through the
// batch's own flush (flushLedger) in transactions of 20,000, into a fresh
// database: bulk, with the ledger's indexes dropped as a rebuild drops
// them (their build at the end is not timed), and live, with them.
//
//	go test -run '^$' -bench FlushLedgerInterleaved -benchtime 5x ./projections/
func BenchmarkFlushLedgerInterleaved(b *testing.B) {
	const rows, txRows, tenants = 200_000, 20_000, 1000
	ledger := make([]ledgerRow, rows)
	for i := range ledger {
		at := int64(1_780_000_000_000_000) + int64(i/2000)*1000
		t := int64(i%tenants) + 1
		ledger[i] = ledgerRow{tenantID: t, creditType: "api_calls", entryType: ledgerDebit, amount: -2000,
			granted: 1_000_000_000, used: int64(i/tenants+1) * 2000, sourceID: "u" + strconv.Itoa(i),
			description: "usage: search /v1/search", createdAt: at, position: uint64(i/2000 + 2),
			occurredAt: at - 5, hasOccurredAt: true}
	}
	for _, bulk := range []bool{true, false} {
		name := "live"
		if bulk {
			name = "bulk"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				b.StopTimer()
				db, err := Open(filepath.Join(b.TempDir(), "rm.db"))
				if err != nil {
					b.Fatal(err)
				}
				end := func() error { return nil }
				if bulk {
					if end, err = db.bulkLoad(ctx, false); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				for start := 0; start < rows; start += txRows {
					conn, err := writerConn(ctx, db.writer)
					if err != nil {
						b.Fatal(err)
					}
					tx, err := conn.BeginTx(ctx, nil)
					if err != nil {
						b.Fatal(err)
					}
					bt := &batch{ctx: ctx, tx: tx, conn: conn, ledgerRows: ledger[start : start+txRows]}
					if err := bt.inFlush(bt.flushLedger); err != nil {
						b.Fatal(err)
					}
					if err := tx.Commit(); err != nil {
						b.Fatal(err)
					}
					conn.Close()
				}
				b.StopTimer()
				var n int
				if err := db.writer.QueryRowContext(ctx, `SELECT count(*) FROM ledger`).Scan(&n); err != nil || n != rows {
					b.Fatalf("ledger holds %d rows (%v), want %d", n, err, rows)
				}
				if err := end(); err != nil {
					b.Fatal(err)
				}
				db.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkApplySmallBatches applies 100,000 usage events in commits of
// 100, three commits to a transaction, as the live projection applies
// them under a steady load (the default `creditd bench` averages 340
// events a commit): what each transaction costs beyond its rows shows
// here, and not in BenchmarkApplyDecoded's batches of a rebuild.
//
//	go test -run '^$' -bench ApplySmallBatches -benchtime 5x ./projections/
func BenchmarkApplySmallBatches(b *testing.B) { benchmarkApply(b, 3) }
