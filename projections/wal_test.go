package projections

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

// While the projection runs live, the WAL is copied into the database file
// from a connection beside the writer, and the writer's own commits no
// longer stop to do it; once it stops, the writer checkpoints again.
func TestWALIsCheckpointedBesideTheWriter(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	ctx := context.Background()
	autocheckpoint := func() int {
		var pages int
		if err := db.writer.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&pages); err != nil {
			t.Fatal(err)
		}
		return pages
	}
	if got := autocheckpoint(); got != walAutocheckpointPages {
		t.Fatalf("writer checkpoints every %d pages, want %d", got, walAutocheckpointPages)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { db.checkpointWAL(cctx, slog.New(slog.DiscardHandler)); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for autocheckpoint() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the writer still checkpoints by itself")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Past walCheckpointBytes of WAL, in transactions of 1 MiB.
	name := strings.Repeat("n", 1<<20)
	for i := range walCheckpointBytes>>20 + 8 {
		if err := db.Exec(ctx, `INSERT INTO tenants (tenant_id, name, email, currency, created_at) VALUES (?, ?, '', 'USD', 0)`, i+1, name); err != nil {
			t.Fatal(err)
		}
	}
	for {
		info, err := os.Stat(db.Path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Size() >= walCheckpointBytes {
			break // the pages reached the database file
		}
		if time.Now().After(deadline) {
			t.Fatalf("database file %d bytes: the WAL was not checkpointed", info.Size())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if got := autocheckpoint(); got != walAutocheckpointPages {
		t.Fatalf("after the checkpointer stopped the writer checkpoints every %d pages, want %d", got, walAutocheckpointPages)
	}
}

// TestKeptReadStatementsHoldNoSnapshot: the read pool's connections keep
// their statements prepared (readerStmtsKept), and a kept statement must
// not keep the read transaction it ran in, or no checkpoint could ever
// copy the WAL whole and let it restart, and it would grow without end.
// Reads of every kind (one row, rows read to the end, rows left early,
// a read that failed) are followed by a writer's commit and a truncating
// checkpoint, which no reader may hold back.
func TestKeptReadStatementsHoldNoSnapshot(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	ctx := context.Background()
	for i := range 20 {
		if err := db.Exec(ctx, `INSERT INTO tenants (tenant_id, name, email, currency, created_at) VALUES (?, 'n', '', 'USD', 0)`, i+1); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		var n int
		if err := db.reader.QueryRowContext(ctx, `SELECT count(*) FROM tenants WHERE tenant_id > ?`, 0).Scan(&n); err != nil || n != 20 {
			t.Fatalf("count: %d, %v", n, err)
		}
		rows, err := db.reader.QueryContext(ctx, `SELECT tenant_id FROM tenants WHERE tenant_id > ? ORDER BY tenant_id`, 0)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		rows, err = db.reader.QueryContext(ctx, `SELECT tenant_id FROM tenants WHERE tenant_id > ? ORDER BY tenant_id DESC`, 0)
		if err != nil {
			t.Fatal(err)
		}
		rows.Next() // left after one row
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		if err := db.reader.QueryRowContext(ctx, `SELECT tenant_id FROM tenants WHERE tenant_id = ?`, -1).Scan(&n); err != sql.ErrNoRows {
			t.Fatalf("a missing row: %v", err)
		}
	}
	if err := db.Exec(ctx, `UPDATE tenants SET name = 'm'`); err != nil {
		t.Fatal(err)
	}
	var busy, frames, copied int
	if err := db.writer.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &copied); err != nil {
		t.Fatal(err)
	}
	if busy != 0 {
		t.Fatalf("a reader held the checkpoint back (busy %d, %d of %d frames copied)", busy, copied, frames)
	}
	if info, err := os.Stat(db.Path + "-wal"); err != nil || info.Size() != 0 {
		t.Fatalf("the WAL was not truncated: %v, %v", info.Size(), err)
	}
}
