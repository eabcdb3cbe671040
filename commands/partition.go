package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// Bounds of the write path.
const (
	// inboxDepth bounds the requests waiting for one partition's writer;
	// a full inbox makes callers wait (back-pressure) instead of queueing
	// without limit.
	inboxDepth = 1024
	// commitOpsMax bounds the operations gathered into one commit.
	commitOpsMax = 8192
	// commitBytesMax keeps a commit under the server's message size limit.
	commitBytesMax = eventstore.MaxPayloadBytes - 64<<10
	// appendAttemptsMax bounds how often a batch is decided again after
	// another writer moved the subject.
	appendAttemptsMax = 16
	// conflictBackoffStep scales the random pause after a conflict, so two
	// instances writing one partition take turns instead of one starving.
	conflictBackoffStep = 2 * time.Millisecond
	// unavailableAttemptsMax bounds retries when the store does not answer:
	// a second try after reading the subject, then the callers get
	// ErrUnavailable and retry with the same ids.
	unavailableAttemptsMax = 2
	// appendTimeout bounds one append, whatever the callers' deadlines: a
	// commit in flight is finished even if its caller has gone.
	appendTimeout = 10 * time.Second
)

// lineRef names a credit line.
type lineRef struct {
	tenantID   int64
	creditType string
}

// decision is what an operation decides against: its line as staged in the
// current batch, with the work due at the batch's clock applied, that
// clock, and the index of which line each id was made on.
type decision struct {
	line    *domain.Line
	now     time.Time
	knownOn func(kind, id string) bool
}

// op is one write on one line.
type op struct {
	creditType string
	// key and fingerprint make the op idempotent; a zero key means the op
	// is a setting that is idempotent by its value.
	key         idKey
	fingerprint uint64
	decide      func(d decision) ([]domain.Event, error)
	// guards marks an op whose refusal refuses the rest of its request: a
	// usage batch's key used before with other events. It comes first, so
	// nothing of the request is staged yet when it is refused.
	guards bool
}

// request is one caller's ops for one tenant, answered together: they land
// in the same commit or none does.
type request struct {
	tenantID int64
	ops      []op
	// sweep asks the writer to turn due expiries into events.
	sweep bool
	// inspect runs on the committed state inside the writer, for reads of
	// the write model (tests, replies that need the state).
	inspect func(p *partition)
	results []Result
	done    chan error
}

func newRequest(tenantID int64, ops []op) *request {
	return &request{tenantID: tenantID, ops: ops, done: make(chan error, 1)}
}

// partition is the single writer of one subject of the log. Its state is
// touched only by its own goroutine.
type partition struct {
	id     int
	store  Store
	log    *slog.Logger
	clock  func() time.Time
	checks bool
	chain  chain
	lines  map[lineRef]*domain.Line
	// lineOf remembers the line of every reservation and subscription ever
	// made, so a capture, release or cancel that names no credit type finds
	// its line even after the hold closed (a retry must be a duplicate).
	lineOf map[idKey]string
	seen   map[idKey]outcome
	inbox  chan *request
	// stale is set when the subject may hold commits this writer has not
	// applied (a conflict, or an append whose outcome is unknown).
	stale    bool
	observer Observer
}

func newPartition(id int, store Store, log *slog.Logger, clock func() time.Time, checks bool) *partition {
	return &partition{
		id: id, store: store, log: log.With("partition", id), clock: clock, checks: checks,
		chain: chain{subject: eventstore.PartitionSubject(id)}, observer: noObserver{},
		lines: map[lineRef]*domain.Line{}, seen: map[idKey]outcome{},
		lineOf: map[idKey]string{},
		inbox:  make(chan *request, inboxDepth),
	}
}

// load applies the subject's history: the write model is kept in memory,
// so a command never replays a line's history.
func (p *partition) load(ctx context.Context) error {
	return p.chain.catchUp(ctx, p.store, p.applyCommit)
}

func (p *partition) applyCommit(seq uint64, commit eventstore.Commit) {
	for _, env := range commit.Events {
		ref := lineRef{env.TenantID, env.CreditType}
		line := p.lines[ref]
		if line == nil {
			line = domain.NewLine(env.CreditType)
			p.lines[ref] = line
		}
		// The commit was decided at its recording instant: observing it
		// rebuilds the same arming state the writer had.
		line.Observe(commit.RecordedAt)
		line.Apply(env.Event)
		p.noteLine(env)
		for _, ko := range outcomesOf(env.TenantID, env.CreditType, env.Event) {
			ko.outcome.position = seq
			p.seen[ko.key] = ko.outcome
		}
	}
}

// run serves the inbox until it is closed. Requests that arrive while a
// commit is in flight are gathered into the next one: group commit, so one
// fsync pays for everything that queued during the previous one.
func (p *partition) run() {
	batch := make([]*request, 0, 64)
	for first := range p.inbox {
		batch = append(batch[:0], first)
		ops := len(first.ops)
	gather:
		for ops < commitOpsMax {
			select {
			case r, ok := <-p.inbox:
				if !ok {
					break gather
				}
				batch = append(batch, r)
				ops += len(r.ops)
			default:
				break gather
			}
		}
		p.process(batch)
	}
}

