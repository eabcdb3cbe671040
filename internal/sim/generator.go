package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Features the generator can leave out (CREDITD_SIM_WITHOUT=a,b): a
// diagnostic aid to look past a failure that every seed meets first.
const (
	FeatureExpiry       = "expiry"       // grants with expires_at, expiry changes
	FeatureFuture       = "future"       // grants effective later
	FeatureReservation  = "reservation"  // reserve, capture, release
	FeatureSubscription = "subscription" // subscribe, cancel
	FeatureAutoReload   = "autoreload"
	FeatureOverdraft    = "overdraft"
	FeatureAdjust       = "adjust"
	FeatureVoid         = "void"
	FeatureReverse      = "reverse"
	FeatureRepeat       = "repeat" // exact duplicates and same id with another body
	FeatureLate         = "late"   // usage with occurred_at in the past or future
	FeatureInvalid      = "invalid"
	FeatureHuge         = "huge" // amounts near the totals limit
	FeatureFaults       = "faults"
)

// Features lists every feature, for the knob's documentation and checks.
var Features = []string{FeatureExpiry, FeatureFuture, FeatureReservation, FeatureSubscription, FeatureAutoReload,
	FeatureOverdraft, FeatureAdjust, FeatureVoid, FeatureReverse, FeatureRepeat, FeatureLate, FeatureInvalid, FeatureHuge, FeatureFaults}

// Layout is a seed's tenants and their lines.
type Layout struct {
	// Lines[t] are tenant t's credit types.
	Lines [][]string
}

// otherLine is a credit type the tenant holds nothing on: requests naming it
// are about the wrong line.
const otherLine = "gpu"

// huge is an amount near the totals limit: two of them pass it.
var huge = decimal.New(6, 11)

// Generator produces a seed's random operations. It reads the model to pick
// meaningful targets (open holds, grants with credits left), which keeps
// the sequence a function of the seed alone.
type Generator struct {
	rng     *rand.Rand
	model   *Model
	layout  Layout
	without map[string]bool
	ids     int
	// sent are the idempotent ops sent so far, for repeats.
	sent  []Op
	huges int
}

// NewGenerator returns the generator of a seed's operations.
func NewGenerator(rng *rand.Rand, model *Model, layout Layout, without map[string]bool) *Generator {
	return &Generator{rng: rng, model: model, layout: layout, without: without}
}

// NewLayout draws 2 or 3 tenants with 1 or 2 lines each.
func NewLayout(rng *rand.Rand) Layout {
	var l Layout
	for range 2 + rng.IntN(2) {
		lines := []string{defaultLine}
		if rng.IntN(2) == 0 {
			lines = append(lines, otherLine)
		}
		l.Lines = append(l.Lines, lines)
	}
	return l
}

// StartTime draws the seed's first instant: any microsecond of 2026, often
// near a month's end so that subscriptions meet clamped months.
func StartTime(rng *rand.Rand) time.Time {
	day := rng.IntN(365)
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, day)
	if rng.IntN(4) == 0 {
		t = time.Date(2026, time.Month(1+rng.IntN(12)), 28+rng.IntN(4), 0, 0, 0, 0, time.UTC)
	}
	return t.Add(time.Duration(rng.Int64N(int64(24*time.Hour/time.Microsecond))) * time.Microsecond)
}

type weighted struct {
	kind    OpKind
	weight  int
	feature string
}

// weights of each step kind, per thousand before the left-out features.
var weights = []weighted{
	{OpTick, 150, ""},
	{OpGrant, 110, ""},
	{OpUsage, 190, ""},
	{OpReserve, 80, FeatureReservation},
	{OpCapture, 70, FeatureReservation},
	{OpRelease, 30, FeatureReservation},
	{OpAdjust, 45, FeatureAdjust},
	{OpAutoReload, 30, FeatureAutoReload},
	{OpOverdraft, 25, FeatureOverdraft},
	{OpSubscribe, 30, FeatureSubscription},
	{OpCancel, 15, FeatureSubscription},
	{OpVoid, 35, FeatureVoid},
	{OpChangeExpiry, 35, FeatureExpiry},
	{OpReverse, 35, FeatureReverse},
	{"repeat", 80, FeatureRepeat},
	{"huge", 1, FeatureHuge},
	{OpSweep, sweepWeight(), ""},
}

