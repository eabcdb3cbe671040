package commands

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/testnats"
)

// windowsHeld is what the engine's partition writers hold in their id
// windows, the windows being written by snapshots included, once no
// snapshot is in flight: asked of each writer on its own goroutine, until
// none is writing one (each question is a batch, after which a writer
// past its share starts the next snapshot it owes).
func windowsHeld(t *testing.T, e *Engine) int {
	t.Helper()
	// A snapshot may take long on a loaded machine under -race (its prune
	// alone was seen at 9 s): wait as long as one may take.
	deadline := time.Now().Add(snapshotTimeout)
	for {
		held, running := 0, false
		for _, p := range e.partitions {
			r := &request{done: make(chan error, 1), inspect: func(p *partition) {
				held += p.win.size()
				if p.flushing != nil {
					held += p.flushing.size()
				}
				running = running || p.snaps.running
			}}
			if err := e.submitTo(context.Background(), p, r); err != nil {
				t.Fatal(err)
			}
		}
		if !running {
			return held
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshots still in flight after %s", snapshotTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The snapshot window bounds the ids the engine keeps in memory, all
// partitions together: memory must not grow with the partition count.
// With a window per partition, the 16 partitions of a default stream held
// 16 windows: 3.2M ids by default, some 200 MiB against a 384 MiB memory
// limit (a `creditd bench --events 1000000` run ended with 189 MB of
// them live), here 16 × 64.
func TestSnapshotWindowBoundsEveryPartitionTogether(t *testing.T) {
	const window = 64
	h := &harness{t: t, dir: t.TempDir(), clock: newFakeClock(), snapshots: SnapshotOptions{Window: window, Dir: t.TempDir()}}
	h.start()
	partitions := h.server.Store.Partitions()
	if partitions < 8 {
		t.Fatalf("%d partitions: the test needs the default stream's many", partitions)
	}
	// Enough tenants that every partition has some, each with credit for
	// all its usage.
	tenants := make([]int64, 2*partitions)
	for i := range tenants {
		tenants[i] = h.tenant()
		h.grant(tenants[i], "g", "1000000", nil)
	}
	// Each round records a batch of 4 ids on every tenant; an id window
	// per partition would hold up to 64 of them in each of the 16.
	const rounds = 8
	most := 0
	for round := range rounds {
		for i, tenant := range tenants {
			events := make([]UsageEvent, 4)
			for j := range events {
				events[j] = usage(fmt.Sprintf("u-%d-%d-%d", i, round, j), "1")
			}
			if _, err := h.engine.RecordUsage(context.Background(), tenant, events); err != nil {
				t.Fatal(err)
			}
		}
		most = max(most, windowsHeld(t, h.engine))
	}
	// Between snapshots (while one is written, its writer goes on filling
	// a new window), the writers together hold at most the window.
	if most > window {
		t.Fatalf("the partition writers held %d ids in memory at most, want at most the window, %d, over %d partitions", most, window, partitions)
	}
	// What /metrics reports is what the writers hold.
	if held, budget := h.engine.IDsInMemory(); held != windowsHeld(t, h.engine) || budget != window {
		t.Errorf("IDsInMemory %d of %d, want %d of %d", held, budget, windowsHeld(t, h.engine), window)
	}
	// Nothing forgotten: every id is still a duplicate.
	for i, tenant := range tenants {
		for round := range rounds {
			res := h.use(tenant, fmt.Sprintf("u-%d-%d-%d", i, round, 3), "1")
			if !res.Duplicate {
				t.Fatalf("tenant %d round %d: a recorded id was not recognised as a duplicate: %+v", i, round, res)
			}
		}
	}
}

// TestFailedSnapshotsAreNotRetriedAfterEveryBatch: while the store
// refuses snapshots, a writer whose window is full must not start another
// after every batch (each attempt sorts and writes its whole window again,
// only to fail): it waits for another share of ids, or the interval.
func TestFailedSnapshotsAreNotRetriedAfterEveryBatch(t *testing.T) {
	const share, writes = 16, 600
	const window = share * eventstore.PartitionsDefault
	h := &harness{t: t, dir: t.TempDir(), clock: newFakeClock()}
	h.server = testnats.Start(t, h.dir)
	var puts atomic.Int64
	e, err := New(context.Background(), refusingSnapshots{h.server.Store, &puts},
		Options{Clock: h.clock.Now, Snapshots: SnapshotOptions{Window: window, Dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	h.engine = e
	defer e.Close()
	tenant := h.tenant()
	h.grant(tenant, "g", "1000", nil)
	h.busyWork(tenant, "u", writes)
	// The window is full at window ids; after that, an attempt per share.
	if n, most := puts.Load(), int64((writes-window)/share+3); n > most {
		t.Fatalf("%d snapshot uploads tried over %d writes past a full window of %d, want at most %d: one per share of %d", n, writes-window, window, most, share)
	}
	// The first batch tries one (the interval since none); a full window
	// must try more.
	if puts.Load() < 2 {
		t.Fatalf("%d snapshot uploads tried: a full window tried none, and the test no longer tests anything", puts.Load())
	}
}
