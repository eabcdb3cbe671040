package eventstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/testnats"
)

// Id index segments reach 64 MiB on a long log (commands caps them there),
// and the partitions upload theirs at about the same time. The uploads must
// not outrun the bucket's stream, which refuses messages past 128 MiB
// queued ("429 too many requests"): they run one at a time. (Under load, a
// 100M-event log's uploads of larger merged segments, side by side, failed
// one after the other; on an idle machine this test passed before the
// uploads were queued too: it guards the sizes creditd relies on.)
func TestLargeObjectsAreStoredWhole(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 4 × 64 MiB")
	}
	srv := testnats.Start(t, t.TempDir())
	parts, size := 4, 64<<20
	if raceEnabled {
		// The race detector's shadow memory makes 256 MiB cost gigabytes.
		parts, size = 2, 16<<20
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	data := make([][]byte, parts)
	paths := make([]string, parts)
	for i := range parts {
		data[i] = make([]byte, size)
		rand.Read(data[i])
		paths[i] = filepath.Join(t.TempDir(), "segment")
		if err := os.WriteFile(paths[i], data[i], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, parts)
	for i := range parts {
		go func() { errs <- srv.Store.PutObjectFile(ctx, fmt.Sprintf("ids/p%d/large", i), paths[i]) }()
	}
	for range parts {
		if err := <-errs; err != nil {
			t.Fatalf("put a 64 MiB object beside three others: %v", err)
		}
	}
	for i := range parts {
		got, err := srv.Store.Object(ctx, fmt.Sprintf("ids/p%d/large", i))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data[i]) {
			t.Fatalf("object %d: read back %d bytes, not the %d put", i, len(got), len(data[i]))
		}
	}
}

// A first use of the snapshot bucket that fails (a new cluster electing
// the bucket's leader, here a context already ended) is not the bucket's
// fate: the next use opens it. (Before, the failure was kept for the life
// of the store, and every snapshot after it failed.)
func TestASnapshotBucketThatFailedToOpenOpensLater(t *testing.T) {
	srv := testnats.Start(t, t.TempDir())
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := srv.Store.Objects(ended, "snap/"); err == nil {
		t.Fatal("a listing with an ended context succeeded")
	}
	if err := srv.Store.PutObject(context.Background(), "snap/x", []byte("x")); err != nil {
		t.Fatalf("put after a failed first open: %v", err)
	}
	names, err := srv.Store.Objects(context.Background(), "snap/")
	if err != nil || len(names) != 1 {
		t.Fatalf("list after a failed first open: %v %v", names, err)
	}
}