func sweepWeight() int {
	if sweepSupported {
		return 20
	}
	return 0
}

func (g *Generator) on(feature string) bool { return feature == "" || !g.without[feature] }

// Next returns the next op at now.
func (g *Generator) Next(now time.Time) Op {
	total := 0
	for _, w := range weights {
		if g.on(w.feature) {
			total += w.weight
		}
	}
	pick := g.rng.IntN(total)
	var kind OpKind
	for _, w := range weights {
		if !g.on(w.feature) {
			continue
		}
		if pick < w.weight {
			kind = w.kind
			break
		}
		pick -= w.weight
	}
	op := g.make(kind, now)
	if op.idempotent() {
		g.sent = append(g.sent, op)
	}
	return op
}

func (g *Generator) make(kind OpKind, now time.Time) Op {
	tenant := g.rng.IntN(len(g.layout.Lines))
	switch kind {
	case OpTick:
		return g.tick(now)
	case OpSweep:
		return Op{Kind: OpSweep}
	case OpGrant:
		return g.grant(tenant, now)
	case OpUsage:
		return g.usage(tenant, now)
	case OpReserve:
		return g.reserve(tenant)
	case OpCapture:
		return g.capture(tenant)
	case OpRelease:
		return g.release(tenant)
	case OpAdjust:
		return g.adjust(tenant)
	case OpAutoReload:
		return g.autoReload(tenant)
	case OpOverdraft:
		return g.overdraft(tenant)
	case OpSubscribe:
		return g.subscribe(tenant, now)
	case OpCancel:
		return g.cancel(tenant)
	case OpVoid:
		return g.void(tenant, now)
	case OpChangeExpiry:
		return g.changeExpiry(tenant, now)
	case OpReverse:
		return g.reverse(tenant)
	case "repeat":
		if op, ok := g.repeat(); ok {
			return op
		}
		return g.usage(tenant, now)
	case "huge":
		if g.huges < 3 {
			g.huges++
			op := g.grant(tenant, now)
			op.Amount, op.ExpiresAt, op.EffectiveAt = huge, nil, time.Time{}
			if g.rng.IntN(3) == 0 {
				return Op{Kind: OpAdjust, Tenant: tenant, Line: op.Line, ID: g.id("a"), Amount: huge.Neg(), Reason: "huge correction"}
			}
			return op
		}
		return g.grant(tenant, now)
	}
	panic("unknown kind " + string(kind))
}

func (g *Generator) id(prefix string) string {
	g.ids++
	return fmt.Sprintf("%s%d", prefix, g.ids)
}

func (g *Generator) line(tenant int) string {
	lines := g.layout.Lines[tenant]
	return lines[g.rng.IntN(len(lines))]
}

// namedLine is how a request names a target's line: mostly right, now and
// then left out (the engine finds it) or wrong.
func (g *Generator) namedLine(line string) string {
	switch r := g.rng.IntN(10); {
	case r == 0:
		return ""
	case r == 1:
		for _, other := range []string{defaultLine, otherLine} {
			if other != line {
				return other
			}
		}
	}
	return line
}

// amount draws 0.01 to max with up to two decimals; small, so lines run out.
func (g *Generator) amount(max int64) decimal.Decimal {
	if g.rng.IntN(3) == 0 {
		return decimal.NewFromInt(g.rng.Int64N(max) + 1)
	}
	return decimal.New(g.rng.Int64N(max*100)+1, -2)
}

