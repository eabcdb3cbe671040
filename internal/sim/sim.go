package sim

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Bounds of one seed.
const (
	stepsMin    = 120
	stepsSpread = 80
	// recentSteps is how much history a failure shows.
	recentSteps = 15
	// allLinesEvery: every so many steps, and after a restart, every line
	// is compared, not only the lines the step wrote on.
	allLinesEvery = 25
)

// Streams of a seed's randomness: ops and faults draw from separate PCG
// streams, so a fault never shifts the ops.
const (
	streamOps    = 0x0b5
	streamFaults = 0xfa1
)

// Config is one seed's run.
type Config struct {
	Seed uint64
	// Without lists features the generator leaves out.
	Without map[string]bool
	// Steps overrides the seed's step count when > 0.
	Steps int
	// KeepGoing plays every step after a mismatch (the first one is still
	// the answer): to measure the budget on an engine known to disagree.
	KeepGoing bool
	// Trace, when set, receives every step with both answers.
	Trace io.Writer

	// corruptAnswer and corruptState alter what the engine answered or
	// shows, for the tests that prove a wrong engine fails the seed.
	corruptAnswer func(op Op, answers []Answer)
	corruptState  func(tenant int, line string, state *LineState)
}

// Failure is a seed's first disagreement, with what reproduces it.
type Failure struct {
	Seed   uint64
	Step   int
	At     time.Time
	Op     string
	Check  string // answer, state, invariant, live projection, rebuild, verify, infrastructure
	Detail string
	Recent []string
	Faults string
	Repro  string
}

func (f *Failure) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %s mismatch at step %d (clock %s)\n", f.Seed, f.Check, f.Step, stamp(f.At))
	fmt.Fprintf(&b, "  op: %s\n", f.Op)
	for _, line := range strings.Split(f.Detail, "\n") {
		fmt.Fprintf(&b, "  %s\n", line)
	}
	if f.Faults != "" {
		fmt.Fprintf(&b, "  faults during the op: %s\n", f.Faults)
	}
	b.WriteString("  recent steps:\n")
	for _, r := range f.Recent {
		fmt.Fprintf(&b, "    %s\n", r)
	}
	fmt.Fprintf(&b, "  reproduce: %s", f.Repro)
	return b.String()
}

// Run plays one seed and returns its first failure, nil if the engine
// agreed with the model throughout. dir, new, holds the seed's log and
// read-model databases.
func Run(ctx context.Context, dir string, cfg Config) *Failure {
	r := &run{cfg: cfg, fail: &Failure{Seed: cfg.Seed, Repro: Repro(cfg)}}
	if err := r.play(ctx, dir); err != nil {
		if f, ok := err.(*Failure); ok {
			return f
		}
		r.fail.Check, r.fail.Detail = "infrastructure", err.Error()
		return r.fail
	}
	return nil
}

// Repro is the command that runs exactly cfg's seed again.
func Repro(cfg Config) string {
	env := fmt.Sprintf("CREDITD_SIM_SEED=%d", cfg.Seed)
	if len(cfg.Without) > 0 {
		var list []string
		for _, f := range Features {
			if cfg.Without[f] {
				list = append(list, f)
			}
		}
		env += " CREDITD_SIM_WITHOUT=" + strings.Join(list, ",")
	}
	return env + " go test ./internal/sim -run TestSimulation"
}

type run struct {
	cfg    Config
	fail   *Failure
	recent []string
	first  *Failure // the first mismatch, when going on after it
}

// mismatch stops the seed at f, or notes it and goes on (KeepGoing).
func (r *run) mismatch(f *Failure) error {
	if r.first == nil {
		r.first = f
	}
	if r.cfg.KeepGoing {
		return nil
	}
	return f
}

func (r *run) failure(check string, step int, at time.Time, op Op, detail string) *Failure {
	f := *r.fail
	f.Check, f.Step, f.At, f.Op, f.Detail, f.Recent = check, step, at, op.String(), detail, r.recent
	return &f
}

func (r *run) note(step int, op Op) {
	r.recent = append(r.recent, fmt.Sprintf("%3d %s", step, op))
	if len(r.recent) > recentSteps {
		r.recent = r.recent[1:]
	}
}

