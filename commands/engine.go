// Package commands is creditd's write side: it decides each write against
// the line's state with the pure rules of package domain and appends the
// resulting events to the log through one writer per partition.
package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// Options configures an Engine.
type Options struct {
	// Clock is the time decisions are taken at; nil means time.Now.
	Clock func() time.Time
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// CheckInvariants asserts the line invariants after every event
	// (domain.Line.CheckInvariants); tests turn it on.
	CheckInvariants bool
	// SweepInterval is how often due expiries are looked for; zero means
	// sweepIntervalDefault.
	SweepInterval time.Duration
	// Observer, when set, hears of every commit, conflict and retry.
	Observer Observer
	// Snapshots configures the write state's snapshots, taken when the
	// store can keep them (SnapshotStore).
	Snapshots SnapshotOptions
	// Cluster, when set, makes partitions owned by leases: this instance
	// writes the partitions it holds and forwards the other writes to
	// their owners (ownership.go). Nil: it writes every partition, alone.
	Cluster *ClusterOptions
}

// Observer hears what the writers do (metrics).
type Observer interface {
	Committed(events int)
	Conflicted()
	Retried()
}

type noObserver struct{}

func (noObserver) Committed(int) {}
func (noObserver) Conflicted()   {}
func (noObserver) Retried()      {}

// sweepIntervalDefault keeps expiries within a second of their time.
const sweepIntervalDefault = 250 * time.Millisecond

// Engine accepts writes. It is safe for concurrent use.
type Engine struct {
	store      Store
	loader     CommitLoader
	clock      func() time.Time
	log        *slog.Logger
	partitions []*partition
	registry   *registry
	// cluster holds the partition leases; nil when running alone.
	cluster *cluster
	// windows is what the writers keep of recent ids, all together; nil
	// without snapshots.
	windows *windowBudget

	mu        sync.RWMutex // guards closed against sends on the inboxes
	closed    bool
	closeOnce sync.Once
	wg        sync.WaitGroup
	stop      chan struct{}
	// tempDir is the segments' directory when none was configured,
	// removed on Close.
	tempDir string
}

// CommitLoader reads one stored commit back, to answer a duplicate with the
// original outcome. *eventstore.Store satisfies it.
type CommitLoader interface {
	Load(ctx context.Context, seq uint64) (eventstore.StoredMsg, error)
}

// FullStore is a Store that can also load single commits.
type FullStore interface {
	Store
	CommitLoader
}

// New loads the write model from the log and starts the writers and the
// expiry sweeper. Close stops them.
func New(ctx context.Context, store FullStore, opts Options) (*Engine, error) {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = sweepIntervalDefault
	}
	if opts.Observer == nil {
		opts.Observer = noObserver{}
	}
	e := &Engine{store: store, loader: store, clock: opts.Clock, log: opts.Logger, stop: make(chan struct{})}
	e.registry = newRegistry(store, opts.Clock)
	if err := e.registry.load(ctx); err != nil {
		return nil, fmt.Errorf("load registry: %w", err)
	}
	snapshots, _ := store.(SnapshotStore)
	dir := opts.Snapshots.Dir
	if snapshots != nil && dir == "" {
		tmp, err := os.MkdirTemp("", "creditd-index-")
		if err != nil {
			return nil, err
		}
		dir, e.tempDir = tmp, tmp
	}
	e.partitions = make([]*partition, store.Partitions())
	budget := newWindowBudget(cmpOr(opts.Snapshots.Window, SnapshotWindowDefault), len(e.partitions))
	if snapshots != nil {
		e.windows = budget
	}
	loadErrs := make([]error, len(e.partitions))
	var loading sync.WaitGroup
	for i := range e.partitions {
		p := newPartition(i, store, opts.Logger, opts.Clock, opts.CheckInvariants)
		p.observer = opts.Observer
		if snapshots != nil {
			pdir := filepath.Join(dir, "p"+strconv.Itoa(i))
			if err := os.MkdirAll(pdir, 0o700); err != nil {
				e.removeTemp()
				return nil, err
			}
			p.snaps = newSnapshotter(snapshots, i, pdir, opts.Snapshots, budget, opts.Clock, p.log)
		}
		e.partitions[i] = p
		loading.Go(func() { loadErrs[i] = p.load(ctx) })
	}
	loading.Wait()
	if err := errors.Join(loadErrs...); err != nil {
		for _, p := range e.partitions {
			if p.segments != nil {
				p.segments.close()
			}
		}
		e.removeTemp()
		return nil, fmt.Errorf("load partitions: %w", err)
	}
	if opts.Cluster != nil {
		e.cluster = newCluster(e, *opts.Cluster, len(e.partitions), opts.Logger)
		for i, p := range e.partitions {
			p.lease = &e.cluster.leases[i]
			if p.snaps != nil {
				p.snaps.owned = p.lease.held
			}
		}
	}
	for _, p := range e.partitions {
		e.wg.Go(p.run)
	}
	e.wg.Go(func() { e.sweep(opts.SweepInterval) })
	if e.cluster != nil {
		e.cluster.start()
	}
	return e, nil
}

