package sim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// Bounds of the driver.
const (
	// attemptsMax bounds the tries of one op through faults; each fault
	// costs at most two (the engine's own retry, then the driver's).
	attemptsMax = 12
	// opTimeout bounds one call to the engine.
	opTimeout = 30 * time.Second
	// sweepInterval keeps the engine's background sweeper from ever running
	// during a seed: correctness must not depend on it.
	sweepInterval = 24 * time.Hour
	// syncInterval: the simulation restarts engines, never the machine, so
	// the embedded server need not fsync every append.
	syncInterval = time.Minute
)

// Clock is the simulated clock every engine of a seed reads.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

func NewClock(t time.Time) *Clock { return &Clock{now: t} }

func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// Server is one embedded JetStream with a fresh log. Each seed starts its
// own (a few milliseconds): deleting and re-creating the stream on a
// running server can bring the old stream's messages back (the file store
// removes its directory after the delete has answered), and a seed must see
// the same log positions and tenant ids alone or in a batch.
type Server struct {
	emb   *eventstore.Embedded
	conn  *nats.Conn
	Store *eventstore.Store
	// Dir is where the server stores; the engine's id index is kept under
	// it too.
	Dir string
}

// StartServer starts an embedded server storing under dir, which must be
// new, and opens the log.
func StartServer(ctx context.Context, dir string) (*Server, error) {
	emb, err := eventstore.StartEmbedded(eventstore.EmbeddedOptions{StoreDir: dir, SyncInterval: syncInterval})
	if err != nil {
		return nil, err
	}
	conn, err := emb.Connect("sim")
	if err != nil {
		emb.Shutdown()
		return nil, err
	}
	s := &Server{emb: emb, conn: conn, Dir: dir}
	if s.Store, err = eventstore.Open(ctx, conn, eventstore.Config{}); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops the server.
func (s *Server) Close() {
	s.conn.Close()
	s.emb.Shutdown()
}

// Driver runs ops on the real engine and answers them in the model's terms.
type Driver struct {
	ctx    context.Context
	clock  *Clock
	store  *eventstore.Store
	faults *FaultStore
	engine *commands.Engine
	// second is another engine on the same store: the second writer whose
	// commits make conflicts.
	second *commands.Engine
	// tenantIDs maps the model's tenant indexes to the engine's ids.
	tenantIDs []int64
	// others[p] is the model tenant the second writer writes on partition p.
	others []int

	// indexDir holds the engine's id index segments.
	indexDir string

	mu       sync.Mutex
	otherOps []OtherOp
	otherSeq int
	restarts int
}

// OtherOp is a write the second writer made, which the model must see too.
type OtherOp struct {
	Op     Op
	Answer Answer
}

func (d *Driver) options() commands.Options {
	// CheckInvariants stays off: a broken invariant panics in a writer
	// goroutine, which would end the whole run without naming the seed; the
	// simulation checks the same invariants after every step instead.
	return commands.Options{Clock: d.clock.Now, SweepInterval: sweepInterval,
		Snapshots: commands.SnapshotOptions{Window: snapshotWindow, Dir: d.indexDir}}
}

// NewDriver creates tenants tenants, one more per partition for the second
// writer, and the engines. Model tenant i is the i-th created.
func NewDriver(ctx context.Context, server *Server, clock *Clock, faults func(other func(int) error) *FaultStore, tenants int) (*Driver, error) {
	d := &Driver{ctx: ctx, clock: clock, store: server.Store, indexDir: filepath.Join(server.Dir, "index")}
	d.faults = faults(d.otherWriter)
	var err error
	if d.engine, err = commands.New(ctx, d.faults, d.options()); err != nil {
		return nil, err
	}
	// Tenant ids are consecutive from 1 on a fresh log, and partitions are
	// ids modulo their count: one more tenant per partition gives the
	// second writer a tenant on each.
	partitions := d.store.Partitions()
	d.others = make([]int, partitions)
	for i := range tenants + partitions {
		created, err := d.engine.CreateTenant(ctx, commands.CreateTenant{Name: fmt.Sprintf("sim-%d", i)})
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("create tenant: %w", err)
		}
		d.tenantIDs = append(d.tenantIDs, created.Tenant.ID)
		if i >= tenants {
			d.others[d.store.PartitionOf(created.Tenant.ID)] = i
		}
	}
	if d.second, err = commands.New(ctx, logOnly{server.Store}, d.options()); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Tenants is the number of model tenants (the seed's and the second
// writer's).
func (d *Driver) Tenants() int { return len(d.tenantIDs) }

// Close stops the engines.
func (d *Driver) Close() {
	if d.engine != nil {
		d.engine.Close()
	}
	if d.second != nil {
		d.second.Close()
	}
}

// Restarts is how many times the engine was rebuilt from the log.
func (d *Driver) Restarts() int { return d.restarts }

// TakeOtherOps returns the second writer's writes since the last call.
func (d *Driver) TakeOtherOps() []OtherOp {
	d.mu.Lock()
	defer d.mu.Unlock()
	ops := d.otherOps
	d.otherOps = nil
	return ops
}

// otherWriter makes one real commit on partition as a second instance
// would: a grant of 1 on that partition's own tenant. It runs inside the
// first engine's append, before it.
func (d *Driver) otherWriter(partition int) error {
	d.mu.Lock()
	d.otherSeq++
	op := Op{Kind: OpGrant, Tenant: d.others[partition], Line: defaultLine, ID: fmt.Sprintf("w%d", d.otherSeq),
		Amount: decimal.NewFromInt(1), Source: "purchase"}
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(d.ctx, opTimeout)
	defer cancel()
	res, err := d.second.Grant(ctx, d.tenantIDs[op.Tenant], op.Line, grantCommand(op))
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.otherOps = append(d.otherOps, OtherOp{Op: op, Answer: answerOf(op.Kind, op.ID, res)})
	d.mu.Unlock()
	return nil
}

// Run sends op until it gets a definitive answer, as a client would: the
// same request again after ErrUnavailable or ErrContention, and a restarted
// engine after a crash. retried reports that a fault hit the op, so a
// landed first try may come back as a duplicate of itself.
func (d *Driver) Run(op Op) (answers []Answer, retried bool, err error) {
	before := d.faults.Injected()
	for attempt := 1; ; attempt++ {
		answers, err = d.call(op)
		if d.faults.Down() {
			if rerr := d.restart(); rerr != nil {
				return nil, true, rerr
			}
		}
		retried = d.faults.Injected() != before
		if err == nil {
			return answers, retried, nil
		}
		if !retryable(err) || attempt >= attemptsMax {
			return nil, retried, fmt.Errorf("no answer after %d attempts (faults: %s): %w", attempt, d.faults.Log(before), err)
		}
	}
}

// FaultLog describes the faults injected from the n-th on.
func (d *Driver) FaultLog(n int) string { return d.faults.Log(n) }

// Faults is how many faults were injected so far.
func (d *Driver) Faults() int { return d.faults.Injected() }

// restart closes the crashed engine and builds a new one from the log.
func (d *Driver) restart() error {
	d.engine.Close()
	d.faults.Restarted()
	e, err := commands.New(d.ctx, d.faults, d.options())
	if err != nil {
		return fmt.Errorf("restart the engine from the log: %w", err)
	}
	d.engine = e
	d.restarts++
	return nil
}

func retryable(err error) bool {
	return errors.Is(err, commands.ErrUnavailable) || errors.Is(err, commands.ErrContention) || errors.Is(err, commands.ErrClosed)
}

func grantCommand(op Op) domain.Grant {
	return domain.Grant{GrantID: op.ID, Amount: op.Amount, Source: domain.Source(op.Source), Priority: op.Priority,
		EffectiveAt: op.EffectiveAt, ExpiresAt: op.ExpiresAt}
}

// call sends op once. A refusal is an answer; err is for a retryable
// failure only.
func (d *Driver) call(op Op) ([]Answer, error) {
	ctx, cancel := context.WithTimeout(d.ctx, opTimeout)
	defer cancel()
	tenantID := d.tenantIDs[op.Tenant]
	e := d.engine
	if op.Kind == OpUsage {
		events := make([]commands.UsageEvent, len(op.Usage))
		for i, u := range op.Usage {
			events[i] = commands.UsageEvent{CreditType: u.Line, RecordUsage: domain.RecordUsage{
				UsageID: u.ID, Amount: u.Amount, OccurredAt: u.OccurredAt, Dimensions: domain.Dimensions{Module: "sim", Success: true},
			}}
		}
		results, err := e.RecordUsage(ctx, tenantID, events)
		if err != nil {
			if retryable(err) {
				return nil, err
			}
			answers := make([]Answer, len(op.Usage))
			for i := range answers {
				answers[i] = refused(reasonOf(err))
			}
			return answers, nil
		}
		answers := make([]Answer, len(results))
		for i, res := range results {
			if res.Err != nil {
				answers[i] = refused(reasonOf(res.Err))
				continue
			}
			answers[i] = answerOf(OpUsage, op.Usage[i].ID, res)
		}
		return answers, nil
	}
	var res commands.Result
	var err error
	switch op.Kind {
	case OpGrant:
		res, err = e.Grant(ctx, tenantID, op.Line, grantCommand(op))
	case OpReserve:
		res, err = e.Reserve(ctx, tenantID, op.Line, domain.Reserve{ReservationID: op.ID, Amount: op.Amount, TTL: op.TTL})
	case OpCapture:
		res, err = e.Capture(ctx, tenantID, op.Line, domain.Capture{ReservationID: op.ID, Amount: op.CaptureAmount})
	case OpRelease:
		res, err = e.Release(ctx, tenantID, op.Line, op.ID)
	case OpAdjust:
		res, err = e.Adjust(ctx, tenantID, op.Line, domain.Adjust{AdjustmentID: op.ID, Amount: op.Amount, Reason: op.Reason})
	case OpAutoReload:
		res, err = e.ConfigureAutoReload(ctx, tenantID, op.Line, domain.ConfigureAutoReload{Enabled: op.Enabled, Threshold: op.Threshold, Amount: op.Amount})
	case OpOverdraft:
		res, err = e.ConfigureLine(ctx, tenantID, op.Line, domain.ConfigureLine{OverdraftLimit: op.Amount})
	case OpSubscribe:
		res, err = e.StartSubscription(ctx, tenantID, op.Line, domain.StartSubscription{SubscriptionID: op.ID,
			CreditsPerPeriod: op.Amount, Period: domain.PeriodMonthly, StartsAt: op.StartsAt, Rollover: op.Rollover})
	case OpCancel:
		res, err = e.CancelSubscription(ctx, tenantID, op.Line, op.ID)
	case OpVoid:
		res, err = e.VoidGrant(ctx, tenantID, op.Line, domain.VoidGrant{GrantID: op.ID, Reason: op.Reason})
	case OpChangeExpiry:
		res, err = e.ChangeGrantExpiry(ctx, tenantID, op.Line, domain.ChangeGrantExpiry{GrantID: op.ID, ExpiresAt: op.ExpiresAt})
	case OpReverse:
		res, err = e.ReverseUsage(ctx, tenantID, domain.ReverseUsage{UsageID: op.ID, Reason: op.Reason})
	case OpSweep:
		err = e.Sweep(ctx)
	default:
		return nil, fmt.Errorf("the driver cannot run %s", op.Kind)
	}
	if err != nil {
		if retryable(err) {
			return nil, err
		}
		return []Answer{refused(reasonOf(err))}, nil
	}
	return []Answer{answerOf(op.Kind, op.ID, res)}, nil
}

// reasonOf maps an engine error to the model's refusal reason.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, domain.ErrInsufficientCredits):
		return ReasonInsufficient
	case errors.Is(err, domain.ErrReservationNotFound), errors.Is(err, domain.ErrGrantNotFound),
		errors.Is(err, domain.ErrUsageNotFound), errors.Is(err, domain.ErrSubscriptionNotFound):
		return ReasonNotFound
	case errors.Is(err, domain.ErrReservationClosed):
		return ReasonClosed
	case errors.Is(err, domain.ErrIdempotencyConflict):
		return ReasonConflict
	case errors.Is(err, domain.ErrCaptureExceedsHold):
		return ReasonExceedsHold
	case errors.Is(err, domain.ErrSubscriptionCanceled):
		return ReasonCanceled
	case errors.Is(err, domain.ErrGrantExpired):
		return ReasonExpired
	}
	if fields := domain.FieldErrors(err); len(fields) > 0 {
		locations := make([]string, len(fields))
		for i, f := range fields {
			locations[i] = f.Location
		}
		slices.Sort(locations)
		return invalid(strings.Join(slices.Compact(locations), ","))
	}
	return "error: " + err.Error()
}

