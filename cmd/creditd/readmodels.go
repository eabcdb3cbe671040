package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/audit"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/internal/metrics"
	"github.com/creditd/creditd/projections"
	"github.com/creditd/creditd/queries"
)

// When serve starts with read models far behind the log, building them
// afresh in bulk (projections.ReplayOptions.Bulk: ledger indexes built once
// at the end, no WAL) is cheaper than applying the lag to them in place
// (indexes maintained row by row). Measured on 10M events: the bulk path
// loads about 200,000 events/s over the whole log, catching up in place
// about 9,000 events/s once the database is some GB, so the bulk build wins
// once the lag is more than about a twentieth of the log. It is chosen
// from a quarter on, which leaves a margin for what the rates do not show
// (a bulk build needs the disk space twice until the swap; in place, a
// small database catches up nearly as fast as the bulk path), and never
// for fewer than bulkBuildLagMin positions, which catch up in place in
// seconds.
const (
	bulkBuildLagMin      = 10_000
	bulkBuildLagFraction = 4 // the lag is more than 1/bulkBuildLagFraction of the log
)

// rebuildingSuffix names the side file a bulk build writes, beside the
// live read models which it replaces once whole.
const rebuildingSuffix = ".rebuilding"

// bulkBuildWorthIt tells whether read models at checkpoint should be built
// afresh in bulk rather than caught up in place to target, the log's last
// position: always when they are empty, else when far behind (see
// bulkBuildLagMin).
func bulkBuildWorthIt(checkpoint, target uint64) bool {
	if checkpoint >= target {
		return false
	}
	if checkpoint == 0 {
		return true
	}
	lag := target - checkpoint
	return lag > bulkBuildLagMin && lag > target/bulkBuildLagFraction
}

// readSide is serve's read models. openReadSide decides how they reach the
// log's end as it stood at the start (the target): in place, or built in
// bulk beside the live file; catchUp gets them there while the write side
// already serves; then run hands over to the live projection. Until the
// catch-up is done the API refuses reads (httpapi.ReadModels), and as its
// Reader it answers httpapi.ErrReadModelsCatchingUp while nothing can be
// read.
type readSide struct {
	path  string
	store *eventstore.Store
	log   *slog.Logger
	// progress, when set, is called after each batch of the catch-up.
	progress func(projections.Progress)
	// lag, when set, is told the live projection's lag per commit.
	lag projections.LagObserver

	// Set by openReadSide, fixed afterwards.
	target uint64
	bulk   bool
	// outdated: the live file is of an older format (rebuilt, its notice
	// outbox not carried over); else behind is its checkpoint, whose
	// notice outbox a bulk build takes over.
	outdated bool
	behind   uint64

	position atomic.Uint64
	done     atomic.Bool
	caughtUp chan struct{}
	live     atomic.Pointer[liveReadModels]
}

// liveReadModels are the read models serve reads and projects into.
type liveReadModels struct {
	db        *projections.DB
	projector *projections.Projector
	reader    *queries.Reader
}

// openReadSide opens the read models at path, or decides to build them
// afresh, without applying anything yet; a start whose read models are at
// the log's end is done at once.
func openReadSide(ctx context.Context, store *eventstore.Store, log *slog.Logger, path string, progress func(projections.Progress)) (*readSide, error) {
	target, err := store.LastPosition(ctx)
	if err != nil {
		return nil, err
	}
	s := &readSide{path: path, store: store, log: log, progress: progress, target: target, caughtUp: make(chan struct{})}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && target > 0 {
		// None (lost, or a log made elsewhere): nothing is created in
		// their place until the build is whole.
		s.bulk = true
		return s, nil
	}
	db, err := projections.Open(path)
	switch {
	case errors.Is(err, projections.ErrFormatOutdated):
		// Rows an older projection wrote may be wrong or incomplete:
		// rebuilt from the log, never served.
		log.Warn("the read models are of an older format: building them afresh", "reason", err.Error())
		s.bulk, s.outdated = true, true
		return s, nil
	case err != nil:
		return nil, err
	}
	checkpoint, err := db.Checkpoint(ctx)
	if err != nil {
		db.Close()
		return nil, err
	}
	if bulkBuildWorthIt(checkpoint, target) {
		// Closed now, so that its WAL is folded in before the swap removes
		// it; the build takes over its notice outbox at the end.
		s.bulk, s.behind = true, checkpoint
		return s, db.Close()
	}
	projector, err := projections.NewProjector(ctx, db, log)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.live.Store(&liveReadModels{db: db, projector: projector, reader: queries.New(db.Reader())})
	s.position.Store(checkpoint)
	if checkpoint >= target {
		s.finish()
	}
	return s, nil
}

// run catches the read models up to the target, then projects the log as
// it grows until ctx ends. nc must be a connection of its own (see
// projections.Consume).
func (s *readSide) run(ctx context.Context, nc *nats.Conn) error {
	if !s.done.Load() {
		if err := s.catchUp(ctx); err != nil {
			return fmt.Errorf("catch up read models: %w", err)
		}
	}
	live := s.live.Load()
	live.projector.ObserveLag(s.lag)
	return projections.Consume(ctx, nc, live.projector, s.store, s.log)
}