// process decides and commits a batch, deciding again after a conflict.
func (p *partition) process(batch []*request) {
	var inspects []*request
	writes := batch[:0:0]
	for _, r := range batch {
		if r.inspect != nil {
			inspects = append(inspects, r)
		} else {
			writes = append(writes, r)
		}
	}
	if len(writes) > 0 {
		p.commitBatch(writes)
	}
	for _, r := range inspects {
		// Other instances may have written the subject: an inspection
		// reads up to its tip first.
		if err := p.refresh(); err != nil {
			r.done <- err
			continue
		}
		r.inspect(p)
		r.done <- nil
	}
}

func (p *partition) refresh() error {
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	if err := p.chain.catchUp(ctx, p.store, p.applyCommit); err != nil {
		p.log.Error("reading partition", "err", err)
		if eventstore.IsForeign(err) {
			return err // names the message and the way out
		}
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	p.stale = false
	return nil
}

func (p *partition) commitBatch(batch []*request) {
	unavailable := 0
	for attempt := 1; ; attempt++ {
		if p.stale {
			if err := p.refresh(); err != nil {
				fail(batch, err)
				return
			}
		}
		now := p.clock()
		st := p.decide(batch, now)
		if len(st.events) == 0 {
			p.finish(batch, st, 0)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
		seq, err := p.chain.append(ctx, p.store, now, st.events)
		cancel()
		switch {
		case err == nil:
			p.observer.Committed(len(st.events))
			p.commitStage(st, seq)
			p.finish(batch, st, seq)
			return
		case errors.Is(err, ErrCommitTooLarge):
			if len(batch) == 1 {
				fail(batch, err)
				return
			}
			half := len(batch) / 2
			p.commitBatch(batch[:half])
			p.commitBatch(batch[half:])
			return
		case errors.Is(err, eventstore.ErrConflict):
			p.observer.Conflicted()
			p.stale = true
			if attempt >= appendAttemptsMax {
				fail(batch, fmt.Errorf("%w: %v", ErrContention, err))
				return
			}
			time.Sleep(rand.N(time.Duration(attempt) * conflictBackoffStep))
		default:
			// The append may have landed: reading the subject before the
			// next try turns a landed write into a duplicate.
			p.stale = true
			p.observer.Retried()
			p.log.Warn("append failed", "err", err)
			if unavailable++; unavailable >= unavailableAttemptsMax {
				fail(batch, fmt.Errorf("%w: %v", ErrUnavailable, err))
				return
			}
		}
	}
}

func fail(batch []*request, err error) {
	for _, r := range batch {
		r.done <- err
	}
}

// stage holds a batch's decisions until its commit lands: copies of the
// lines it touched and the index entries it adds. Dropped on failure, so
// the committed state is only ever what the log holds.
type stage struct {
	p   *partition
	now time.Time
	// lines are the batch's copies, each observed at now when first taken.
	lines map[lineRef]*domain.Line
	// changed are the lines an event was applied to: only those replace
	// the committed state (a refused op's empty line must not appear).
	changed map[lineRef]bool
	seen    map[idKey]outcome
	// lineOf are the lines of the reservations, subscriptions and grants
	// the batch made.
	lineOf map[idKey]string
	events []domain.Envelope
}

func (s *stage) line(ref lineRef) *domain.Line {
	if l, ok := s.lines[ref]; ok {
		return l
	}
	var l *domain.Line
	if base, ok := s.p.lines[ref]; ok {
		l = base.Clone()
	} else {
		l = domain.NewLine(ref.creditType)
	}
	l.Observe(s.now)
	s.lines[ref] = l
	return l
}

// due applies the work due on a line at the batch's instant, before any
// write on it is decided (domain.DecideDue).
func (s *stage) due(ref lineRef) *domain.Line {
	line := s.line(ref)
	for _, e := range domain.DecideDue(line, s.now) {
		s.apply(domain.Envelope{TenantID: ref.tenantID, CreditType: ref.creditType, Event: e})
	}
	return line
}

// lineOfKey returns the line of a reservation, subscription or grant made
// in this batch or before.
func (s *stage) lineOfKey(key idKey) (string, bool) {
	if ct, ok := s.lineOf[key]; ok {
		return ct, true
	}
	ct, ok := s.p.lineOf[key]
	return ct, ok
}

// lookup returns the outcome of key; pending is true when it was decided in
// this batch (its position is the batch's commit).
func (s *stage) lookup(key idKey) (o outcome, pending, ok bool) {
	if o, ok := s.seen[key]; ok {
		return o, true, true
	}
	o, ok = s.p.seen[key]
	return o, false, ok
}

func (p *partition) decide(batch []*request, now time.Time) *stage {
	st := &stage{p: p, now: now, lines: map[lineRef]*domain.Line{}, changed: map[lineRef]bool{}, seen: map[idKey]outcome{}, lineOf: map[idKey]string{}}
	for _, r := range batch {
		if r.sweep {
			p.decideSweep(st, now)
			continue
		}
		r.results = make([]Result, len(r.ops))
		for i, o := range r.ops {
			r.results[i] = p.decideOp(st, r.tenantID, o, now)
			if o.guards && r.results[i].Err != nil {
				for j := i + 1; j < len(r.ops); j++ {
					r.results[j] = Result{Err: r.results[i].Err}
				}
				break
			}
		}
	}
	return st
}

func (st *stage) apply(env domain.Envelope) {
	ref := lineRef{env.TenantID, env.CreditType}
	line := st.line(ref)
	line.Apply(env.Event)
	st.changed[ref] = true
	if st.p.checks {
		if err := line.CheckInvariants(); err != nil {
			panic(fmt.Sprintf("invariant broken after %T: %v", env.Event, err))
		}
	}
	for _, ko := range outcomesOf(env.TenantID, env.CreditType, env.Event) {
		st.seen[ko.key] = ko.outcome
	}
	if key, ok := lineKeyOf(env); ok {
		st.lineOf[key] = env.CreditType
	}
	st.events = append(st.events, env)
}

func (p *partition) decideOp(st *stage, tenantID int64, o op, now time.Time) Result {
	if o.key != (idKey{}) {
		if prior, pending, ok := st.lookup(o.key); ok {
			if prior.fingerprint != o.fingerprint {
				return Result{Err: domain.ErrIdempotencyConflict, Position: prior.position}
			}
			res := Result{Status: StatusDuplicate, Duplicate: true, Position: prior.position}
			if prior.status != outcomeAccepted {
				res.Status, res.Reason = StatusRejected, prior.status.reason()
			}
			if pending {
				res.Position = 0 // filled with the batch's commit by finish
			}
			return res
		}
	}
	ref := lineRef{tenantID, o.creditType}
	// The write is decided after the work due at its instant; that work is
	// stored with the write, and not at all when the write is refused
	// (a refusal stores nothing; the sweeper stores it soon enough).
	line, due := domain.Due(st.line(ref), now)
	events, err := o.decide(decision{line: line, now: now, knownOn: func(kind, id string) bool {
		ct, ok := st.lineOfKey(makeKey(tenantID, kind, id))
		return ok && ct == o.creditType
	}})
	if err != nil {
		return Result{Err: err}
	}
	for _, e := range due {
		st.apply(domain.Envelope{TenantID: tenantID, CreditType: o.creditType, Event: e})
	}
	res := Result{Status: StatusAccepted, Events: events}
	for _, e := range events {
		switch r := e.(type) {
		case domain.DebitRejected:
			res.Status, res.Reason = StatusRejected, r.Reason
		case domain.ReservationRejected:
			res.Status, res.Reason = StatusRejected, r.Reason
		}
		st.apply(domain.Envelope{TenantID: tenantID, CreditType: o.creditType, Event: e})
	}
	return res
}

// commitStage makes a landed batch's decisions the committed state.
func (p *partition) commitStage(st *stage, seq uint64) {
	for ref := range st.changed {
		p.lines[ref] = st.lines[ref]
	}
	for key, o := range st.seen {
		o.position = seq
		p.seen[key] = o
	}
	for key, ct := range st.lineOf {
		p.lineOf[key] = ct
	}
}

func (p *partition) noteLine(env domain.Envelope) {
	if key, ok := lineKeyOf(env); ok {
		p.lineOf[key] = env.CreditType
	}
}

// lineKeyOf is the index key under which an event records its line: the
// reservation, subscription or grant it makes.
func lineKeyOf(env domain.Envelope) (idKey, bool) {
	switch e := env.Event.(type) {
	case domain.CreditsReserved:
		return makeKey(env.TenantID, kindReservation, e.ReservationID), true
	case domain.SubscriptionStarted:
		return makeKey(env.TenantID, kindSubscribe, e.SubscriptionID), true
	case domain.CreditsGranted:
		return makeKey(env.TenantID, kindGrant, e.GrantID), true
	}
	return idKey{}, false
}

// finish answers a batch. seq is its commit, 0 when nothing was appended.
func (p *partition) finish(batch []*request, st *stage, seq uint64) {
	for _, r := range batch {
		for i := range r.results {
			res := &r.results[i]
			switch {
			case res.Err != nil:
			case res.Position == 0 && seq != 0:
				res.Position = seq
			case res.Position == 0:
				// A setting that did not change: the state is current as of
				// the partition's tip.
				res.Position = p.chain.lastSeq
			}
		}
		r.done <- nil
	}
}

// sweepEventsMax bounds the events one sweep appends, so a backlog of
// expiries (after downtime) never outgrows a commit; the next tick goes on.
const sweepEventsMax = 5000

func (p *partition) decideSweep(st *stage, now time.Time) {
	first := len(st.events)
	for ref, committed := range p.lines {
		if len(st.events)-first >= sweepEventsMax {
			return
		}
		due, ok := committed.NextDue()
		if !ok || due.After(now) {
			continue
		}
		st.due(ref)
	}
}