// duration draws a whole number of microseconds in [lo, hi].
func (g *Generator) duration(lo, hi time.Duration) time.Duration {
	span := int64((hi - lo) / time.Microsecond)
	return lo + time.Duration(g.rng.Int64N(span+1))*time.Microsecond
}

func (g *Generator) tick(now time.Time) Op {
	bounds := g.model.Boundaries(now)
	if len(bounds) > 0 && g.rng.IntN(10) < 6 {
		i := g.rng.IntN(min(3, len(bounds)))
		if g.rng.IntN(3) == 0 {
			i = g.rng.IntN(len(bounds))
		}
		at := bounds[i].Add(time.Duration(g.rng.IntN(3)-1) * time.Microsecond)
		if at.After(now) {
			return Op{Kind: OpTick, At: at}
		}
	}
	var d time.Duration
	switch g.rng.IntN(5) {
	case 0:
		d = g.duration(time.Microsecond, time.Minute)
	case 1:
		d = g.duration(time.Minute, time.Hour)
	case 2:
		d = g.duration(time.Hour, 2*24*time.Hour)
	case 3:
		d = g.duration(2*24*time.Hour, 20*24*time.Hour)
	default:
		d = time.Microsecond
	}
	return Op{Kind: OpTick, At: now.Add(d)}
}

var grantSources = []string{"purchase", "promotional", "manual", "subscription"}

func (g *Generator) grant(tenant int, now time.Time) Op {
	op := Op{Kind: OpGrant, Tenant: tenant, Line: g.line(tenant), ID: g.id("g"), Amount: g.amount(200),
		Source: grantSources[g.rng.IntN(len(grantSources))], Priority: g.rng.IntN(3)}
	if g.on(FeatureFuture) && g.rng.IntN(5) == 0 {
		op.EffectiveAt = now.Add(g.duration(time.Microsecond, 10*24*time.Hour))
	} else if g.rng.IntN(8) == 0 {
		op.EffectiveAt = now.Add(-g.duration(time.Microsecond, 10*24*time.Hour))
	}
	if g.on(FeatureExpiry) && g.rng.IntN(2) == 0 {
		from := now
		if op.EffectiveAt.After(now) {
			from = op.EffectiveAt
		}
		var expires time.Time
		switch g.rng.IntN(4) {
		case 0:
			expires = from.Add(g.duration(time.Microsecond, time.Hour))
		case 1:
			expires = from.Add(g.duration(time.Hour, 3*24*time.Hour))
		default:
			expires = from.Add(g.duration(3*24*time.Hour, 45*24*time.Hour))
		}
		op.ExpiresAt = &expires
	}
	if g.on(FeatureInvalid) && g.rng.IntN(20) == 0 {
		switch g.rng.IntN(3) {
		case 0: // expires at or before now
			past := now.Add(-g.duration(0, 2*time.Hour))
			op.ExpiresAt, op.EffectiveAt = &past, time.Time{}
		case 1: // only the engine may grant auto_reload credits
			op.Source = sourceAutoReload
		case 2: // expires before it takes effect
			op.EffectiveAt = now.Add(time.Hour)
			before := op.EffectiveAt.Add(-g.duration(0, 30*time.Minute))
			op.ExpiresAt = &before
		}
	}
	return op
}

func (g *Generator) usage(tenant int, now time.Time) Op {
	op := Op{Kind: OpUsage, Tenant: tenant}
	for range 1 + g.rng.IntN(3) {
		u := UsageOp{ID: g.id("u"), Line: g.line(tenant)}
		switch r := g.rng.IntN(10); {
		case r == 0:
			u.Amount = decimal.Zero
		case r < 7:
			u.Amount = g.amount(30)
		default:
			u.Amount = g.amount(120)
		}
		if g.on(FeatureLate) {
			switch r := g.rng.IntN(20); {
			case r < 5:
				u.OccurredAt = now.Add(-g.duration(time.Microsecond, 72*time.Hour))
			case r == 5:
				u.OccurredAt = now.Add(g.duration(0, futureSkewMax))
			case r == 6:
				u.OccurredAt = now.Add(futureSkewMax)
			case r == 7:
				u.OccurredAt = now.Add(futureSkewMax + time.Microsecond)
			case r == 8:
				u.OccurredAt = now.Add(g.duration(futureSkewMax, 48*time.Hour))
			}
		}
		op.Usage = append(op.Usage, u)
	}
	return op
}