// catchUp brings the read models to the target: in bulk into the side
// file, swapped in once whole, or in place.
func (s *readSide) catchUp(ctx context.Context) error {
	start := time.Now()
	opts := projections.ReplayOptions{UpTo: s.target, Progress: func(p projections.Progress) {
		s.position.Store(p.Position)
		if s.progress != nil {
			s.progress(p)
		}
	}}
	if !s.bulk {
		live := s.live.Load()
		s.log.Info("catching up the read models in place", "from", live.projector.Position(), "target", s.target)
		if err := live.projector.Replay(ctx, s.store, opts); err != nil {
			return err
		}
	} else {
		s.log.Info("building the read models in bulk beside the live file", "from", s.behind, "target", s.target, "file", s.path+rebuildingSuffix)
		// The write side shares the process: the build's memory stays
		// bounded.
		opts.Bulk, opts.LowMemory = true, true
		if err := s.build(ctx, opts); err != nil {
			return err
		}
	}
	s.log.Info("read models caught up", "position", s.target, "bulk", s.bulk, "took", time.Since(start).Round(time.Millisecond).String())
	s.finish()
	return nil
}

// build builds the read models in bulk beside the live file and swaps them
// in once whole. A crash before the swap leaves the live file as it was (or
// none) and a torn side file, which the next start deletes and builds
// again.
func (s *readSide) build(ctx context.Context, opts projections.ReplayOptions) error {
	building := s.path + rebuildingSuffix
	if _, err := replayInto(ctx, s.store, building, opts); err != nil {
		return err
	}
	if s.behind > 0 {
		// History up to the old checkpoint keeps the old outbox's state;
		// replayInto marked it all delivered.
		db, err := projections.Open(building)
		if err != nil {
			return err
		}
		err = db.TakeNoticeOutbox(ctx, s.path, s.behind)
		if err := errors.Join(err, db.Close()); err != nil {
			return err
		}
	}
	if err := swapReadModels(building, s.path); err != nil {
		return err
	}
	db, err := projections.Open(s.path)
	if err != nil {
		return err
	}
	projector, err := projections.NewProjector(ctx, db, s.log)
	if err != nil {
		db.Close()
		return err
	}
	s.live.Store(&liveReadModels{db: db, projector: projector, reader: queries.New(db.Reader())})
	return nil
}