func (r *run) play(ctx context.Context, dir string) error {
	server, err := StartServer(ctx, filepath.Join(dir, "jetstream"))
	if err != nil {
		return err
	}
	defer server.Close()
	rng := rand.New(rand.NewPCG(r.cfg.Seed, streamOps))
	faultRNG := rand.New(rand.NewPCG(r.cfg.Seed, streamFaults))
	layout := NewLayout(rng)
	clock := NewClock(StartTime(rng))
	steps := stepsMin + rng.IntN(stepsSpread)
	if r.cfg.Steps > 0 {
		steps = r.cfg.Steps
	}
	liveEvery := 10 + rng.IntN(30)

	var faults *FaultStore
	driver, err := NewDriver(ctx, server, clock, func(other func(int) error) *FaultStore {
		faults = NewFaultStore(server.Store, faultRNG, other)
		return faults
	}, len(layout.Lines))
	if err != nil {
		return err
	}
	defer driver.Close()
	faults.Enable(!r.cfg.Without[FeatureFaults])
	model := NewModel(driver.Tenants())
	gen := NewGenerator(rng, model, layout, r.cfg.Without)
	live, err := openProjection(ctx, filepath.Join(dir, "live.db"))
	if err != nil {
		return err
	}
	defer live.close()

	// Every line a request may name.
	var allLines []lineKey
	for tenant := range driver.Tenants() {
		allLines = append(allLines, lineKey{tenant, defaultLine}, lineKey{tenant, otherLine})
	}
	restarts := 0

	for step := 1; step <= steps; step++ {
		now := clock.Now()
		op := gen.Next(now)
		r.note(step, op)
		// The lines this step may change: its tenant's, and the second
		// writer's if it wrote.
		var touched []int
		var floors map[lineKey]decimal.Decimal
		switch op.Kind {
		case OpTick:
			clock.Set(op.At)
			if r.cfg.Trace != nil {
				fmt.Fprintf(r.cfg.Trace, "%3d %s\n", step, op)
			}
		case OpSweep:
			model.RunDue(now)
			if _, _, err := driver.Run(op); err != nil {
				return r.failure("infrastructure", step, now, op, err.Error())
			}
			// A sweep's commit can meet an injected second writer too.
			if err := r.otherWrites(step, now, model, driver, &touched); err != nil {
				return err
			}
		default:
			faultsBefore := driver.Faults()
			floors = r.floors(op, now, model)
			want := model.Apply(op, now)
			got, retried, err := driver.Run(op)
			if err != nil {
				return r.failure("infrastructure", step, now, op, err.Error())
			}
			touched = append(touched, op.Tenant)
			if r.cfg.corruptAnswer != nil {
				r.cfg.corruptAnswer(op, got)
			}
			if r.cfg.Trace != nil {
				fmt.Fprintf(r.cfg.Trace, "%3d %s %s\n      model %v\n      engine %v (retried %t)\n", step, stamp(now), op, want, got, retried)
			}
			if err := r.otherWrites(step, now, model, driver, &touched); err != nil {
				return err
			}
			if len(got) != len(want) {
				return r.failure("answer", step, now, op, fmt.Sprintf("model gave %d answers, engine %d", len(want), len(got)))
			}
			for i := range want {
				if diff := compareAnswer(op.Kind, want[i], got[i], retried); diff != "" {
					f := r.failure("answer", step, now, op, answerLabel(op, i)+diff)
					f.Faults = driver.FaultLog(faultsBefore)
					if err := r.mismatch(f); err != nil {
						return err
					}
					break
				}
			}
		}
		lines := allLines
		if step%allLinesEvery != 0 && driver.Restarts() == restarts && op.Kind != OpSweep {
			lines = nil
			for _, k := range allLines {
				if slices.Contains(touched, k.tenant) {
					lines = append(lines, k)
				}
			}
		}
		restarts = driver.Restarts()
		if err := r.checkLines(step, now, op, model, driver, lines, floors); err != nil {
			return err
		}
		if step%liveEvery == 0 {
			if err := live.catchUp(ctx, server.Store); err != nil {
				return fmt.Errorf("live projection: %w", err)
			}
			if err := compareReadModel(ctx, "live projection", live.db.Reader(), model, driver.tenantIDs, now); err != nil {
				if err := r.mismatch(r.failure("live projection", step, now, op, err.Error())); err != nil {
					return err
				}
			}
		}
	}
	if err := r.checkLines(steps, clock.Now(), Op{Kind: OpTick, At: clock.Now()}, model, driver, allLines, nil); err != nil {
		return err
	}
	if r.cfg.Trace != nil {
		fmt.Fprintf(r.cfg.Trace, "seed %d: %d steps, %d faults injected, %d restarts\n", r.cfg.Seed, steps, driver.Faults(), driver.Restarts())
	}
	if err := r.finish(ctx, server, dir, clock.Now(), model, driver, live, steps); err != nil {
		return err
	}
	if r.first != nil {
		return r.first
	}
	return nil
}

func answerLabel(op Op, i int) string {
	if op.Kind == OpUsage {
		return fmt.Sprintf("usage %s: ", op.Usage[i].ID)
	}
	return ""
}

