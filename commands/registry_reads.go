package commands

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// registryRefreshMin is how long a registry read vouches for absence: an id
// or key missing from a read that began less than this long ago is
// answered unknown without reading again. It is the registry's negative
// cache, held for every id at once as the time of the last complete read,
// so a flood of distinct unknown ids (producers name any tenant id; anyone
// can send any key) costs one read per interval and no memory per id,
// where a cache per id would have to be bounded and could be flushed by
// the flood itself. A tenant or key created on another instance is
// therefore known here within about this long. Reads are measured on the
// monotonic clock, not the engine's decision clock, which tests and
// simulations set.
const registryRefreshMin = time.Second

// registryReads rations the registry reads that lookups of unknown ids and
// keys ask for: at most one begins per registryRefreshMin, failed or not,
// and callers that arrive while one is under way answer from what is
// already known rather than queue behind its I/O.
type registryReads struct {
	origin time.Time // the monotonic origin of every duration below
	// readAt is when the last complete read (or append whose fence held)
	// began: every commit stored before then is applied.
	readAt atomic.Int64

	mu      sync.Mutex
	running bool
	done    chan struct{} // closed when the running read ends
	triedAt time.Duration // when the last rationed read began
	failed  error         // why it failed, nil if it did not
}

// registryKeyReadGap spaces the registry reads that misses of API keys wait
// for. A key is a secret handed to its holder only after its creation was
// stored, so a key missing here may have been issued on another instance
// a moment ago: answering 401 from an older read would refuse a valid key,
// and a client does not retry a 401. A miss therefore waits for a read that
// began after it. Reads are shared by every miss that waits, one at a time
// and at most one per gap, so a flood of made-up keys costs at most one
// small read per gap (nothing new: one request for the subject's last
// sequence), and each waiter waits about a gap and a read.
const registryKeyReadGap = 10 * time.Millisecond

func (rr *registryReads) now() time.Duration { return time.Since(rr.origin) }

// age is how long ago the state was known complete.
func (rr *registryReads) age() time.Duration { return rr.now() - time.Duration(rr.readAt.Load()) }

// complete records that the state holds every commit stored before began.
func (rr *registryReads) complete(began time.Duration) {
	for {
		prev := rr.readAt.Load()
		if int64(began) <= prev || rr.readAt.CompareAndSwap(prev, int64(began)) {
			return
		}
	}
}

// refreshLimited reads registry commits written elsewhere, unless a read
// that began less than registryRefreshMin ago completed, or one is under
// way (its caller waits for it; others answer from what is known), or the
// last one failed less than registryRefreshMin ago (its error is returned).
// The check that nothing is needed reads one atomic: lookups of unknown ids
// contend on nothing.
func (r *registry) refreshLimited() error {
	rr := &r.reads
	if rr.age() < registryRefreshMin {
		return nil
	}
	rr.mu.Lock()
	switch {
	case rr.age() < registryRefreshMin, rr.running:
		rr.mu.Unlock()
		return nil
	case rr.failed != nil && rr.now()-rr.triedAt < registryRefreshMin:
		err := rr.failed
		rr.mu.Unlock()
		return err
	}
	return r.readLocked()
}

// refreshAfter returns once a registry read that began at or after since
// has completed, waiting for one under way or starting one (see
// registryKeyReadGap), or with the error of such a read.
func (r *registry) refreshAfter(since time.Duration) error {
	rr := &r.reads
	for {
		if time.Duration(rr.readAt.Load()) >= since {
			return nil
		}
		rr.mu.Lock()
		switch {
		case time.Duration(rr.readAt.Load()) >= since:
			rr.mu.Unlock()
			return nil
		case rr.failed != nil && rr.triedAt >= since:
			err := rr.failed
			rr.mu.Unlock()
			return err
		case rr.running:
			done := rr.done
			rr.mu.Unlock()
			<-done
			continue
		}
		if wait := rr.triedAt + registryKeyReadGap - rr.now(); rr.triedAt > 0 && wait > 0 {
			rr.mu.Unlock()
			time.Sleep(wait)
			continue
		}
		return r.readLocked()
	}
}

// readLocked starts a registry read, with rr.mu held and no read running,
// and returns its error once it ends. It releases rr.mu for the read.
func (r *registry) readLocked() error {
	rr := &r.reads
	began := rr.now()
	done := make(chan struct{})
	rr.running, rr.done, rr.triedAt = true, done, began
	rr.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	err := r.catchUp(ctx)
	cancel()
	if err == nil {
		rr.complete(began)
	}
	rr.mu.Lock()
	rr.running, rr.failed = false, err
	rr.mu.Unlock()
	close(done)
	return err
}