// swapReadModels replaces the read models at live by the whole database
// at built. The built file is synced first, so the name never points at
// pages a power loss could take; the live file's WAL and shared memory are
// removed first, as they would otherwise be replayed into the new file.
func swapReadModels(built, live string) error {
	if err := syncPath(built); err != nil {
		return err
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(live + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.Rename(built, live); err != nil {
		return err
	}
	return syncPath(filepath.Dir(live))
}

// syncPath flushes a file or a directory to stable storage.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

func (s *readSide) finish() {
	s.position.Store(max(s.position.Load(), s.target))
	s.done.Store(true)
	close(s.caughtUp)
}

// await returns the live read models once the catch-up is done; false when
// ctx ends first.
func (s *readSide) await(ctx context.Context) (*liveReadModels, bool) {
	select {
	case <-s.caughtUp:
		return s.live.Load(), true
	case <-ctx.Done():
		return nil, false
	}
}

// close closes the live read models; call it once nothing uses them.
func (s *readSide) close() error {
	if live := s.live.Load(); live != nil {
		return live.db.Close()
	}
	return nil
}

// CatchUp implements httpapi.ReadModels.
func (s *readSide) CatchUp() httpapi.CatchUp {
	mode := httpapi.CatchUpInPlace
	if s.bulk {
		mode = httpapi.CatchUpBulk
	}
	return httpapi.CatchUp{Done: s.done.Load(), Mode: mode, Position: s.position.Load(), Target: s.target}
}

// CaughtUp implements httpapi.ReadModels.
func (s *readSide) CaughtUp() <-chan struct{} { return s.caughtUp }

// metrics is the catch-up for metrics.WatchReadModels.
func (s *readSide) metrics() metrics.CatchUp {
	return metrics.CatchUp{Done: s.done.Load(), Bulk: s.bulk, Position: s.position.Load(), Target: s.target}
}

// Position, WaitFor and Err implement httpapi.Projection: the live
// projection's, and during a bulk build its progress, with nothing to
// wait for until the swap.
func (s *readSide) Position() uint64 {
	if live := s.live.Load(); live != nil {
		return live.projector.Position()
	}
	return s.position.Load()
}

func (s *readSide) WaitFor(ctx context.Context, position uint64) error {
	live := s.live.Load()
	if live == nil {
		var ok bool
		live, ok = s.await(ctx)
		if !ok {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return projections.ErrWaitTimeout
			}
			return ctx.Err()
		}
	}
	return live.projector.WaitFor(ctx, position)
}

func (s *readSide) Err() error {
	if live := s.live.Load(); live != nil {
		return live.projector.Err()
	}
	return nil
}

// verify recomputes a tenant from the log and compares the read models.
func (s *readSide) verify(ctx context.Context, tenantID int64) (audit.Report, error) {
	live, err := s.reading()
	if err != nil {
		return audit.Report{}, err
	}
	return audit.Verify(ctx, s.store, live.db.Reader(), tenantID)
}

// reading is the live read models once they can be read: from the start
// when they catch up in place (the API serves only reads of positions they
// hold), after the swap when built in bulk.
func (s *readSide) reading() (*liveReadModels, error) {
	if live := s.live.Load(); live != nil {
		return live, nil
	}
	return nil, httpapi.ErrReadModelsCatchingUp
}

// The queries of httpapi.Reader, on the live read models.

func (s *readSide) Balance(ctx context.Context, tenantID int64, creditType string, asOf *time.Time) (queries.BalanceReport, error) {
	live, err := s.reading()
	if err != nil {
		return queries.BalanceReport{}, err
	}
	return live.reader.Balance(ctx, tenantID, creditType, asOf)
}

func (s *readSide) Ledger(ctx context.Context, tenantID int64, f queries.LedgerFilter) (queries.LedgerPage, error) {
	live, err := s.reading()
	if err != nil {
		return queries.LedgerPage{}, err
	}
	return live.reader.Ledger(ctx, tenantID, f)
}

func (s *readSide) OccurrenceLedger(ctx context.Context, tenantID int64, f queries.LedgerFilter) (queries.LedgerPage, error) {
	live, err := s.reading()
	if err != nil {
		return queries.LedgerPage{}, err
	}
	return live.reader.OccurrenceLedger(ctx, tenantID, f)
}

func (s *readSide) Usage(ctx context.Context, tenantID int64, q queries.UsageQuery) (queries.UsageReport, error) {
	live, err := s.reading()
	if err != nil {
		return queries.UsageReport{}, err
	}
	return live.reader.Usage(ctx, tenantID, q)
}

func (s *readSide) Stats(ctx context.Context, tenantID int64, r queries.Range) (queries.StatsReport, error) {
	live, err := s.reading()
	if err != nil {
		return queries.StatsReport{}, err
	}
	return live.reader.Stats(ctx, tenantID, r)
}

func (s *readSide) Summary(ctx context.Context, tenantID int64, now time.Time) (queries.Summary, error) {
	live, err := s.reading()
	if err != nil {
		return queries.Summary{}, err
	}
	return live.reader.Summary(ctx, tenantID, now)
}

func (s *readSide) Tenant(ctx context.Context, tenantID int64) (queries.Tenant, error) {
	live, err := s.reading()
	if err != nil {
		return queries.Tenant{}, err
	}
	return live.reader.Tenant(ctx, tenantID)
}

func (s *readSide) ActiveGrants(ctx context.Context, tenantID int64, now time.Time) ([]queries.GrantTotals, error) {
	live, err := s.reading()
	if err != nil {
		return nil, err
	}
	return live.reader.ActiveGrants(ctx, tenantID, now)
}

func (s *readSide) Subscriptions(ctx context.Context, tenantID int64, now time.Time) ([]queries.Subscription, error) {
	live, err := s.reading()
	if err != nil {
		return nil, err
	}
	return live.reader.Subscriptions(ctx, tenantID, now)
}

func (s *readSide) LatestGrantCost(ctx context.Context, tenantID int64) (*queries.Cost, error) {
	live, err := s.reading()
	if err != nil {
		return nil, err
	}
	return live.reader.LatestGrantCost(ctx, tenantID)
}

func (s *readSide) Breakdown(ctx context.Context, tenantID int64, rng queries.Range, dimension string) ([]queries.Ranked, error) {
	live, err := s.reading()
	if err != nil {
		return nil, err
	}
	return live.reader.Breakdown(ctx, tenantID, rng, dimension)
}

func (s *readSide) UsedBetween(ctx context.Context, tenantID int64, from, to time.Time, f queries.UsedFilter) (decimal.Decimal, error) {
	live, err := s.reading()
	if err != nil {
		return decimal.Decimal{}, err
	}
	return live.reader.UsedBetween(ctx, tenantID, from, to, f)
}

func (s *readSide) SpendableNow(ctx context.Context, tenantID int64, now time.Time) ([]queries.LineSpendable, error) {
	live, err := s.reading()
	if err != nil {
		return nil, err
	}
	return live.reader.SpendableNow(ctx, tenantID, now)
}

func (s *readSide) UsedByLine(ctx context.Context, tenantID int64, from, to time.Time) (map[string]decimal.Decimal, error) {
	live, err := s.reading()
	if err != nil {
		return nil, err
	}
	return live.reader.UsedByLine(ctx, tenantID, from, to)
}

func (s *readSide) NoticeDeliveries(ctx context.Context, tenantID int64) ([]queries.NoticeDelivery, error) {
	live, err := s.reading()
	if err != nil {
		return nil, err
	}
	return live.reader.NoticeDeliveries(ctx, tenantID)
}

// The read side serves the API in both roles.
var (
	_ httpapi.Reader     = (*readSide)(nil)
	_ httpapi.Projection = (*readSide)(nil)
	_ httpapi.ReadModels = (*readSide)(nil)
)
