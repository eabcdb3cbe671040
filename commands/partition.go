package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
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
	line *domain.Line
	now  time.Time
	// What knownOn looks in: fields rather than a closure made per
	// decision, which cost two allocations per event.
	st         *stage
	tenantID   int64
	creditType string
}

// knownOn reports whether an id of kind was recorded on the decision's
// line, in this batch or before; an unreadable id index is ErrUnavailable.
func (d decision) knownOn(kind, id string) (bool, error) {
	ct, ok, err := d.st.lineOfKey(makeKey(d.tenantID, kind, id))
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return ok && ct == d.creditType, nil
}

// op is one write on one line.
type op struct {
	creditType string
	// key and fingerprint make the op idempotent; a zero key means the op
	// is a setting that is idempotent by its value.
	key         idKey
	fingerprint uint64
	decide      func(d decision) ([]domain.Event, error)
	// usage, when set, is decided instead of decide: a usage event, the
	// most frequent op by far, needs no closure (one allocation per event
	// holding a copy of the event).
	usage *domain.CheckedUsage
	// guards marks an op whose refusal refuses the rest of its request: a
	// usage batch's key used before with other events. It comes first, so
	// nothing of the request is staged yet when it is refused.
	guards bool
	// grants names the grants the decision may look up: a grant that was
	// depleted before the last snapshot is brought back from the id index
	// into the staged line first (window.go).
	grants []string
}

