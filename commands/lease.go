package commands

import (
	"sync"
	"time"
)

// lease is this instance's hold on one partition, as its writer sees it:
// the writer appends only while the lease is held, and a lease is held only
// until a deadline the instance computes on its own monotonic clock,
// earlier than the moment the cluster could give the partition to another
// instance (ownership.go). So a writer that loses its lease, by a failed
// renewal or a network cut, stops before another can start; the subject's
// expected-sequence fence stays the last guard.
type lease struct {
	mu    sync.Mutex
	until time.Time // with a monotonic reading; zero: not held
	// epoch counts acquisitions: a writer that sees a new one reads the
	// subject before deciding, for other owners wrote it meanwhile.
	epoch uint64
}

// state reports whether the lease is held now, its epoch and its deadline.
func (l *lease) state() (held bool, epoch uint64, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.until.IsZero() && time.Now().Before(l.until), l.epoch, l.until
}

func (l *lease) held() bool {
	held, _, _ := l.state()
	return held
}

// grant starts holding the lease until the deadline, as a new epoch.
func (l *lease) grant(until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.epoch++
	l.until = until
}

// extend moves the deadline of a lease still held.
func (l *lease) extend(until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.until.IsZero() && until.After(l.until) {
		l.until = until
	}
}

// revoke stops holding the lease at once.
func (l *lease) revoke() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.until = time.Time{}
}