// floors are, for each line op writes on, the lowest available the write
// may leave: min(−overdraft, available before it), where before is the
// committed line or the line with its due work applied (a refused write
// may leave either). Only a negative adjustment, an overdraft setting and
// a void (a correction) may go below; they get no floor.
func (r *run) floors(op Op, now time.Time, model *Model) map[lineKey]decimal.Decimal {
	switch {
	case op.Kind == OpAdjust && op.Amount.IsNegative(), op.Kind == OpOverdraft, op.Kind == OpVoid:
		return nil
	}
	floors := map[lineKey]decimal.Decimal{}
	for _, line := range []string{defaultLine, otherLine} {
		due := model.StateAfterDue(op.Tenant, line, now)
		committed := model.State(op.Tenant, line)
		floors[lineKey{op.Tenant, line}] = decimal.Min(due.Overdraft.Neg(), due.Available, committed.Available)
	}
	return floors
}

// checkLines compares every line of the engine with the model after a step
// and checks the invariants on both. The engine's line must equal the
// model's committed line, or, where something is due at now, the line with
// its due work applied: the rules leave open whether a write refused
// without an event of its own stores the due work before it.
// otherWrites plays the second writer's writes since the last step on the
// model and compares their answers.
func (r *run) otherWrites(step int, now time.Time, model *Model, driver *Driver, touched *[]int) error {
	for _, other := range driver.TakeOtherOps() {
		*touched = append(*touched, other.Op.Tenant)
		if diff := compareAnswer(other.Op.Kind, model.Apply(other.Op, now)[0], other.Answer, false); diff != "" {
			if err := r.mismatch(r.failure("answer", step, now, other.Op, "the second writer's write: "+diff)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *run) checkLines(step int, now time.Time, op Op, model *Model, driver *Driver, lines []lineKey, floors map[lineKey]decimal.Decimal) error {
	for _, k := range lines {
		got, err := driver.State(k.tenant, k.line)
		if err != nil {
			return r.failure("infrastructure", step, now, op, fmt.Sprintf("read tenant %d line %s: %v", k.tenant, k.line, err))
		}
		if r.cfg.corruptState != nil {
			r.cfg.corruptState(k.tenant, k.line, &got)
		}
		committed := model.State(k.tenant, k.line)
		exempt := model.Exempt(k.tenant, k.line)
		if broken := checkInvariants(committed, exempt); len(broken) > 0 {
			// The model is wrong: never go on after that.
			return r.failure("model invariant", step, now, op, fmt.Sprintf("tenant %d line %s: the model breaks: %s", k.tenant, k.line, joinProblems(broken)))
		}
		diffs := diffStates(committed, got)
		if len(diffs) > 0 {
			if len(diffStates(model.StateAfterDue(k.tenant, k.line, now), got)) == 0 {
				diffs = nil
			}
		}
		if len(diffs) > 0 {
			if err := r.mismatch(r.failure("state", step, now, op, fmt.Sprintf("tenant %d line %s, model != engine: %s", k.tenant, k.line, joinProblems(diffs)))); err != nil {
				return err
			}
		}
		broken := checkInvariants(got, exempt)
		if floor, ok := floors[k]; ok && got.Available.LessThan(floor) {
			broken = append(broken, fmt.Sprintf("available %s below min(−overdraft, available before) = %s", got.Available, floor))
		}
		if len(broken) > 0 {
			if err := r.mismatch(r.failure("invariant", step, now, op, fmt.Sprintf("tenant %d line %s: the engine breaks: %s", k.tenant, k.line, joinProblems(broken)))); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish checks the read models at the end: the live projection, a rebuild
// from the log, and the audit's verification of both.
func (r *run) finish(ctx context.Context, server *Server, dir string, now time.Time, model *Model, driver *Driver, live *liveProjection, steps int) error {
	end := Op{Kind: OpTick, At: now}
	if err := live.catchUp(ctx, server.Store); err != nil {
		return fmt.Errorf("live projection: %w", err)
	}
	if err := compareReadModel(ctx, "live projection", live.db.Reader(), model, driver.tenantIDs, now); err != nil {
		if err := r.mismatch(r.failure("live projection", steps, now, end, err.Error())); err != nil {
			return err
		}
	}
	rebuilt, err := rebuild(ctx, server.Store, dir)
	if err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	defer rebuilt.close()
	if err := compareReadModel(ctx, "rebuild", rebuilt.db.Reader(), model, driver.tenantIDs, now); err != nil {
		if err := r.mismatch(r.failure("rebuild", steps, now, end, err.Error())); err != nil {
			return err
		}
	}
	if err := verify(ctx, "live projection", server.Store, live.db.Reader()); err != nil {
		if err := r.mismatch(r.failure("verify", steps, now, end, err.Error())); err != nil {
			return err
		}
	}
	if err := verify(ctx, "rebuild", server.Store, rebuilt.db.Reader()); err != nil {
		return r.mismatch(r.failure("verify", steps, now, end, err.Error()))
	}
	return nil
}