var holdTTLs = []time.Duration{0, time.Second, 30 * time.Second, 2 * time.Minute, 5 * time.Minute, time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}

func (g *Generator) reserve(tenant int) Op {
	ttl := holdTTLs[g.rng.IntN(len(holdTTLs))]
	if g.rng.IntN(4) == 0 {
		ttl = g.duration(time.Microsecond, 3*time.Hour)
	}
	return Op{Kind: OpReserve, Tenant: tenant, Line: g.line(tenant), ID: g.id("r"), Amount: g.amount(80), TTL: ttl}
}

// holdTarget picks a hold of the tenant: open ones most often, else any
// reservation id, else an unknown one.
func (g *Generator) holdTarget(tenant int) (HoldInfo, bool) {
	snap := g.model.Snapshot(tenant)
	var open []HoldInfo
	for _, h := range snap.Holds {
		if h.Open {
			open = append(open, h)
		}
	}
	switch {
	case len(open) > 0 && g.rng.IntN(10) < 8:
		return open[g.rng.IntN(len(open))], true
	case len(snap.Holds) > 0 && g.rng.IntN(2) == 0:
		return snap.Holds[g.rng.IntN(len(snap.Holds))], true
	}
	// A refused reservation or an id never used.
	for _, op := range slices.Backward(g.sent) {
		if op.Kind == OpReserve && op.Tenant == tenant && g.rng.IntN(3) == 0 {
			return HoldInfo{ID: op.ID, Line: op.Line}, false
		}
	}
	return HoldInfo{ID: g.id("r"), Line: g.line(tenant)}, false
}

func (g *Generator) capture(tenant int) Op {
	h, known := g.holdTarget(tenant)
	op := Op{Kind: OpCapture, Tenant: tenant, Line: g.namedLine(h.Line), ID: h.ID}
	switch r := g.rng.IntN(20); {
	case r < 8:
	case r < 18 && known:
		// A part: 0 to all of the hold, in hundredths.
		hundredths := h.Amount.Shift(2).IntPart()
		amount := decimal.New(g.rng.Int64N(hundredths+1), -2)
		op.CaptureAmount = &amount
	default:
		amount := h.Amount.Add(g.amount(10))
		op.CaptureAmount = &amount
	}
	return op
}

func (g *Generator) release(tenant int) Op {
	h, _ := g.holdTarget(tenant)
	return Op{Kind: OpRelease, Tenant: tenant, Line: g.namedLine(h.Line), ID: h.ID}
}

func (g *Generator) adjust(tenant int) Op {
	op := Op{Kind: OpAdjust, Tenant: tenant, Line: g.line(tenant), ID: g.id("a"), Amount: g.amount(100), Reason: "correction"}
	if g.rng.IntN(2) == 0 {
		op.Amount = op.Amount.Neg()
	}
	if g.on(FeatureInvalid) && g.rng.IntN(30) == 0 {
		op.Amount = decimal.Zero
	}
	return op
}

// autoReload sets another setting than the line has: re-sending the same
// one stores nothing, and whether it re-arms is not for the rules to say.
func (g *Generator) autoReload(tenant int) Op {
	line := g.line(tenant)
	op := Op{Kind: OpAutoReload, Tenant: tenant, Line: line, Enabled: g.rng.IntN(4) > 0, Threshold: g.amount(50), Amount: g.amount(100)}
	if g.rng.IntN(5) == 0 {
		op.Threshold = decimal.Zero
	}
	if !op.Enabled && g.rng.IntN(2) == 0 {
		op.Threshold, op.Amount = decimal.Zero, decimal.Zero
	}
	cur := g.model.Snapshot(tenant).Settings[line]
	if cur.ReloadEnabled == op.Enabled && cur.ReloadThreshold.Equal(op.Threshold) && cur.ReloadAmount.Equal(op.Amount) {
		op.Amount = op.Amount.Add(decimal.NewFromInt(1))
	}
	return op
}

