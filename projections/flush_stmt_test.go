package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFlushStatementsRunInTheBatchTransaction: what a flush writes past
// database/sql is rolled back with the transaction, arguments are
// converted as database/sql converts them, and a statement prepared
// outside a flush is refused rather than run on a lent connection.
// (TestResumeAfterACrashMidBatch checks the same rollback end to end.)
func TestFlushStatementsRunInTheBatchTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	count := func() (n int) {
		t.Helper()
		if err := db.writer.QueryRowContext(ctx, `SELECT count(*) FROM endpoint_totals`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	write := func(commit bool, args ...any) error {
		return inBatchTx(t, db, commit, func(b *batch, tx *sql.Tx) error {
			if _, err := b.stmt(`SELECT 1`); err == nil {
				t.Error("a flush statement was prepared outside a flush")
			}
			err := b.inFlush(func() error {
				s, err := b.stmt(`INSERT INTO endpoint_totals (tenant_id, endpoint, requests, successes, failures) VALUES (?, ?, ?, ?, ?)`)
				if err != nil {
					return err
				}
				return s.exec(args...)
			})
			if err != nil || !commit {
				return err
			}
			// The transaction's own statements still run after the flush.
			if _, err := tx.ExecContext(ctx, `UPDATE endpoint_totals SET failures = failures + 1`); err != nil {
				t.Fatal(err)
			}
			return nil
		})
	}
	if err := write(false, int64(1), "/a", 1, uint32(1), int8(0)); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("a rolled-back flush left %d rows", n)
	}
	if err := write(true, 1, "/a", uint64(7), true, int64(0)); err != nil {
		t.Fatal(err)
	}
	var requests, successes, failures int64
	if err := db.writer.QueryRowContext(ctx, `SELECT requests, successes, failures FROM endpoint_totals WHERE tenant_id = 1 AND endpoint = '/a'`).
		Scan(&requests, &successes, &failures); err != nil {
		t.Fatal(err)
	}
	if requests != 7 || successes != 1 || failures != 1 {
		t.Fatalf("row = %d, %d, %d; want 7, 1, 1", requests, successes, failures)
	}
	err := write(true, 2, "/b", 1, 1, struct{}{})
	if err == nil || !strings.Contains(err.Error(), "argument 5") {
		t.Fatalf("an argument the driver cannot take: %v", err)
	}
}

// TestAFlushAfterTheTransactionEndedWritesNothing: a flush that runs once
// the batch's transaction has ended, whether rolled back by the batch or by
// database/sql when its context is cancelled, must not write on the bare
// connection, where each statement would commit by itself without the
// batch's checkpoint, and the batch would be applied again after a
// restart.
func TestAFlushAfterTheTransactionEndedWritesNothing(t *testing.T) {
	t.Parallel()
	for _, cancelled := range []bool{false, true} {
		db := openDB(t)
		ctx, cancel := context.WithCancel(context.Background())
		conn, tx := beginBatchTx(t, ctx, db)
		if cancelled {
			cancel()
			// database/sql rolls back on a goroutine of its own.
			for _, err := tx.ExecContext(context.Background(), `SELECT 1`); err == nil; _, err = tx.ExecContext(context.Background(), `SELECT 1`) {
				time.Sleep(time.Millisecond)
			}
		} else if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		b := newBatch(context.Background(), conn, tx, 0, nil, nil)
		err := b.inFlush(func() error {
			s, err := b.stmt(`INSERT INTO endpoint_totals (tenant_id, endpoint, requests, successes, failures) VALUES (1, '/a', 1, 1, 0)`)
			if err != nil {
				return err
			}
			return s.exec()
		})
		if err == nil {
			t.Errorf("cancelled %v: a flush ran outside its transaction", cancelled)
		}
		conn.Close()
		cancel()
		var n int
		if err := db.writer.QueryRowContext(context.Background(), `SELECT count(*) FROM endpoint_totals`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("cancelled %v: a flush after the rollback committed %d rows on its own", cancelled, n)
		}
	}
}

