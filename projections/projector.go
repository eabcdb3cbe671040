package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/creditd/creditd/eventstore"
)

// ErrWaitTimeout: the projection did not reach the awaited position in time.
var ErrWaitTimeout = errors.New("projection did not reach the position in time")

// Projector applies commits to the read models. Apply must not be called
// concurrently; Position and WaitFor may be called from anywhere.
type Projector struct {
	db  *DB
	log *slog.Logger

	// known caches committed line rows, so a hot line is not re-read per
	// commit. Only Apply touches it.
	known map[lineKey]lineRow
	// dims caches the texts of usage dimensions (see dimsText); only Apply
	// touches it, and it is emptied between batches once it is full.
	dims map[dimsKey]*dimsText
	// carried, during a bulk load, holds the usage cube's cells of the last
	// days met, written by a later batch or at the end of the load (see
	// flushCube); cubeDayMax is the latest usage day met. Nil otherwise.
	carried    map[cubeKey]*cubeDelta
	cubeDayMax int64
	// ledgerBuf is the last batch's ledger rows, emptied: tens of thousands
	// of rows per batch are not re-grown from nothing each time.
	ledgerBuf []ledgerRow

	mu       sync.Mutex
	position uint64
	advanced chan struct{} // closed and replaced at each advance
	pending  atomic.Uint64 // commits known to be waiting after position

	// failure is the last apply error, cleared by the next success: the
	// read models cannot be written (a full disk, a read-only file), or a
	// foreign message in the log stops them (eventstore.ForeignMessageError).
	failure atomic.Pointer[error]

	// quarantined holds the foreign messages an operator set aside, as
	// last read from the log (UseQuarantined).
	quarantined atomic.Pointer[eventstore.Quarantined]

	// heads are each commit subject's last commit applied (chain.go); only
	// Apply touches them. headsUnknown is set on a database made before
	// they were stored, until learnHeads reads them from the log.
	heads        map[string]chainHead
	headsUnknown bool

	// noticed is signaled after a batch recorded notices.
	noticed chan struct{}

	// lag is told the live projection's lag per commit (ObserveLag).
	lag atomic.Pointer[LagObserver]

	// beforeCommit, when set by a test, runs after a batch is written and
	// before its transaction commits: a failure there is a crash mid-batch.
	beforeCommit func(position uint64) error
}

// NewProjector resumes from the database's checkpoint.
func NewProjector(ctx context.Context, db *DB, log *slog.Logger) (*Projector, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	position, err := db.Checkpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	heads, err := db.chainHeads(ctx)
	if err != nil {
		return nil, fmt.Errorf("read chain heads: %w", err)
	}
	return &Projector{db: db, log: log, known: map[lineKey]lineRow{}, dims: map[dimsKey]*dimsText{}, position: position,
		heads: heads, headsUnknown: position > 0 && len(heads) == 0,
		advanced: make(chan struct{}), noticed: make(chan struct{}, 1)}, nil
}

// Position is the last log position applied and committed.
func (p *Projector) Position() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.position
}

// Pending is how many commits were waiting behind the last one applied, as
// the consumer last reported: the projection lag in positions.
func (p *Projector) Pending() uint64 { return p.pending.Load() }

// Decoded is a stored commit with its events decoded.
type Decoded struct {
	Sequence uint64
	// Subject and Hash (of the stored bytes) place a commit in its
	// subject's chain; Subject is empty for a message that is not a commit
	// or was set aside.
	Subject string
	Hash    string
	Commit  eventstore.Commit
	// dims, when set, holds the texts of each usage debit's dimensions
	// (nil for other events), looked up ahead by prepareDims.
	dims []*dimsText
}

// Decode decodes stored commits. A message that does not decode is an
// *eventstore.ForeignMessageError, unless skip holds it.
func Decode(msgs []eventstore.StoredMsg, skip eventstore.Quarantined) ([]Decoded, error) {
	out := make([]Decoded, len(msgs))
	for i, m := range msgs {
		if !eventstore.IsCommitSubject(m.Subject) || skip.Holds(m) {
			// A checkpoint, a quarantine record or a message set aside
			// holds no events; its position still counts.
			out[i] = Decoded{Sequence: m.Sequence}
			continue
		}
		c, err := eventstore.DecodeCommit(m.Data)
		if err != nil {
			return nil, eventstore.Foreign(m, err)
		}
		out[i] = Decoded{Sequence: m.Sequence, Subject: m.Subject, Hash: eventstore.Hash(m.Data), Commit: c}
	}
	return out, nil
}

// Apply decodes and applies commits in one transaction with the checkpoint.
// Commits at or below the checkpoint are skipped (a redelivery); a gap is an
// error (ErrOutOfOrder) and applies nothing.
func (p *Projector) Apply(ctx context.Context, msgs []eventstore.StoredMsg) error {
	start := p.Position()
	for len(msgs) > 0 && msgs[0].Sequence <= start {
		msgs = msgs[1:]
	}
	decoded, err := Decode(msgs, p.skip())
	if err != nil {
		// A commit that does not decode stalls the projection: retrying
		// cannot help, so it is recorded for /readyz until an operator
		// sets the message aside (creditd quarantine).
		p.failure.Store(&err)
		return err
	}
	return p.ApplyDecoded(ctx, decoded)
}