func (g *Generator) overdraft(tenant int) Op {
	line := g.line(tenant)
	limit := decimal.Zero
	if g.rng.IntN(4) > 0 {
		limit = g.amount(150)
	}
	if g.model.Snapshot(tenant).Settings[line].Overdraft.Equal(limit) {
		limit = limit.Add(decimal.NewFromInt(5))
	}
	return Op{Kind: OpOverdraft, Tenant: tenant, Line: line, Amount: limit}
}

func (g *Generator) subscribe(tenant int, now time.Time) Op {
	op := Op{Kind: OpSubscribe, Tenant: tenant, Line: g.line(tenant), ID: g.id("s"), Amount: g.amount(150), Rollover: g.rng.IntN(10) < 3}
	switch g.rng.IntN(7) {
	case 0, 1:
	case 2, 3:
		op.StartsAt = now.Add(-g.duration(time.Microsecond, 75*24*time.Hour))
	case 4:
		op.StartsAt = now.Add(g.duration(time.Microsecond, 20*24*time.Hour))
	case 5:
		// The end of a month, so that later periods clamp.
		month := now.AddDate(0, g.rng.IntN(3)-2, 0)
		op.StartsAt = time.Date(month.Year(), month.Month(), 28+g.rng.IntN(4), now.Hour(), now.Minute(), now.Second(), now.Nanosecond(), time.UTC)
	case 6:
		// A period boundary exactly now: started one or more months ago to
		// the microsecond.
		op.StartsAt = now.AddDate(0, -1-g.rng.IntN(2), 0)
	}
	return op
}

func (g *Generator) cancel(tenant int) Op {
	subs := g.model.Snapshot(tenant).Subscriptions
	if len(subs) == 0 || g.rng.IntN(10) == 0 {
		return Op{Kind: OpCancel, Tenant: tenant, Line: g.line(tenant), ID: g.id("s")}
	}
	s := subs[g.rng.IntN(len(subs))]
	return Op{Kind: OpCancel, Tenant: tenant, Line: g.namedLine(s.Line), ID: s.ID}
}

// grantTarget picks a grant matching keep, or an unknown id.
func (g *Generator) grantTarget(tenant int, keep func(GrantInfo) bool) GrantInfo {
	var fit []GrantInfo
	for _, gi := range g.model.Snapshot(tenant).Grants {
		if keep(gi) {
			fit = append(fit, gi)
		}
	}
	if len(fit) == 0 || g.rng.IntN(10) == 0 {
		return GrantInfo{ID: g.id("g"), Line: g.line(tenant)}
	}
	return fit[g.rng.IntN(len(fit))]
}

var voidReasons = []string{"refund", "fraud"}

// void targets grants that are not expired at now: a void of a grant whose
// pinned part is left after its expiry is a case the rules do not decide
// (expired or voided, when the hold lets go?).
func (g *Generator) void(tenant int, now time.Time) Op {
	target := g.grantTarget(tenant, func(gi GrantInfo) bool {
		return !gi.Voided && (gi.ExpiresAt == nil || gi.ExpiresAt.After(now)) && (gi.Remaining.IsPositive() || g.rng.IntN(4) == 0)
	})
	return Op{Kind: OpVoid, Tenant: tenant, Line: g.namedLine(target.Line), ID: target.ID, Reason: voidReasons[g.rng.IntN(2)]}
}