// beginBatchTx opens a transaction on the writer's connection, as
// Projector.applyDecoded does for a batch; the caller ends both.
func beginBatchTx(tb testing.TB, ctx context.Context, db *DB) (*sql.Conn, *sql.Tx) {
	tb.Helper()
	conn, err := writerConn(ctx, db.writer)
	if err != nil {
		tb.Fatal(err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		conn.Close()
		tb.Fatal(err)
	}
	return conn, tx
}

// inBatchTx runs f on a batch in a transaction on the writer's connection,
// and commits it when f succeeds and commit is set (else rolls it back).
func inBatchTx(t *testing.T, db *DB, commit bool, f func(b *batch, tx *sql.Tx) error) error {
	t.Helper()
	ctx := context.Background()
	conn, tx := beginBatchTx(t, ctx, db)
	defer conn.Close()
	defer tx.Rollback()
	if err := f(newBatch(ctx, conn, tx, 0, nil, nil), tx); err != nil || !commit {
		return err
	}
	return tx.Commit()
}

// TestAPanicInAFlushUnwindsWithoutHanging: a panic inside a flush (a bug)
// must leave the batch as any panic would, through the transaction's
// rollback and the connection's release, and reach whoever recovers it or
// end the process. database/sql's Conn.Raw, seeing its function panic,
// closes the connection, which waits for the open transaction to end,
// while the rollback that would end it waits behind Raw: the projection's
// goroutine hung for good, the process alive and its read models stale.
func TestAPanicInAFlushUnwindsWithoutHanging(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	ctx := context.Background()
	conn, tx := beginBatchTx(t, ctx, db)
	recovered := make(chan any, 1)
	// As Projector.applyDecoded holds them: the connection closed and the
	// transaction rolled back by deferred calls.
	go func() {
		defer func() { recovered <- recover() }()
		defer conn.Close()
		defer tx.Rollback()
		b := newBatch(ctx, conn, tx, 0, nil, nil)
		b.inFlush(func() error {
			s, err := b.stmt(`INSERT INTO endpoint_totals (tenant_id, endpoint, requests, successes, failures) VALUES (1, '/a', 1, 1, 0)`)
			if err != nil {
				return err
			}
			if err := s.exec(); err != nil {
				return err
			}
			panic("flush bug")
		})
	}()
	select {
	case r := <-recovered:
		if r == nil || !strings.Contains(fmt.Sprint(r), "flush bug") {
			t.Fatalf("recovered %v, want the flush's panic", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a panic inside a flush hung the batch instead of unwinding")
	}
	// The transaction was rolled back, and the writer is free for the
	// next batch.
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var n int
	if err := db.writer.QueryRowContext(wait, `SELECT count(*) FROM endpoint_totals`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("the panicking batch left %d rows", n)
	}
}

// TestFlushStatementsOutliveTheirBatch: the projection's statements stay
// prepared on the writer's connection from one batch to the next, through
// a rolled-back batch, least recently used first out past flushStmtsKept;
// DB.Close closes the ones kept, so that SQLite's connection closes with
// the database and takes its WAL with it.
func TestFlushStatementsOutliveTheirBatch(t *testing.T) {
	t.Parallel()
	db, err := Open(filepath.Join(t.TempDir(), "rm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	insert := func(endpoint string) string {
		return `INSERT INTO endpoint_totals (tenant_id, endpoint, requests, successes, failures) VALUES (?, '` + endpoint + `', 1, 1, 0)
			ON CONFLICT (tenant_id, endpoint) DO UPDATE SET requests = requests + 1`
	}
	// run flushes one batch that executes each query once, with the
	// projector's cache, and returns their statements.
	run := func(commit bool, queries ...string) []*flushStmt {
		t.Helper()
		var used []*flushStmt
		err := inBatchTx(t, db, commit, func(b *batch, tx *sql.Tx) error {
			b.stmtCache = db.flushStmts
			return b.inFlush(func() error {
				for _, q := range queries {
					s, err := b.stmt(q)
					if err != nil {
						return err
					}
					if err := s.exec(int64(1)); err != nil {
						return err
					}
					used = append(used, s)
				}
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return used
	}
	requests := func(endpoint string) (n int) {
		t.Helper()
		err := db.writer.QueryRow(`SELECT coalesce(sum(requests), 0) FROM endpoint_totals WHERE endpoint = ?`, endpoint).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	hot := insert("/hot")
	first := run(true, hot)[0]
	run(false, hot)
	if again := run(true, hot)[0]; again != first {
		t.Fatal("the next batches prepared the statement again")
	}
	if n := requests("/hot"); n != 2 {
		t.Fatalf("/hot requests = %d after two batches committed and one rolled back, want 2", n)
	}

	// One statement used in every batch, and one new in each.
	var cold []*flushStmt
	for i := range flushStmtsKept + 8 {
		cold = append(cold, run(true, hot, insert(fmt.Sprintf("/cold/%d", i)))[1])
	}
	if n := len(db.flushStmts.stmts); n != flushStmtsKept {
		t.Fatalf("the cache holds %d statements, want its bound %d", n, flushStmtsKept)
	}
	if n := requests("/hot"); n != flushStmtsKept+10 {
		t.Fatalf("/hot requests = %d, want %d", n, flushStmtsKept+10)
	}
	if !first.persistent {
		t.Fatal("the cache's statement was prepared by the driver, for a short life")
	}
	wantClosed := func(s *flushStmt, closed bool, what string) {
		t.Helper()
		if finalized := s.oneCall.stmt == nil; finalized != closed {
			t.Errorf("%s: finalized %v, want %v", what, finalized, closed)
		}
	}
	wantClosed(first, false, "the statement used in every batch")
	for i, s := range cold {
		wantClosed(s, i < 9, fmt.Sprintf("statement %d of %d used once", i, len(cold)))
	}

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wantClosed(first, true, "after Close, the statement used in every batch")
	if _, err := os.Stat(db.Path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the WAL outlived the database's close (%v): a statement kept SQLite's connection open", err)
	}
}
