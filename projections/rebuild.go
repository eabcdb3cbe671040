package projections

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	"github.com/creditd/creditd/domain"

	"github.com/creditd/creditd/eventstore"
)

// Catch-up bounds: commits per transaction (big transactions amortise
// SQLite's commit; the bound keeps memory and a failed batch's redo small,
// and a batch's pages within the writer's cache: 1,024 was slower than 256
// on a million events) and decoded batches waiting for the writer.
const (
	rebuildBatchCommitsMax = 256
	rebuildBatchesAhead    = 2
	bulkGCPercent          = 300
)

// LogReader reads the stream in order; *eventstore.Store satisfies it.
type LogReader interface {
	ReadAll(ctx context.Context, afterSeq, upTo uint64, fn func(eventstore.StoredMsg) error) error
	LastPosition(ctx context.Context) (uint64, error)
	Quarantined(ctx context.Context) (eventstore.Quarantined, error)
}

// CatchUp applies the log from the projection's checkpoint up to upTo (0:
// the stream's last position at the call) in large transactions. It is how
// `creditd rebuild` fills a fresh database, and how a projection far behind
// gets level before live consumption takes over. Reading and decoding run
// on one goroutine and the SQLite writes on another, so the two overlap on
// two cores.
func (p *Projector) CatchUp(ctx context.Context, log LogReader, upTo uint64) error {
	return p.Replay(ctx, log, ReplayOptions{UpTo: upTo})
}

// ReplayOptions narrows a replay.
type ReplayOptions struct {
	// UpTo is the last position to apply (0: the stream's last position).
	UpTo uint64
	// Until stops before the first commit recorded after it (zero: no
	// limit), so the read models show history as it stood then.
	Until time.Time
	// TenantID keeps one tenant's events (0: every tenant).
	TenantID int64
	// Progress, when set, is called after each batch.
	Progress func(Progress)
	// Bulk is for a fresh database nobody reads yet (rebuild, replay): see
	// DB.bulkLoad. A bulk load that fails leaves a database to throw away:
	// its checkpoint may be ahead of usage cells it held in memory.
	Bulk bool
	// LowMemory bounds a bulk load's memory, for a process that also
	// serves (creditd serve): the garbage collector keeps its setting (the
	// bulk load's lets the heap grow to a multiple of everything live in
	// the process, the write side's state included), and the index builds
	// at the end read the database through the page cache, which the
	// kernel can reclaim, rather than a mapping of it. Every bulk load's
	// index builds sort in temporary files (DB.bulkLoad). Measured on 10M
	// events, before either, serve's peak RSS during the build was 3.4 GiB.
	LowMemory bool
}

// Progress reports a replay's advance.
type Progress struct {
	Position, UpTo uint64
	Events         int
	Elapsed        time.Duration
}

var errReplayDone = errors.New("replay reached its end")

// Replay applies the log like CatchUp, within opts.
func (p *Projector) Replay(ctx context.Context, log LogReader, opts ReplayOptions) (err error) {
	upTo := opts.UpTo
	if upTo == 0 {
		last, err := log.LastPosition(ctx)
		if err != nil {
			return err
		}
		upTo = last
	}
	if err := p.learnHeads(ctx, log); err != nil {
		return err
	}
	quarantined, err := log.Quarantined(ctx)
	if err != nil {
		return err
	}
	p.UseQuarantined(quarantined)
	if opts.Bulk && p.Position() == 0 {
		restore, loadErr := p.db.bulkLoad(ctx, opts.LowMemory)
		defer func() {
			// Run even after a failure: the database must stay queryable.
			if endErr := restore(); endErr != nil {
				p.log.Error("ending the bulk load of the read models", "err", endErr)
				if err == nil {
					err = fmt.Errorf("end the bulk load (indexes, journal): %w", endErr)
				}
			}
		}()
		if loadErr != nil {
			return loadErr
		}
		p.carried = map[cubeKey]*cubeDelta{}
		defer func() { p.carried = nil }()
	}
	if opts.Bulk && !opts.LowMemory {
		// A bulk load decodes gigabytes of short-lived events over a small
		// live heap: collecting at 4x the live heap instead of 2x halves
		// the collector's share of a core for a few more MiB of memory.
		defer debug.SetGCPercent(debug.SetGCPercent(bulkGCPercent))
	}
	start := time.Now()
	events := 0
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []Decoded, rebuildBatchesAhead)
	readDone := make(chan error, 1)
	go func() {
		defer close(batches)
		var chunk []eventstore.StoredMsg
		prepared := map[dimsKey]*dimsText{}
		send := func() error {
			decoded, err := Decode(chunk, quarantined)
			chunk = chunk[:0]
			if err != nil {
				return err
			}
			stop := false
			kept := decoded[:0]
			for _, d := range decoded {
				if !opts.Until.IsZero() && d.Commit.RecordedAt.After(opts.Until) {
					stop = true
					break
				}
				if opts.TenantID > 0 {
					d.Commit.Events = slices.DeleteFunc(d.Commit.Events, func(e domain.Envelope) bool { return e.TenantID != opts.TenantID })
				}
				kept = append(kept, d)
			}
			prepareDims(kept, prepared)
			if len(kept) > 0 {
				select {
				case batches <- kept:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if stop {
				return errReplayDone
			}
			return nil
		}
		err := log.ReadAll(ctx, p.Position(), upTo, func(m eventstore.StoredMsg) error {
			chunk = append(chunk, m)
			if len(chunk) < rebuildBatchCommitsMax {
				return nil
			}
			return send()
		})
		if err == nil && len(chunk) > 0 {
			err = send()
		}
		if errors.Is(err, errReplayDone) {
			err = nil
		}
		readDone <- err
	}()
	var applyErr error
	for batch := range batches {
		if applyErr != nil {
			continue
		}
		if applyErr = p.ApplyDecoded(ctx, batch); applyErr != nil {
			cancel()
			continue
		}
		for _, d := range batch {
			events += len(d.Commit.Events)
		}
		if opts.Progress != nil {
			opts.Progress(Progress{Position: p.Position(), UpTo: upTo, Events: events, Elapsed: time.Since(start)})
		}
	}
	readErr := <-readDone
	if applyErr != nil {
		return applyErr
	}
	if readErr != nil {
		return readErr
	}
	return p.flushCarried(ctx)
}
