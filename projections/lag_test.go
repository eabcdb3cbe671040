package projections

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/eventstore"
)

// lagRecords keeps what a LagObserver is told.
type lagRecords struct {
	mu   sync.Mutex
	lags []time.Duration
}

func (r *lagRecords) ProjectionLag(lag time.Duration) {
	r.mu.Lock()
	r.lags = append(r.lags, lag)
	r.mu.Unlock()
}

// waitFor waits until n lags were reported (10 s at most), and takes
// them.
func (r *lagRecords) waitFor(t *testing.T, n int) []time.Duration {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		r.mu.Lock()
		got := len(r.lags)
		r.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			break
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lags) != n {
		t.Fatalf("%d lags reported for %d commits: %v", len(r.lags), n, r.lags)
	}
	return slices.Clone(r.lags)
}

func (r *lagRecords) take() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	lags := r.lags
	r.lags = nil
	return lags
}

// The live projection reports each commit's lag once, measured from the
// log storing it to its transaction committing: a projection held back
// 150 ms per transaction shows at least that much for every commit, and
// never more than the time since the first was stored.
func TestLiveProjectionReportsEachCommitsLag(t *testing.T) {
	t.Parallel()
	f := newLiveFixture(t)
	p, start := f.p, f.start
	const hold = 150 * time.Millisecond
	// The observer is set by the first transaction past start, on the
	// applier's goroutine: the commits up to start are then reported, if
	// at all, already. Set before the projection ran, one of their lags
	// could come after consume returned (a commit's lag is reported just
	// after its transaction, which is what consume waits for), and was
	// counted as a sixth.
	records := &lagRecords{}
	var observe sync.Once
	p.beforeCommit = func(position uint64) error {
		if position > start {
			observe.Do(func() { p.ObserveLag(records) })
			time.Sleep(hold)
		}
		return nil
	}
	wait := f.consume(t)
	ctx := context.Background()

	first := time.Now()
	const commits = 5
	for i := range commits {
		f.record(t, fmt.Sprintf("u%d", i))
	}
	last, _ := f.srv.Store.LastPosition(ctx)
	if last-start != commits {
		t.Fatalf("%d commits stored, want %d", last-start, commits)
	}
	if err := p.WaitFor(wait, last); err != nil {
		t.Fatal(err)
	}
	// A transaction's lags are reported just after it commits, so just
	// after WaitFor returns: wait for them.
	lags := records.waitFor(t, commits)
	elapsed := time.Since(first)
	for i, lag := range lags {
		// The stream's clock is this host's: no skew to allow for beyond
		// its rounding.
		if lag < hold-time.Millisecond || lag > elapsed+time.Millisecond {
			t.Errorf("commit %d: lag %v, want between %v and %v", i, lag, hold, elapsed)
		}
	}

	// Without an observer nothing is reported.
	p.ObserveLag(nil)
	f.record(t, "after")
	last, _ = f.srv.Store.LastPosition(ctx)
	if err := p.WaitFor(wait, last); err != nil {
		t.Fatal(err)
	}
	// Nor is any commit reported twice: still the five.
	if lags := records.take(); len(lags) != commits {
		t.Fatalf("%d lags reported for %d commits, and none after with no observer set: %v", len(lags), commits, lags)
	}

	// A redelivery of commits the read models already held, to this
	// consumer or to one started later, is not reported again.
	p.ObserveLag(records)
	var again []eventstore.StoredMsg
	if err := f.srv.Store.ReadAll(ctx, start, last, func(m eventstore.StoredMsg) error {
		m.Time = time.Now().Add(-time.Hour)
		again = append(again, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	a := newApplier(p, f.srv.Store, slog.New(slog.DiscardHandler))
	a.apply(ctx, a.prepareAll(again))
	// Redelivered, they were stored an hour ago. (The live applier's
	// report of "after" may land here too, a lag of about the hold.)
	for _, lag := range records.take() {
		if lag > time.Minute {
			t.Fatalf("a redelivered commit reported again: lag %v", lag)
		}
	}
}