// UseQuarantined sets the messages set aside, read from the log.
func (p *Projector) UseQuarantined(q eventstore.Quarantined) { p.quarantined.Store(&q) }

func (p *Projector) skip() eventstore.Quarantined {
	if q := p.quarantined.Load(); q != nil {
		return *q
	}
	return nil
}

// Err is why the last apply failed (a write or a commit that does not
// decode), nil once one succeeds since.
func (p *Projector) Err() error {
	if e := p.failure.Load(); e != nil {
		return *e
	}
	return nil
}

// ApplyDecoded is Apply for commits already decoded.
func (p *Projector) ApplyDecoded(ctx context.Context, commits []Decoded) error {
	err := p.applyDecoded(ctx, commits)
	if err != nil && !errors.Is(err, ErrOutOfOrder) && ctx.Err() == nil {
		p.failure.Store(&err)
	} else if err == nil {
		p.failure.Store(nil)
	}
	return err
}

func (p *Projector) applyDecoded(ctx context.Context, commits []Decoded) error {
	start := p.Position()
	for len(commits) > 0 && commits[0].Sequence <= start {
		commits = commits[1:]
	}
	if len(commits) == 0 {
		return nil
	}
	if p.headsUnknown {
		return errHeadsUnknown
	}
	linked, moved, linkErr := checkLinks(p.heads, commits)
	if linkErr != nil {
		// The commits before the foreign one are applied; it and the ones
		// after it wait for an operator (chain.go).
		if linked > 0 {
			if err := p.applyDecoded(ctx, commits[:linked]); err != nil {
				return err
			}
		}
		return linkErr
	}
	conn, err := writerConn(ctx, p.db.writer)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if len(p.dims) > dimsCacheMax {
		clear(p.dims)
	}
	// Statements run without ctx's cancellation: for a cancellable context
	// the driver starts a watcher goroutine per statement, which cost more
	// than the statement itself. Cancelling ctx still rolls the transaction
	// back, and the batch checks ctx between commits.
	b := newBatch(context.WithoutCancel(ctx), conn, tx, start, p.known, p.dims)
	b.stmtCache = p.db.flushStmts
	b.ledgerRows = p.ledgerBuf[:0]
	defer func() { p.ledgerBuf = b.ledgerRows[:0] }()
	if p.carried != nil {
		// The batch adds to a copy of the carried cells, which replaces
		// them only once it commits: a failed batch leaves no trace.
		b.cube, b.dayMax = cloneCells(p.carried), p.cubeDayMax
	}
	for _, c := range commits {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.applyCommit(c.Sequence, c.Commit, c.dims); err != nil {
			return err
		}
	}
	if p.carried != nil {
		b.carryFrom = b.dayMax - 1
	}
	if err := b.flush(); err != nil {
		return fmt.Errorf("write read models: %w", errors.Join(ctx.Err(), err))
	}
	if err := writeHeads(b.ctx, tx, moved); err != nil {
		return err
	}
	if p.beforeCommit != nil {
		if err := p.beforeCommit(b.position); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", errors.Join(ctx.Err(), err))
	}
	for key, l := range b.lines {
		p.known[key] = *l
	}
	for subject, h := range moved {
		p.heads[subject] = h
	}
	if p.carried != nil {
		p.carried, p.cubeDayMax = b.cube, b.dayMax // flushCube took out what it wrote
	}
	p.advance(b.position)
	if b.noticesWritten > 0 {
		select {
		case p.noticed <- struct{}{}:
		default:
		}
	}
	return nil
}

func (p *Projector) advance(position uint64) {
	p.mu.Lock()
	p.position = position
	close(p.advanced)
	p.advanced = make(chan struct{})
	p.mu.Unlock()
}

// WaitFor blocks until the projection has applied position, ctx ends
// (ErrWaitTimeout when its deadline passed), whichever is first.
func (p *Projector) WaitFor(ctx context.Context, position uint64) error {
	for {
		p.mu.Lock()
		reached, advanced := p.position >= position, p.advanced
		p.mu.Unlock()
		if reached {
			return nil
		}
		select {
		case <-advanced:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return ErrWaitTimeout
			}
			return ctx.Err()
		}
	}
}

// cloneCells copies cube cells, deltas included, but not the counters of
// the batch that last added to them.
func cloneCells(cells map[cubeKey]*cubeDelta) map[cubeKey]*cubeDelta {
	out := make(map[cubeKey]*cubeDelta, len(cells))
	for k, c := range cells {
		copied := *c
		copied.total, copied.route = nil, nil
		out[k] = &copied
	}
	return out
}

// flushCarried writes the cube cells a bulk load carried, and ends the
// carrying.
func (p *Projector) flushCarried(ctx context.Context) error {
	defer func() { p.carried = nil }()
	if len(p.carried) == 0 {
		return nil
	}
	conn, err := writerConn(ctx, p.db.writer)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	b := newBatch(context.WithoutCancel(ctx), conn, tx, p.Position(), p.known, p.dims)
	b.stmtCache = p.db.flushStmts
	b.cube = p.carried
	if err := b.inFlush(b.flushCube); err != nil {
		return fmt.Errorf("write the usage cube: %w", err)
	}
	return tx.Commit()
}
