package projections

import (
	"context"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/seed"
)

// The live consumer's queue is its memory bound while the projection is
// stalled (SQLite busy, a disk full, a foreign message) and the log goes
// on delivering: what it holds, the stored commits and what the handler
// decoded of them, must stay within the bound, or a stall under load holds
// several times the bound and the process outgrows its memory limit.
//
// The test stalls the applier (nothing takes from the queue), enqueues
// commits until enqueue blocks, and weighs the heap the queue holds. It is
// not parallel: it reads the process's heap.
func TestLiveQueueHoldsItsBoundInDecodedBytesToo(t *testing.T) {
	shape := seed.Shape{TenantID: 1, Events: 60_000, Days: 5, End: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), EventsPerCommit: 100, Seed: 3}
	var msgs []eventstore.StoredMsg
	var stored int64
	if err := seed.Commits(shape, func(seq uint64, data []byte) error {
		msgs = append(msgs, shape.Msg(seq, data))
		stored += int64(len(data))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	const bound = 4 << 20
	if stored < 2*bound {
		t.Fatalf("seed made %d stored bytes, want more than twice the bound (%d)", stored, bound)
	}
	db, err := Open(filepath.Join(t.TempDir(), "rm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := NewProjector(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := newApplier(p, nil, slog.New(slog.DiscardHandler))
	a.queueBytesMax = bound
	// The dimension texts the handler caches are shared by every delivery
	// and bounded apart: warm them so the weighing counts deliveries only.
	a.prepare(msgs[0])

	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	var queued atomic.Int64 // deliveries enqueued
	done := make(chan error, 1)
	go func() {
		for _, m := range msgs {
			if err := a.enqueue(ctx, m); err != nil {
				done <- err
				return
			}
			queued.Add(1)
		}
		done <- nil
	}()
	// enqueue blocks once the queue is full; wait until it has.
	for last, still := int64(-1), 0; still < 5; {
		select {
		case err := <-done:
			t.Fatalf("every commit queued (err %v): the queue holds no bound", err)
		case <-time.After(50 * time.Millisecond):
		}
		if n := queued.Load(); n == last {
			still++
		} else {
			last, still = n, 0
		}
	}
	n := queued.Load()
	var queuedStored int64
	for _, m := range msgs[:n] {
		queuedStored += int64(len(m.Data))
	}
	decoded := int64(heap()) - int64(before)
	held := queuedStored + decoded
	t.Logf("queued %d commits: %d stored bytes, %d decoded bytes (%.2f per stored byte); bound %d", n, queuedStored, decoded, float64(decoded)/float64(queuedStored), bound)
	// One delivery may go over (a commit larger than the room left waits
	// only while the queue is not empty); the heap's own noise is small
	// beside a bound of megabytes.
	if over := held - bound; over > bound/8 {
		t.Errorf("the stalled queue holds %d bytes (%d stored, %d decoded), %d over its bound of %d", held, queuedStored, decoded, over, bound)
	}
	if n == 0 || held < bound/2 {
		t.Errorf("the stalled queue holds %d bytes in %d commits: it should fill to near its bound of %d", held, n, bound)
	}
	runtime.KeepAlive(a)
	cancel()
	<-done
}