// answerOf reads a Result the way the model answers: the outcome, and for a
// fresh write the amounts its events moved.
func answerOf(kind OpKind, id string, res commands.Result) Answer {
	if res.Duplicate {
		a := Answer{Status: StatusDuplicate}
		if res.Status == commands.StatusRejected {
			a.Reason = res.Reason
		}
		return a
	}
	a := Answer{Status: StatusAccepted, Detailed: true}
	if res.Status == commands.StatusRejected {
		a.Status, a.Reason = StatusRefused, res.Reason
	}
	switch kind {
	case OpAutoReload, OpOverdraft, OpChangeExpiry:
		// Settings answer no amounts.
		a.Detailed = false
		return a
	}
	trigger := map[OpKind]string{OpUsage: "usage:", OpReserve: "reservation:"}[kind] + id
	voided := false
	for _, event := range res.Events {
		switch e := event.(type) {
		case domain.CreditsGranted:
			if e.Source == domain.SourceAutoReload && e.GrantID == autoReloadPrefix+trigger {
				a.Reload = e.Amount
			}
		case domain.UsageDebited:
			if kind == OpUsage && e.UsageID == id {
				a.Amount, a.Parts = e.Amount, burns(e.Burned)
			}
		case domain.CreditsReserved:
			if e.ReservationID == id {
				a.Amount, a.ExpiresAt = e.Amount, e.ExpiresAt
				a.Pins = burns(slices.DeleteFunc(slices.Clone(e.Pinned), func(b domain.Burn) bool { return b.GrantID == "" }))
			}
		case domain.ReservationCaptured:
			if e.ReservationID == id {
				a.Amount, a.Released, a.Parts = e.Amount, e.Released, burns(e.Burned)
			}
		case domain.CreditsAdjusted:
			if e.AdjustmentID == id {
				a.Parts = burns(e.Burned)
			}
		case domain.GrantVoided:
			if kind == OpVoid && e.GrantID == id && !voided {
				a.Amount, voided = e.Amount, true
			}
		case domain.UsageReversed:
			if e.UsageID == id {
				a.Parts = burns(e.Returned)
			}
		}
	}
	return a
}