// Close stops accepting writes, lets every queued write finish, and stops
// the writers. Nothing acknowledged is lost: acknowledgement follows the
// store's.
func (e *Engine) Close() {
	// Partitions are handed over first, while the writers still run: the
	// commits in flight land before the leases go (cluster.handover).
	e.closeOnce.Do(func() {
		if e.cluster != nil {
			e.cluster.close()
		}
	})
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	close(e.stop)
	for _, p := range e.partitions {
		close(p.inbox)
	}
	e.mu.Unlock()
	e.wg.Wait()
	for _, p := range e.partitions {
		if p.segments != nil {
			p.segments.close()
		}
	}
	e.removeTemp()
}

func (e *Engine) removeTemp() {
	if e.tempDir != "" {
		os.RemoveAll(e.tempDir)
	}
}

// ChainErr is why writes stand still: the foreign message
// (*eventstore.ForeignMessageError) the registry's or a partition's writer
// last met while serving, naming its subject, position and the way out;
// nil when none did. Writes to that subject fail until an operator sets the
// message aside (creditd quarantine) and the writer reads past it.
func (e *Engine) ChainErr() error {
	errs := []error{e.registry.chain.Err()}
	for _, p := range e.partitions {
		errs = append(errs, p.chain.Err())
	}
	return errors.Join(errs...)
}

// submit hands a request to its partition's writer and waits for the answer.
func (e *Engine) submit(ctx context.Context, r *request) error {
	if _, err := e.registry.tenant(r.tenantID); err != nil {
		return err
	}
	// If ctx ends while waiting, the write may still land; a retry with
	// the same id is answered as a duplicate.
	return e.submitTo(ctx, e.partitions[e.store.PartitionOf(r.tenantID)], r)
}

// single runs one idempotent op and, for a duplicate, reads the original
// events back so the caller gets the original outcome.
func (e *Engine) single(ctx context.Context, tenantID int64, o op) (Result, error) {
	if err := domain.ValidateCreditType(o.creditType); err != nil {
		return Result{}, err
	}
	r := newRequest(tenantID, []op{o})
	if err := e.submit(ctx, r); err != nil {
		return Result{}, err
	}
	res := r.results[0]
	if res.Err != nil {
		return res, res.Err
	}
	if res.Duplicate && o.key != (idKey{}) {
		events, err := e.originalEvents(ctx, res.Position, tenantID, o.creditType, o.key)
		if err != nil {
			return res, err
		}
		if len(events) == 0 {
			return res, fmt.Errorf("commit %d holds no events of the duplicate write", res.Position)
		}
		res.Events = events
	}
	return res, nil
}

// originalEvents reads the commit at position and returns the events of
// the write named by key (and any auto-reload it caused).
func (e *Engine) originalEvents(ctx context.Context, position uint64, tenantID int64, creditType string, key idKey) ([]domain.Event, error) {
	msg, err := e.loader.Load(ctx, position)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	commit, err := eventstore.DecodeCommit(msg.Data)
	if err != nil {
		return nil, err
	}
	var events []domain.Event
	for _, env := range commit.Events {
		if env.TenantID != tenantID || env.CreditType != creditType {
			continue
		}
		if ko, ok := outcomeOf(tenantID, creditType, env.Event); ok && ko.key == key {
			events = append(events, env.Event)
		}
	}
	return events, nil
}

// Sweep applies the work due now (expiries, hold TTLs, subscription
// allocations) on every line, as the background sweeper does each
// interval, and waits for it. Correctness never needs it (every write
// applies its line's due work first); tools and simulations use it to bring
// idle lines current on demand. One pass appends at most sweepEventsMax
// events per partition.
func (e *Engine) Sweep(ctx context.Context) error {
	for i, p := range e.partitions {
		if e.cluster != nil && !e.cluster.owns(i) {
			continue // its owner sweeps it
		}
		r := &request{sweep: true, done: make(chan error, 1)}
		if err := e.submitTo(ctx, p, r); err != nil {
			return err
		}
	}
	return nil
}

// sweep asks every partition, each interval, to expire what is due. A
// partition whose previous sweep is still queued is skipped, so sweeps never
// pile up behind a busy writer.
func (e *Engine) sweep(interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	pending := make([]*request, len(e.partitions))
	for {
		select {
		case <-e.stop:
			return
		case <-ticker.C:
		}
		for i, p := range e.partitions {
			if e.cluster != nil && !e.cluster.owns(i) {
				continue // its owner sweeps it
			}
			if r := pending[i]; r != nil {
				select {
				case <-r.done:
				default:
					continue
				}
			}
			r := &request{sweep: true, done: make(chan error, 1)}
			e.mu.RLock()
			if e.closed {
				e.mu.RUnlock()
				return
			}
			select {
			case p.inbox <- r:
				pending[i] = r
			default:
				pending[i] = nil // inbox full: try next tick
			}
			e.mu.RUnlock()
		}
	}
}

// Ownership reports which partitions this instance owns and how it sees
// the cluster; ok is false when the engine runs alone.
func (e *Engine) Ownership() (o Ownership, ok bool) {
	if e.cluster == nil {
		return Ownership{}, false
	}
	return e.cluster.ownership(), true
}