// request is one caller's ops for one tenant, answered together: they land
// in the same commit or none does.
type request struct {
	tenantID int64
	ops      []op
	// sweep asks the writer to turn due expiries into events.
	sweep bool
	// sweepEvents bounds the events of a sweep; 0 is sweepEventsMax.
	sweepEvents int
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
// touched only by its own goroutine, except the snapshot job, which reads
// only what the writer froze for it (snapshot.go).
type partition struct {
	id     int
	store  Store
	log    *slog.Logger
	clock  func() time.Time
	checks bool
	chain  chain
	// lines are the committed lines. A committed *Line is never changed in
	// place while a snapshot may read it: the writer decides on copies
	// (stage) and replaces the pointer on commit, and applying commits read
	// back copies a line first when a snapshot froze it (gen, thawed).
	lines map[lineRef]*domain.Line
	// win holds the ids, lines of ids and depleted grants since the last
	// snapshot; flushing, the window a snapshot job is writing to a
	// segment; segments, the id index of everything older (window.go).
	win      *window
	flushing *window
	segments *segmentList
	// gen counts freezes of lines; thawed[ref] is the gen at which the
	// line under ref was last copied, so it may be changed in place.
	gen    uint64
	thawed map[lineRef]uint64
	due    *dueQueue
	snaps  *snapshotter
	inbox  chan *request
	// stale is set when the subject may hold commits this writer has not
	// applied (a conflict, or an append whose outcome is unknown).
	stale    bool
	observer Observer
	// lease, in a cluster, is this instance's hold on the partition: the
	// writer appends only while it is held (lease.go); leaseEpoch is the
	// acquisition the writer last read the subject under.
	lease      *lease
	leaseEpoch uint64
}

func newPartition(id int, store Store, log *slog.Logger, clock func() time.Time, checks bool) *partition {
	return &partition{
		id: id, store: store, log: log.With("partition", id), clock: clock, checks: checks,
		chain: chain{subject: eventstore.PartitionSubject(id)}, observer: noObserver{},
		lines: map[lineRef]*domain.Line{}, win: newWindow(), thawed: map[lineRef]uint64{},
		due:   newDueQueue(),
		inbox: make(chan *request, inboxDepth),
	}
}

// load restores the newest valid snapshot, if any, and applies the
// subject's history after it: the write model is kept in memory, so a
// command never replays a line's history.
func (p *partition) load(ctx context.Context) error {
	if p.snaps != nil {
		if err := p.snaps.restore(ctx, p); err != nil {
			return err
		}
	}
	if p.snaps != nil {
		// While loading, a window is written out once it holds its share
		// of the budget (every writer loads at once), so memory stays
		// bounded however long the history read (a first start, or a lost
		// snapshot). A snapshot that fails keeps its ids in the window,
		// still full: the next try waits for another share's worth, not
		// the next commit, or a store refusing uploads would make every
		// commit of the load wait for one to fail.
		share := p.snaps.budget.share()
		next := share
		p.chain.applied = func() error {
			if size := p.win.size(); size >= next {
				if err := p.snaps.snapshotNow(ctx, p); err != nil {
					return err
				}
				next = p.win.size() + share
			}
			return nil
		}
		defer func() {
			p.chain.applied = nil
			p.snaps.account(p)
		}()
	}
	if err := p.chain.catchUp(ctx, p.store, p.applyCommit); err != nil {
		return err
	}
	for ref, l := range p.lines {
		p.due.schedule(ref, l)
	}
	return nil
}

// freezeLines returns the committed lines as of now, for reading outside
// the writer: it copies the map, not the lines (committed lines are
// replaced, not changed, and mutable copies a frozen one before changing
// it).
func (p *partition) freezeLines() map[lineRef]*domain.Line {
	p.gen++
	return maps.Clone(p.lines)
}

// mutable returns the committed line under ref for changing in place,
// copying it first if a snapshot froze it.
func (p *partition) mutable(ref lineRef) *domain.Line {
	line := p.lines[ref]
	if line == nil {
		line = domain.NewLine(ref.creditType)
	} else if p.thawed[ref] == p.gen {
		return line
	} else {
		line = line.Clone()
	}
	p.lines[ref] = line
	p.thawed[ref] = p.gen
	return line
}

// applyCommit applies a commit read from the log. Grants a reversal gives
// credits back to are brought back from the id index first, so a failure
// to read it leaves the state as it was.
func (p *partition) applyCommit(seq uint64, commit eventstore.Commit) error {
	touched := map[lineRef]*domain.Line{}
	for _, env := range commit.Events {
		ref := lineRef{env.TenantID, env.CreditType}
		if touched[ref] == nil {
			touched[ref] = p.mutable(ref)
		}
		if r, ok := env.Event.(domain.UsageReversed); ok {
			if err := p.loadDepleted(touched[ref], env.TenantID, grantIDs(r.Returned)); err != nil {
				return err
			}
		}
	}
	for _, env := range commit.Events {
		line := touched[lineRef{env.TenantID, env.CreditType}]
		// The commit was decided at its recording instant: observing it
		// rebuilds the same arming state the writer had.
		line.Observe(commit.RecordedAt)
		line.Apply(env.Event)
		if key, ok := lineKeyOf(env); ok {
			p.win.lineOf[key] = env.CreditType
		}
		if ko, ok := outcomeOf(env.TenantID, env.CreditType, env.Event); ok {
			ko.outcome.position = seq
			p.win.seen[ko.key] = ko.outcome
		}
	}
	for ref, line := range touched {
		p.keepDepleted(ref, line)
		p.due.schedule(ref, line)
	}
	return nil
}

// run serves the inbox until it is closed. Requests that arrive while a
// commit is in flight are gathered into the next one: group commit, so one
// fsync pays for everything that queued during the previous one. Between
// batches it starts a snapshot when one is due and installs finished ones;
// on close it writes a last snapshot, so the next start replays nothing.
func (p *partition) run() {
	batch := make([]*request, 0, 64)
	var finished <-chan snapshotResult
	if p.snaps != nil {
		finished = p.snaps.finished
	}
	for {
		var first *request
		select {
		case r, ok := <-p.inbox:
			if !ok {
				p.closeSnapshots()
				return
			}
			first = r
		case res := <-finished:
			p.snaps.install(p, res)
			continue
		}
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
		if p.snaps != nil {
			p.snaps.maybeStart(p)
		}
	}
}

// closeSnapshots waits for a snapshot in flight and writes the last one.
func (p *partition) closeSnapshots() {
	if p.snaps == nil {
		return
	}
	p.snaps.close(p)
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

// owned reports whether this writer may append now, and until when (zero:
// no lease, the engine runs alone). A new acquisition makes the writer
// read the subject first: other owners wrote it meanwhile.
func (p *partition) owned() (until time.Time, ok bool) {
	if p.lease == nil {
		return time.Time{}, true
	}
	held, epoch, until := p.lease.state()
	if !held {
		p.stale = true
		return until, false
	}
	if epoch != p.leaseEpoch {
		p.leaseEpoch = epoch
		p.stale = true
	}
	return until, true
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
		leaseUntil, owned := p.owned()
		if !owned {
			fail(batch, errNotOwner)
			return
		}
		if p.stale {
			if err := p.refresh(); err != nil {
				fail(batch, err)
				return
			}
		}
		now := p.clock()
		st := p.decide(batch, now)
		// Lines the sweep took off the schedule go back on it from the
		// committed state, whatever happens to this attempt; the commit
		// schedules the lines it changed (commitStage).
		for _, ref := range st.swept {
			if l, ok := p.lines[ref]; ok {
				p.due.schedule(ref, l)
			}
		}
		if len(st.events) == 0 {
			p.finish(batch, st, 0)
			return
		}
		deadline := time.Now().Add(appendTimeout)
		if !leaseUntil.IsZero() && leaseUntil.Before(deadline) {
			// An append still unanswered when the lease lapses is given
			// up; it may land, and the next owner's fence sees it.
			deadline = leaseUntil
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		seq, err := p.chain.append(ctx, p.store, now, st.events)
		cancel()
		switch {
		case err == nil:
			p.observer.Committed(len(st.events))
			p.commitStage(st, seq)
			p.finish(batch, st, seq)
			return
		case errors.Is(err, ErrCommitTooLarge):
			if len(batch) == 1 && batch[0].sweep {
				p.splitSweep(batch[0], err)
				return
			}
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

// splitSweep runs a sweep too large for one commit as two sweeps of half
// as many events each, which between them cover what it would have: a
// server with a small max_payload (NATS's default is 1 MiB) must not
// stall expiries after downtime. Due work is split by lines; one line's
// due work too large for a commit fails with tooLarge.
func (p *partition) splitSweep(r *request, tooLarge error) {
	limit := r.sweepEvents
	if limit == 0 {
		limit = sweepEventsMax
	}
	if limit == 1 {
		r.done <- tooLarge
		return
	}
	for range 2 {
		half := &request{sweep: true, sweepEvents: limit / 2, done: make(chan error, 1)}
		p.commitBatch([]*request{half})
		if err := <-half.done; err != nil {
			r.done <- err
			return
		}
	}
	r.done <- nil
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
	// swept are the lines a sweep took off the due schedule.
	swept []lineRef
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
func (s *stage) lineOfKey(key idKey) (string, bool, error) {
	if ct, ok := s.lineOf[key]; ok {
		return ct, true, nil
	}
	return s.p.lineOfKey(key)
}

// lookup returns the outcome of key; pending is true when it was decided in
// this batch (its position is the batch's commit).
func (s *stage) lookup(key idKey) (o outcome, pending, ok bool, err error) {
	if o, ok := s.seen[key]; ok {
		return o, true, true, nil
	}
	o, ok, err = s.p.outcomeOf(key)
	return o, false, ok, err
}

func (p *partition) decide(batch []*request, now time.Time) *stage {
	st := &stage{p: p, now: now, lines: map[lineRef]*domain.Line{}, changed: map[lineRef]bool{}, seen: map[idKey]outcome{}, lineOf: map[idKey]string{}}
	for _, r := range batch {
		if r.sweep {
			p.decideSweep(st, now, r.sweepEvents)
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
	if ko, ok := outcomeOf(env.TenantID, env.CreditType, env.Event); ok {
		st.seen[ko.key] = ko.outcome
	}
	if key, ok := lineKeyOf(env); ok {
		st.lineOf[key] = env.CreditType
	}
	st.events = append(st.events, env)
}

func (p *partition) decideOp(st *stage, tenantID int64, o op, now time.Time) Result {
	if o.key != (idKey{}) {
		prior, pending, ok, err := st.lookup(o.key)
		if err != nil {
			return Result{Err: fmt.Errorf("%w: %v", ErrUnavailable, err)}
		}
		if ok {
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
	staged := st.line(ref)
	if err := p.loadDepleted(staged, tenantID, o.grants); err != nil {
		return Result{Err: fmt.Errorf("%w: %v", ErrUnavailable, err)}
	}
	// The write is decided after the work due at its instant; that work is
	// stored with the write, and not at all when the write is refused
	// (a refusal stores nothing; the sweeper stores it soon enough).
	line, due := domain.Due(staged, now)
	var events []domain.Event
	var err error
	if o.usage != nil {
		events, err = domain.DecideCheckedUsage(line, *o.usage, now)
	} else {
		events, err = o.decide(decision{line: line, now: now, st: st, tenantID: tenantID, creditType: o.creditType})
	}
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
		line := st.lines[ref]
		p.keepDepleted(ref, line)
		p.lines[ref] = line
		p.thawed[ref] = p.gen // a fresh copy no snapshot holds
		p.due.schedule(ref, line)
	}
	for key, o := range st.seen {
		o.position = seq
		p.win.seen[key] = o
	}
	for key, ct := range st.lineOf {
		p.win.lineOf[key] = ct
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
// sweepLinesMax bounds the lines one sweep visits.
const (
	sweepEventsMax = 5000
	sweepLinesMax  = 5000
)

// decideSweep applies the due work of the lines the schedule says are due
// (dueQueue): the cost follows the work due, not the number of lines. It
// stops once eventsMax events (0: sweepEventsMax) are decided, visiting
// no more lines at a time than that.
func (p *partition) decideSweep(st *stage, now time.Time, eventsMax int) {
	if eventsMax == 0 {
		eventsMax = sweepEventsMax
	}
	first := len(st.events)
	for len(st.events)-first < eventsMax {
		refs := p.due.popDue(now, min(sweepLinesMax-len(st.swept), 64, eventsMax))
		if len(refs) == 0 {
			return
		}
		for _, ref := range refs {
			st.swept = append(st.swept, ref)
			if committed, ok := p.lines[ref]; ok {
				if due, ok := committed.NextDue(); ok && !due.After(now) {
					st.due(ref)
				}
			}
		}
	}
}
