package projections

import (
	"context"
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
