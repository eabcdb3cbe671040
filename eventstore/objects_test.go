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

// An id index segment grows to hundreds of MiB on a long log, and the
// partitions write theirs at about the same time. The uploads must not
// outrun the bucket's stream: nats-server refuses a stream's inbound
// messages past 128 MiB queued ("429 too many requests"), and the object
// store's publisher keeps up to 4,000 chunks in flight per upload. With
// 128 KiB chunks that was up to 500 MiB each, and the snapshots of a
// 100M-event log failed one after the other.
func TestLargeObjectsAreStoredWhole(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 4 × 64 MiB")
	}
	srv := testnats.Start(t, t.TempDir())
	const parts, size = 4, 64 << 20
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
