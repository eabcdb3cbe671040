package projections

import (
	"context"
	"fmt"
	"log/slog"
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
	p.beforeCommit = func(position uint64) error {
		if position > start {
			time.Sleep(hold)
		}
		return nil
	}
	records := &lagRecords{}
	p.ObserveLag(records)
	wait := f.consume(t)
	ctx := context.Background()
	records.take()

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
	elapsed := time.Since(first)
	lags := records.take()
	if len(lags) != commits {
		t.Fatalf("%d lags reported for %d commits: %v", len(lags), commits, lags)
	}
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
	if lags := records.take(); len(lags) != 0 {
		t.Fatalf("%d lags reported with no observer set", len(lags))
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
	if lags := records.take(); len(lags) != 0 {
		t.Fatalf("redelivered commits reported again: %v", lags)
	}
}
