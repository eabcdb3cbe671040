package commands

import (
	"container/heap"
	"time"

	"github.com/creditd/creditd/domain"
)

// dueQueue is a partition's schedule of due work (expiries, hold TTLs,
// subscription periods): a min-heap of instants, each naming a line, so the
// sweeper visits only the lines with work due instead of scanning every
// line. One entry per line at most is current: scheduled holds the earliest
// instant a line was queued at, and an entry that does not match it is
// stale and skipped when popped. A line whose due instant moved later keeps
// its earlier entry; popping it finds nothing due and queues the later one.
// So the work is proportional to the due work and the commits, not to the
// number of lines.
type dueQueue struct {
	items     dueHeap
	scheduled map[lineRef]time.Time
}

type dueItem struct {
	at  time.Time
	ref lineRef
}

type dueHeap []dueItem

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueItem)) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func newDueQueue() *dueQueue { return &dueQueue{scheduled: map[lineRef]time.Time{}} }

// schedule queues the line's next due instant, if it has one earlier than
// what is already queued for it.
func (q *dueQueue) schedule(ref lineRef, l *domain.Line) {
	at, ok := l.NextDue()
	if !ok {
		return
	}
	if cur, queued := q.scheduled[ref]; queued && !at.Before(cur) {
		return
	}
	q.scheduled[ref] = at
	heap.Push(&q.items, dueItem{at: at, ref: ref})
}

// popDue removes and returns up to limit lines queued at or before now.
// The caller queues them again (schedule) from their state after the work,
// whether or not that work was stored.
func (q *dueQueue) popDue(now time.Time, limit int) []lineRef {
	var refs []lineRef
	for len(q.items) > 0 && len(refs) < limit {
		top := q.items[0]
		if top.at.After(now) {
			break
		}
		heap.Pop(&q.items)
		if cur, ok := q.scheduled[top.ref]; !ok || !cur.Equal(top.at) {
			continue // stale: the line was queued again earlier
		}
		delete(q.scheduled, top.ref)
		refs = append(refs, top.ref)
	}
	return refs
}

// len is the number of entries, stale ones included (a gauge of its size).
func (q *dueQueue) len() int { return len(q.items) }