// changeExpiry targets grants with credits left, or expired ones; not voided
// or used-up grants, whose expiry change the rules leave open.
func (g *Generator) changeExpiry(tenant int, now time.Time) Op {
	target := g.grantTarget(tenant, func(gi GrantInfo) bool {
		expired := gi.ExpiresAt != nil && !gi.ExpiresAt.After(now)
		return !gi.Voided && (gi.Remaining.IsPositive() || expired)
	})
	op := Op{Kind: OpChangeExpiry, Tenant: tenant, Line: g.namedLine(target.Line), ID: target.ID}
	switch g.rng.IntN(8) {
	case 0, 1:
		// never expires
	case 2, 3, 4:
		later := now.Add(g.duration(time.Microsecond, 30*24*time.Hour))
		op.ExpiresAt = &later
	case 5:
		soon := now.Add(g.duration(time.Microsecond, time.Hour))
		op.ExpiresAt = &soon
	case 6:
		at := now
		op.ExpiresAt = &at
	default:
		past := now.Add(-g.duration(time.Microsecond, 24*time.Hour))
		op.ExpiresAt = &past
	}
	return op
}

var reverseReasons = []string{"refund", "duplicate charge"}

func (g *Generator) reverse(tenant int) Op {
	usages := g.model.Snapshot(tenant).Usages
	op := Op{Kind: OpReverse, Tenant: tenant, Reason: reverseReasons[g.rng.IntN(2)]}
	switch {
	case len(usages) > 0 && g.rng.IntN(10) < 8:
		op.ID = usages[g.rng.IntN(len(usages))]
	default:
		// A refused usage, or an id never used.
		op.ID = g.id("u")
		for _, sent := range slices.Backward(g.sent) {
			if sent.Kind == OpUsage && sent.Tenant == tenant && g.rng.IntN(3) == 0 {
				op.ID = sent.Usage[0].ID
				break
			}
		}
	}
	return op
}

// repeat re-sends an earlier op: as it was (a duplicate), or with the same
// id and another body.
func (g *Generator) repeat() (Op, bool) {
	if len(g.sent) == 0 {
		return Op{}, false
	}
	// Recent ops more often: retries come soon after the original.
	i := len(g.sent) - 1 - g.rng.IntN(min(len(g.sent), 12))
	if g.rng.IntN(3) == 0 {
		i = g.rng.IntN(len(g.sent))
	}
	op := g.sent[i]
	op.Usage = slices.Clone(op.Usage)
	if g.rng.IntN(5) < 3 {
		return op, true
	}
	one := decimal.NewFromInt(1)
	switch op.Kind {
	case OpGrant:
		if g.rng.IntN(3) == 0 {
			op.Line = g.otherLineOf(op.Line)
		} else {
			op.Amount = op.Amount.Add(one)
		}
	case OpUsage:
		u := op.Usage[g.rng.IntN(len(op.Usage))]
		u.Amount = u.Amount.Add(decimal.New(1, -2))
		op.Usage = []UsageOp{u}
	case OpReserve:
		op.Amount = op.Amount.Add(one)
	case OpCapture:
		if op.CaptureAmount == nil {
			zero := decimal.Zero
			op.CaptureAmount = &zero
		} else {
			op.CaptureAmount = nil
		}
	case OpAdjust:
		op.Amount = op.Amount.Add(one)
		if op.Amount.IsZero() {
			op.Amount = one
		}
	case OpSubscribe:
		op.Amount = op.Amount.Add(one)
	case OpVoid, OpReverse:
		op.Reason += " (again)"
	case OpRelease, OpCancel:
		op.Line = g.otherLineOf(op.Line)
	}
	return op, true
}

func (g *Generator) otherLineOf(line string) string {
	if line == otherLine {
		return defaultLine
	}
	return otherLine
}

// ParseWithout reads CREDITD_SIM_WITHOUT's list of features to leave out.
func ParseWithout(list string) (map[string]bool, error) {
	without := map[string]bool{}
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !slices.Contains(Features, f) {
			return nil, fmt.Errorf("unknown feature %q (known: %s)", f, strings.Join(Features, ","))
		}
		without[f] = true
	}
	return without, nil
}
