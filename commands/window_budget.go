package commands

import "sync/atomic"

// windowBudget is the id window entries the engine's partition writers may
// keep in memory together (SnapshotOptions.Window). A window per
// partition made the engine's memory for recent ids grow with its
// partitions: 16 windows of 200,000 ids, some 200 MiB against the default
// 384 MiB memory limit, which a long run at full rate reached (189 MB of
// them live at the end of a `creditd bench --events 1000000` run).
//
// A writer snapshots when its own window reaches the whole budget, or
// when the writers together hold more than the budget and its window is
// at least its share (budget / partitions). Under an even load every
// window then snapshots at its share; under a skewed one, a busy
// partition may use what idle ones leave.
//
// It is a budget, not a hard limit. Each writer checks between its
// batches, and not while its own snapshot is being written: the window it
// froze and the new one filling meanwhile both count, and the new one
// grows for as long as the upload takes. A writer that receives nothing
// keeps its window until a batch or a sweep (every 250 ms when running
// alone) looks at it. On a cluster, a partition handed over to another
// instance keeps its window here, counted, until this instance owns it
// again: the writers it still owns then snapshot at their share, and the
// instance may hold up to about twice the budget.
type windowBudget struct {
	max        int
	partitions int
	// held counts the entries of every writer's window and of the
	// windows being written by snapshots; each writer adds its own
	// changes (snapshotter.account).
	held atomic.Int64
}

func newWindowBudget(max, partitions int) *windowBudget {
	return &windowBudget{max: max, partitions: max1(partitions)}
}

// share is what a writer may hold once the writers together are past the
// budget, and what it fills before a snapshot while loading, when every
// writer loads at once.
func (b *windowBudget) share() int { return max1(b.max / b.partitions) }

// over reports whether the writers together hold more than the budget.
func (b *windowBudget) over() bool { return b.held.Load() > int64(b.max) }

// full reports whether a window of size entries is due for a snapshot.
func (b *windowBudget) full(size int) bool {
	return size >= b.max || (size >= b.share() && b.over())
}

func max1(n int) int { return max(n, 1) }

// IDsInMemory is what the partition writers keep in memory of their ids
// (their windows, those snapshots are writing included), and the budget
// (SnapshotOptions.Window) they snapshot to stay under: for /metrics.
// Both are 0 for an engine without snapshots.
func (e *Engine) IDsInMemory() (held, budget int) {
	if e.windows == nil {
		return 0, 0
	}
	return int(e.windows.held.Load()), e.windows.max
}