func burns(list []domain.Burn) map[string]decimal.Decimal {
	out := map[string]decimal.Decimal{}
	for _, b := range list {
		out[b.GrantID] = out[b.GrantID].Add(b.Amount)
	}
	return out
}

// State reads a line's state from the engine's write model.
func (d *Driver) State(tenant int, line string) (LineState, error) {
	ctx, cancel := context.WithTimeout(d.ctx, opTimeout)
	defer cancel()
	l, _, err := d.engine.Line(ctx, d.tenantIDs[tenant], line)
	if err != nil {
		return LineState{}, err
	}
	return engineState(l), nil
}

// engineState converts the engine's line to the compared state.
func engineState(l *domain.Line) LineState {
	s := LineState{
		Granted: l.Granted, Used: l.Used, Expired: l.Expired, Adjusted: l.Adjusted, Reserved: l.Reserved,
		Balance: l.Balance(), Available: l.Available(), Unallocated: l.Unallocated, Overdraft: l.OverdraftLimit,
		Grants: map[string]GrantState{}, Holds: map[string]decimal.Decimal{},
	}
	for _, g := range l.Grants {
		if g.Remaining.IsPositive() {
			s.Grants[g.GrantID] = GrantState{Amount: g.Original, Remaining: g.Remaining}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(l.Reservations)) {
		s.Holds[id] = l.Reservations[id].Amount
	}
	return s
}

// sweepSupported: the engine runs due work on demand (Engine.Sweep).
// A generator step (OpSweep) calls it and applies Model.RunDue at the same
// instant: both must then agree on every line.
const sweepSupported = true
