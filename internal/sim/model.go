package sim

// The reference model: the rules of domain/README.md (summarised in
// doc.go) implemented as plainly as possible. Each line keeps the list of
// its facts, in order; every quantity is recomputed from that list when it
// is needed (viewOf), with nothing cached between writes. It shares no code
// with package domain: it must be able to disagree with it.

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/shopspring/decimal"
)

// Rule constants of domain/README.md.
const (
	futureSkewMax  = 5 * time.Minute
	holdTTLDefault = 5 * time.Minute
	// periodsPerWriteMax only guards the model against a runaway loop; a
	// simulation never lets that many periods pass.
	periodsPerWriteMax = 1000

	sourceAutoReload   = "auto_reload"
	sourceSubscription = "subscription"

	autoReloadPrefix   = "auto_reload:"
	subscriptionPrefix = "subscription:"
)

// zeroUsageReloads: a zero-amount debit is always accepted and does nothing
// else: it spends nothing, so it crosses no auto-reload threshold, even on
// a line armed below it (domain/README.md). True would model the other
// reading, to show the simulation tells them apart.
const zeroUsageReloads = false

// totalsLimit: no line total may pass 10^12 credits.
var totalsLimit = decimal.New(1, 12)

type factKind int

const (
	factGrant        factKind = iota // credits granted (client, auto-reload or subscription)
	factDebit                        // a usage debit; parts are what paid
	factRefusal                      // a recorded refusal (usage or reservation)
	factHold                         // a reservation; parts are its pins
	factCapture                      // a hold captured; parts are what was spent from the pins
	factRelease                      // a hold ended without capture (released, expired)
	factExpire                       // credits of a grant expire
	factVoid                         // credits of a grant are voided; marks it voided
	factExpiryChange                 // a grant's expiry moves
	factAdjust                       // a signed correction; parts say where a negative one took from
	factReverse                      // a debit reversed; parts say where the credits return
	factAutoReload                   // the auto-reload setting
	factOverdraft                    // the overdraft limit
	factSubStart                     // a subscription starts
	factSubCancel                    // a subscription ends at endsAt
)

// part is an amount of one grant, or of the unallocated balance (grant "").
type part struct {
	grant  string
	amount decimal.Decimal
}

// fact is one thing that happened on a line, at an instant.
type fact struct {
	kind   factKind
	at     time.Time
	id     string // grant, usage, reservation, adjustment or subscription id
	amount decimal.Decimal
	parts  []part

	// factGrant
	priority    int
	effectiveAt time.Time
	expiresAt   *time.Time // also a hold's end (factHold) and an expiry change
	source      string
	sub         string // the subscription of an allocation
	period      int

	// factAutoReload
	enabled   bool
	threshold decimal.Decimal

	// factSubStart, factSubCancel
	startsAt    time.Time
	rollover    bool
	firstPeriod int
	endsAt      time.Time
}

// Model is the reference implementation of every tenant's lines and ids.
type Model struct {
	tenants []*tenantModel
}

type tenantModel struct {
	lines map[string]*lineModel
	// ids are the outcomes kept for idempotency: only writes that stored
	// something (accepted, or a recorded refusal) are here.
	ids map[idKey]idRecord
}

type idKey struct {
	kind OpKind
	id   string
}

type idRecord struct {
	body   string
	answer Answer
}

type lineModel struct {
	facts []fact
}

// NewModel returns a model of tenants tenants with no lines.
func NewModel(tenants int) *Model {
	m := &Model{}
	for range tenants {
		m.tenants = append(m.tenants, &tenantModel{lines: map[string]*lineModel{}, ids: map[idKey]idRecord{}})
	}
	return m
}

func (m *Model) line(tenant int, name string) *lineModel {
	t := m.tenants[tenant]
	l := t.lines[name]
	if l == nil {
		l = &lineModel{}
		t.lines[name] = l
	}
	return l
}

// Apply decides op at now and returns its answers: one per usage event for
// OpUsage, one otherwise.
func (m *Model) Apply(op Op, now time.Time) []Answer {
	switch op.Kind {
	case OpUsage:
		answers := make([]Answer, len(op.Usage))
		for i, u := range op.Usage {
			answers[i] = m.usage(op.Tenant, u, now)
		}
		return answers
	case OpGrant:
		return []Answer{m.grant(op, now)}
	case OpReserve:
		return []Answer{m.reserve(op, now)}
	case OpCapture:
		return []Answer{m.capture(op, now)}
	case OpRelease:
		return []Answer{m.release(op, now)}
	case OpAdjust:
		return []Answer{m.adjust(op, now)}
	case OpAutoReload:
		return []Answer{m.configureAutoReload(op, now)}
	case OpOverdraft:
		return []Answer{m.configureOverdraft(op, now)}
	case OpSubscribe:
		return []Answer{m.subscribe(op, now)}
	case OpCancel:
		return []Answer{m.cancel(op, now)}
	case OpVoid:
		return []Answer{m.void(op, now)}
	case OpChangeExpiry:
		return []Answer{m.changeExpiry(op, now)}
	case OpReverse:
		return []Answer{m.reverse(op, now)}
	}
	panic(fmt.Sprintf("model cannot apply %s", op.Kind))
}

// ---- views: every quantity, recomputed from the facts ----

type grantView struct {
	id          string
	amount      decimal.Decimal
	remaining   decimal.Decimal
	priority    int
	effectiveAt time.Time
	expiresAt   *time.Time
	order       int
	voided      bool
	source      string
}

type holdView struct {
	id        string
	amount    decimal.Decimal
	expiresAt time.Time
	pins      []part
	open      bool
}

type subView struct {
	id        string
	credits   decimal.Decimal
	startsAt  time.Time
	rollover  bool
	next      int // the next period to allocate
	cancelEnd *time.Time
}

type lineView struct {
	granted, used, expired, adjusted decimal.Decimal
	unallocated, overdraft           decimal.Decimal
	grants                           []*grantView // in the order added
	holds                            []*holdView  // in the order placed
	subs                             []*subView
	usages                           map[string]fact // accepted debits by usage id
	reloadEnabled                    bool
	reloadThreshold, reloadAmount    decimal.Decimal
	// exempt: a negative adjustment or a lowered overdraft limit happened,
	// the two writes that may leave available below −overdraft.
	exempt bool
}

// viewOf folds facts into the line's quantities.
func viewOf(facts []fact) *lineView {
	v := &lineView{usages: map[string]fact{}}
	take := func(p part, sign int) {
		amount := p.amount
		if sign < 0 {
			amount = amount.Neg()
		}
		if p.grant == "" {
			v.unallocated = v.unallocated.Add(amount)
			return
		}
		g := v.grant(p.grant)
		g.remaining = g.remaining.Add(amount)
	}
	for _, f := range facts {
		switch f.kind {
		case factGrant:
			v.granted = v.granted.Add(f.amount)
			v.grants = append(v.grants, &grantView{id: f.id, amount: f.amount, remaining: f.amount, priority: f.priority,
				effectiveAt: f.effectiveAt, expiresAt: f.expiresAt, order: len(v.grants), source: f.source})
			if f.sub != "" {
				v.subscription(f.sub).next = f.period + 1
			}
		case factDebit:
			v.used = v.used.Add(f.amount)
			for _, p := range f.parts {
				take(p, -1)
			}
			v.usages[f.id] = f
		case factRefusal:
		case factHold:
			v.holds = append(v.holds, &holdView{id: f.id, amount: f.amount, expiresAt: *f.expiresAt, pins: f.parts, open: true})
		case factCapture:
			v.hold(f.id).open = false
			v.used = v.used.Add(f.amount)
			for _, p := range f.parts {
				take(p, -1)
			}
		case factRelease:
			v.hold(f.id).open = false
		case factExpire:
			v.expired = v.expired.Add(f.amount)
			take(part{grant: f.id, amount: f.amount}, -1)
		case factVoid:
			v.adjusted = v.adjusted.Sub(f.amount)
			take(part{grant: f.id, amount: f.amount}, -1)
			v.grant(f.id).voided = true
		case factExpiryChange:
			v.grant(f.id).expiresAt = f.expiresAt
		case factAdjust:
			v.adjusted = v.adjusted.Add(f.amount)
			if f.amount.IsPositive() {
				v.unallocated = v.unallocated.Add(f.amount)
			} else {
				v.exempt = true
				for _, p := range f.parts {
					take(p, -1)
				}
			}
		case factReverse:
			v.used = v.used.Sub(f.amount)
			for _, p := range f.parts {
				take(p, +1)
			}
		case factAutoReload:
			v.reloadEnabled, v.reloadThreshold, v.reloadAmount = f.enabled, f.threshold, f.amount
		case factOverdraft:
			if f.amount.LessThan(v.overdraft) {
				v.exempt = true
			}
			v.overdraft = f.amount
		case factSubStart:
			v.subs = append(v.subs, &subView{id: f.id, credits: f.amount, startsAt: f.startsAt, rollover: f.rollover, next: f.firstPeriod})
		case factSubCancel:
			end := f.endsAt
			v.subscription(f.id).cancelEnd = &end
		default:
			panic(fmt.Sprintf("unknown fact %d", f.kind))
		}
	}
	return v
}

func (v *lineView) grant(id string) *grantView {
	for _, g := range v.grants {
		if g.id == id {
			return g
		}
	}
	panic(fmt.Sprintf("model: no grant %q", id))
}

func (v *lineView) findGrant(id string) (*grantView, bool) {
	for _, g := range v.grants {
		if g.id == id {
			return g, true
		}
	}
	return nil, false
}

func (v *lineView) hold(id string) *holdView {
	for _, h := range v.holds {
		if h.id == id {
			return h
		}
	}
	panic(fmt.Sprintf("model: no hold %q", id))
}

func (v *lineView) findHold(id string) (*holdView, bool) {
	for _, h := range v.holds {
		if h.id == id {
			return h, true
		}
	}
	return nil, false
}

func (v *lineView) subscription(id string) *subView {
	for _, s := range v.subs {
		if s.id == id {
			return s
		}
	}
	panic(fmt.Sprintf("model: no subscription %q", id))
}

func (v *lineView) findSubscription(id string) (*subView, bool) {
	for _, s := range v.subs {
		if s.id == id {
			return s, true
		}
	}
	return nil, false
}

func (v *lineView) reserved() decimal.Decimal {
	sum := decimal.Zero
	for _, h := range v.holds {
		if h.open {
			sum = sum.Add(h.amount)
		}
	}
	return sum
}

// held is the part of grant id pinned by open holds ("" for unallocated).
func (v *lineView) held(id string) decimal.Decimal {
	sum := decimal.Zero
	for _, h := range v.holds {
		if !h.open {
			continue
		}
		for _, p := range h.pins {
			if p.grant == id {
				sum = sum.Add(p.amount)
			}
		}
	}
	return sum
}

func (v *lineView) balance() decimal.Decimal {
	return v.granted.Add(v.adjusted).Sub(v.used).Sub(v.expired)
}

func (v *lineView) available() decimal.Decimal { return v.balance().Sub(v.reserved()) }

// active: effective_at ≤ t < expires_at, and not voided.
func (g *grantView) active(t time.Time) bool {
	if g.voided || t.Before(g.effectiveAt) {
		return false
	}
	return g.expiresAt == nil || t.Before(*g.expiresAt)
}

// free(t) = Σ active grants' (remaining − held) + unallocated − unallocated_held.
func (v *lineView) free(t time.Time) decimal.Decimal {
	sum := v.unallocated.Sub(v.held(""))
	for _, g := range v.grants {
		if g.active(t) {
			sum = sum.Add(g.remaining.Sub(v.held(g.id)))
		}
	}
	return sum
}

func (v *lineView) spendable(t time.Time) decimal.Decimal { return v.free(t).Add(v.overdraft) }

// burnOrder lists the grants active at t: priority ascending, then earliest
// expiry (none last), then the order they were added.
func (v *lineView) burnOrder(t time.Time) []*grantView {
	var active []*grantView
	for _, g := range v.grants {
		if g.active(t) {
			active = append(active, g)
		}
	}
	slices.SortStableFunc(active, func(a, b *grantView) int {
		if a.priority != b.priority {
			return cmp.Compare(a.priority, b.priority)
		}
		switch {
		case a.expiresAt == nil && b.expiresAt == nil:
		case a.expiresAt == nil:
			return 1
		case b.expiresAt == nil:
			return -1
		default:
			if c := a.expiresAt.Compare(*b.expiresAt); c != 0 {
				return c
			}
		}
		return cmp.Compare(a.order, b.order)
	})
	return active
}

// plan is where a debit (or the pins of a hold) of amount at t comes from:
// active grants' unpinned parts in burn order, the rest from unallocated.
func (v *lineView) plan(amount decimal.Decimal, t time.Time) []part {
	var parts []part
	left := amount
	for _, g := range v.burnOrder(t) {
		if !left.IsPositive() {
			break
		}
		unpinned := g.remaining.Sub(v.held(g.id))
		if !unpinned.IsPositive() {
			continue
		}
		take := decimal.Min(left, unpinned)
		parts = append(parts, part{grant: g.id, amount: take})
		left = left.Sub(take)
	}
	if left.IsPositive() {
		parts = append(parts, part{amount: left})
	}
	return parts
}

func overLimit(v *lineView) bool {
	for _, total := range []decimal.Decimal{v.granted, v.used, v.expired, v.adjusted.Abs(), v.reserved(), v.balance().Abs()} {
		if total.GreaterThan(totalsLimit) {
			return true
		}
	}
	return false
}

// armed replays the auto-reload arming of a line as of a write decided at
// now: configuring it (enabled) arms it, a reload grant disarms it, and it
// re-arms whenever free(at) ≥ threshold, judged before and after every fact
// at the fact's instant (the start of a write, and after each of its
// events), and at now, the start of the write being decided: free credits
// grow with time as grants become effective, between two writes.
func armed(facts []fact, now time.Time) bool {
	enabled, on := false, false
	threshold := decimal.Zero
	judge := func(upTo int, at time.Time) {
		if enabled && !on && viewOf(facts[:upTo]).free(at).GreaterThanOrEqual(threshold) {
			on = true
		}
	}
	for i, f := range facts {
		judge(i, f.at)
		switch {
		case f.kind == factAutoReload:
			enabled, on, threshold = f.enabled, f.enabled, f.threshold
		case f.kind == factGrant && f.source == sourceAutoReload:
			on = false
		}
		judge(i+1, f.at)
	}
	judge(len(facts), now)
	return enabled && on
}

// state is the line's state as the engine shows it.
func (v *lineView) state() LineState {
	s := LineState{
		Granted: v.granted, Used: v.used, Expired: v.expired, Adjusted: v.adjusted, Reserved: v.reserved(),
		Balance: v.balance(), Available: v.available(), Unallocated: v.unallocated, Overdraft: v.overdraft,
		Grants: map[string]GrantState{}, Holds: map[string]decimal.Decimal{},
	}
	for _, g := range v.grants {
		if g.remaining.IsPositive() {
			s.Grants[g.id] = GrantState{Amount: g.amount, Remaining: g.remaining}
		}
	}
	for _, h := range v.holds {
		if h.open {
			s.Holds[h.id] = h.amount
		}
	}
	return s
}

// ---- subscriptions' calendar ----

// periodStart is the start of period n: start plus n months on the same day
// of the month, clamped to the month's last day, at the same time of day.
func periodStart(start time.Time, n int) time.Time {
	start = start.UTC()
	months := int(start.Month()) - 1 + n
	year, month := start.Year()+months/12, time.Month(months%12+1)
	lastDay := time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC).Day()
	return time.Date(year, month, min(start.Day(), lastDay), start.Hour(), start.Minute(), start.Second(), start.Nanosecond(), time.UTC)
}

// periodAt is the period holding t (t at or after start).
func periodAt(start, t time.Time) int {
	n := 0
	for !periodStart(start, n+1).After(t) {
		n++
	}
	return n
}

// ---- writes ----

// write is one write on one line at one instant. Its facts are added to the
// line only if it stores something; a refusal that stores nothing (404, 409,
// 400) leaves the line as it was, due work included.
type write struct {
	line  *lineModel
	now   time.Time
	added []fact
}

func (m *Model) begin(tenant int, line string, now time.Time) *write {
	return &write{line: m.line(tenant, line), now: now}
}

func (w *write) facts() []fact   { return append(slices.Clip(w.line.facts), w.added...) }
func (w *write) view() *lineView { return viewOf(w.facts()) }

func (w *write) add(f fact) {
	f.at = w.now
	w.added = append(w.added, f)
}

func (w *write) commit() { w.line.facts = append(w.line.facts, w.added...) }

// dueWork applies what is due at or before now, in the order of the rules:
// subscription allocations, holds past their TTL, grant expiries.
func (w *write) dueWork() {
	w.allocate()
	v := w.view()
	holds := slices.Clone(v.holds)
	slices.SortFunc(holds, func(a, b *holdView) int { return cmp.Compare(a.id, b.id) })
	for _, h := range holds {
		if h.open && !h.expiresAt.After(w.now) {
			w.add(fact{kind: factRelease, id: h.id})
			w.forfeit(h.pins)
		}
	}
	v = w.view()
	for _, g := range v.grants {
		if g.expiresAt != nil && !g.expiresAt.After(w.now) {
			if unpinned := g.remaining.Sub(v.held(g.id)); unpinned.IsPositive() {
				w.add(fact{kind: factExpire, id: g.id, amount: unpinned})
			}
		}
	}
}

// allocate grants every due period of every subscription.
func (w *write) allocate() {
	subs := slices.Clone(w.view().subs)
	slices.SortFunc(subs, func(a, b *subView) int { return cmp.Compare(a.id, b.id) })
	for _, s := range subs {
		for n := s.next; n < s.next+periodsPerWriteMax; n++ {
			start := periodStart(s.startsAt, n)
			if start.After(w.now) || s.cancelEnd != nil && !start.Before(*s.cancelEnd) {
				break
			}
			f := fact{kind: factGrant, id: fmt.Sprintf("%s%s:%d", subscriptionPrefix, s.id, n), amount: s.credits,
				effectiveAt: start, source: sourceSubscription, sub: s.id, period: n}
			if !s.rollover {
				end := periodStart(s.startsAt, n+1)
				f.expiresAt = &end
			}
			if overLimit(viewOf(append(w.facts(), f))) {
				w.add(fact{kind: factSubCancel, id: s.id, endsAt: start})
				break
			}
			w.add(f)
		}
	}
}

// forfeit: what a hold gives back to a grant that is voided, or expired at
// now, goes at once.
func (w *write) forfeit(parts []part) {
	v := w.view()
	for _, p := range parts {
		if p.grant == "" || !p.amount.IsPositive() {
			continue
		}
		g := v.grant(p.grant)
		switch {
		case g.voided:
			w.add(fact{kind: factVoid, id: g.id, amount: p.amount})
		case g.expiresAt != nil && !g.expiresAt.After(w.now):
			w.add(fact{kind: factExpire, id: g.id, amount: p.amount})
		}
	}
}

// canReload: auto-reload is enabled with an amount and armed.
func (w *write) canReload() bool {
	v := w.view()
	return v.reloadEnabled && v.reloadAmount.IsPositive() && armed(w.facts(), w.now)
}

// reload adds the auto-reload grant for trigger, unless it would take a
// total past the limit, and returns its amount.
func (w *write) reload(trigger string) decimal.Decimal {
	v := w.view()
	f := fact{kind: factGrant, at: w.now, id: autoReloadPrefix + trigger, amount: v.reloadAmount, effectiveAt: w.now, source: sourceAutoReload}
	if overLimit(viewOf(append(w.facts(), f))) {
		return decimal.Zero
	}
	w.add(f)
	return v.reloadAmount
}

// reloadAfter is the check after a debit or hold: armed and free(now) below
// the threshold.
func (w *write) reloadAfter(trigger string) decimal.Decimal {
	if !w.canReload() || !w.view().free(w.now).LessThan(w.view().reloadThreshold) {
		return decimal.Zero
	}
	return w.reload(trigger)
}

// keyed runs an idempotent write: a known id answers its original outcome
// (same body) or a conflict; otherwise decide runs and, if it stored
// something, its outcome is kept.
func (m *Model) keyed(tenant int, kind OpKind, id, body string, decide func() (Answer, *write)) Answer {
	t := m.tenants[tenant]
	key := idKey{kind, id}
	if rec, ok := t.ids[key]; ok {
		if rec.body != body {
			if kind == OpCapture {
				// commands.Capture answers a capture with another amount as
				// ErrReservationClosed (the hold was captured already).
				return Answer{Status: StatusRefused, Reason: ReasonClosed}
			}
			return Answer{Status: StatusRefused, Reason: ReasonConflict}
		}
		return Answer{Status: StatusDuplicate, Reason: rec.answer.Reason}
	}
	a, w := decide()
	if stores(a) {
		w.commit()
		t.ids[key] = idRecord{body: body, answer: a}
	}
	return a
}

// stores: accepted writes and recorded refusals are stored.
func stores(a Answer) bool {
	return a.Status == StatusAccepted || a.Status == StatusRefused && (a.Reason == ReasonInsufficient || a.Reason == ReasonFuture)
}

func refused(reason string) Answer { return Answer{Status: StatusRefused, Reason: reason} }

func accepted() Answer { return Answer{Status: StatusAccepted, Detailed: true} }

func grantParts(parts []part) map[string]decimal.Decimal {
	out := map[string]decimal.Decimal{}
	for _, p := range parts {
		if p.grant != "" {
			out[p.grant] = out[p.grant].Add(p.amount)
		}
	}
	return out
}

func (m *Model) usage(tenant int, u UsageOp, now time.Time) Answer {
	return m.keyed(tenant, OpUsage, u.ID, u.body(), func() (Answer, *write) {
		w := m.begin(tenant, u.Line, now)
		w.dueWork()
		occurred := u.OccurredAt
		if occurred.IsZero() {
			occurred = now
		}
		if occurred.After(now.Add(futureSkewMax)) {
			w.add(fact{kind: factRefusal, id: u.ID, amount: u.Amount})
			return Answer{Status: StatusRefused, Reason: ReasonFuture, Detailed: true}, w
		}
		if u.Amount.IsZero() {
			// Always accepted, even on a line in debt.
			w.add(fact{kind: factDebit, id: u.ID})
			a := accepted()
			if zeroUsageReloads {
				a.Reload = w.reloadAfter("usage:" + u.ID)
			}
			return a, w
		}
		a := Answer{Detailed: true}
		if u.Amount.GreaterThan(w.view().spendable(now)) && w.canReload() {
			a.Reload = w.reload("usage:" + u.ID)
		}
		if u.Amount.GreaterThan(w.view().spendable(now)) {
			w.add(fact{kind: factRefusal, id: u.ID, amount: u.Amount})
			a.Status, a.Reason = StatusRefused, ReasonInsufficient
			return a, w
		}
		parts := w.view().plan(u.Amount, now)
		w.add(fact{kind: factDebit, id: u.ID, amount: u.Amount, parts: parts})
		if overLimit(w.view()) {
			return refused(invalid("amount")), w
		}
		if a.Reload.IsZero() {
			a.Reload = w.reloadAfter("usage:" + u.ID)
		}
		a.Status, a.Amount, a.Parts = StatusAccepted, u.Amount, grantParts(parts)
		return a, w
	})
}

func (m *Model) grant(op Op, now time.Time) Answer {
	// Checks of the body alone come before the id is looked up.
	switch {
	case op.Source == sourceAutoReload:
		return refused(invalid("source"))
	case op.ExpiresAt != nil && !op.EffectiveAt.IsZero() && !op.ExpiresAt.After(op.EffectiveAt):
		return refused(invalid("expires_at"))
	}
	return m.keyed(op.Tenant, OpGrant, op.ID, op.body(), func() (Answer, *write) {
		w := m.begin(op.Tenant, op.Line, now)
		w.dueWork()
		if op.ExpiresAt != nil && !op.ExpiresAt.After(now) {
			return refused(invalid("expires_at")), w
		}
		effective := op.EffectiveAt
		if effective.IsZero() {
			effective = now
		}
		w.add(fact{kind: factGrant, id: op.ID, amount: op.Amount, priority: op.Priority, effectiveAt: effective, expiresAt: op.ExpiresAt, source: op.Source})
		if overLimit(w.view()) {
			return refused(invalid("amount")), w
		}
		return accepted(), w
	})
}

func (m *Model) reserve(op Op, now time.Time) Answer {
	return m.keyed(op.Tenant, OpReserve, op.ID, op.body(), func() (Answer, *write) {
		w := m.begin(op.Tenant, op.Line, now)
		w.dueWork()
		a := Answer{Detailed: true}
		if op.Amount.GreaterThan(w.view().spendable(now)) && w.canReload() {
			a.Reload = w.reload("reservation:" + op.ID)
		}
		if op.Amount.GreaterThan(w.view().spendable(now)) {
			w.add(fact{kind: factRefusal, id: op.ID, amount: op.Amount})
			return refused(ReasonInsufficient), w
		}
		ttl := op.TTL
		if ttl == 0 {
			ttl = holdTTLDefault
		}
		ends := now.Add(ttl)
		pins := w.view().plan(op.Amount, now)
		w.add(fact{kind: factHold, id: op.ID, amount: op.Amount, expiresAt: &ends, parts: pins})
		if overLimit(w.view()) {
			return refused(invalid("amount")), w
		}
		if a.Reload.IsZero() {
			a.Reload = w.reloadAfter("reservation:" + op.ID)
		}
		a.Status, a.Amount, a.ExpiresAt, a.Pins = StatusAccepted, op.Amount, ends, grantParts(pins)
		return a, w
	})
}

const defaultLine = "default"

// lineWith returns the line (the named one, or the one with a fact of one
// of kinds about id) a request is decided on.
func (m *Model) lineWith(tenant int, named, id string, kinds ...factKind) string {
	if named != "" {
		return named
	}
	t := m.tenants[tenant]
	for _, name := range slices.Sorted(maps.Keys(t.lines)) {
		for _, f := range t.lines[name].facts {
			if f.id == id && slices.Contains(kinds, f.kind) {
				return name
			}
		}
	}
	return defaultLine
}

func (m *Model) capture(op Op, now time.Time) Answer {
	op.Line = m.lineWith(op.Tenant, op.Line, op.ID, factHold, factRefusal)
	return m.keyed(op.Tenant, OpCapture, op.ID, op.body(), func() (Answer, *write) {
		w := m.begin(op.Tenant, op.Line, now)
		if _, ok := w.view().findHold(op.ID); !ok {
			return refused(ReasonNotFound), w
		}
		w.dueWork()
		v := w.view()
		h := v.hold(op.ID)
		if !h.open {
			return refused(ReasonClosed), w
		}
		amount := h.amount
		if op.CaptureAmount != nil {
			amount = *op.CaptureAmount
		}
		if amount.GreaterThan(h.amount) {
			return refused(ReasonExceedsHold), w
		}
		// Spent from the pins in pin order; the rest is released.
		var spent, rest []part
		left := amount
		for _, p := range h.pins {
			take := decimal.Min(left, p.amount)
			left = left.Sub(take)
			spent = append(spent, part{grant: p.grant, amount: take})
			rest = append(rest, part{grant: p.grant, amount: p.amount.Sub(take)})
		}
		w.add(fact{kind: factCapture, id: op.ID, amount: amount, parts: spent})
		w.forfeit(rest)
		// The captured amount moves into the used total, bounded as
		// every total is.
		if overLimit(w.view()) {
			return refused(invalid("amount")), w
		}
		a := accepted()
		a.Amount, a.Released, a.Parts = amount, h.amount.Sub(amount), grantParts(spent)
		return a, w
	})
}

func (m *Model) release(op Op, now time.Time) Answer {
	op.Line = m.lineWith(op.Tenant, op.Line, op.ID, factHold, factRefusal)
	return m.keyed(op.Tenant, OpRelease, op.ID, op.body(), func() (Answer, *write) {
		w := m.begin(op.Tenant, op.Line, now)
		if _, ok := w.view().findHold(op.ID); !ok {
			return refused(ReasonNotFound), w
		}
		w.dueWork()
		h := w.view().hold(op.ID)
		if !h.open {
			return refused(ReasonClosed), w
		}
		w.add(fact{kind: factRelease, id: op.ID})
		w.forfeit(h.pins)
		return accepted(), w
	})
}

func (m *Model) adjust(op Op, now time.Time) Answer {
	if op.Amount.IsZero() {
		return refused(invalid("amount"))
	}
	return m.keyed(op.Tenant, OpAdjust, op.ID, op.body(), func() (Answer, *write) {
		w := m.begin(op.Tenant, op.Line, now)
		w.dueWork()
		a := accepted()
		if op.Amount.IsPositive() {
			w.add(fact{kind: factAdjust, id: op.ID, amount: op.Amount})
		} else {
			// From free unallocated first, then active grants' unpinned parts
			// in burn order; the rest is debt.
			v := w.view()
			left := op.Amount.Neg()
			fromUnallocated := decimal.Min(left, decimal.Max(v.unallocated.Sub(v.held("")), decimal.Zero))
			left = left.Sub(fromUnallocated)
			var parts []part
			for _, p := range v.plan(left, now) {
				if p.grant == "" {
					fromUnallocated = fromUnallocated.Add(p.amount)
				} else {
					parts = append(parts, p)
				}
			}
			if fromUnallocated.IsPositive() {
				parts = append(parts, part{amount: fromUnallocated})
			}
			w.add(fact{kind: factAdjust, id: op.ID, amount: op.Amount, parts: parts})
			a.Parts = grantParts(parts)
		}
		if overLimit(w.view()) {
			return refused(invalid("amount")), w
		}
		return a, w
	})
}

// configureAutoReload and configureOverdraft are idempotent by value: the
// setting a line already has stores nothing of its own (the due work still
// lands).
func (m *Model) configureAutoReload(op Op, now time.Time) Answer {
	w := m.begin(op.Tenant, op.Line, now)
	w.dueWork()
	v := w.view()
	if v.reloadEnabled != op.Enabled || !v.reloadThreshold.Equal(op.Threshold) || !v.reloadAmount.Equal(op.Amount) {
		w.add(fact{kind: factAutoReload, enabled: op.Enabled, threshold: op.Threshold, amount: op.Amount})
	}
	w.commit()
	return Answer{Status: StatusAccepted}
}

func (m *Model) configureOverdraft(op Op, now time.Time) Answer {
	w := m.begin(op.Tenant, op.Line, now)
	w.dueWork()
	if !w.view().overdraft.Equal(op.Amount) {
		w.add(fact{kind: factOverdraft, amount: op.Amount})
	}
	w.commit()
	return Answer{Status: StatusAccepted}
}

func (m *Model) subscribe(op Op, now time.Time) Answer {
	return m.keyed(op.Tenant, OpSubscribe, op.ID, op.body(), func() (Answer, *write) {
		w := m.begin(op.Tenant, op.Line, now)
		w.dueWork()
		starts := op.StartsAt
		if starts.IsZero() {
			starts = now
		}
		// Periods that ended before the creation instant are never
		// allocated: the first is the one holding now (or period 0).
		first := 0
		if !starts.After(now) {
			first = periodAt(starts, now)
		}
		w.add(fact{kind: factSubStart, id: op.ID, amount: op.Amount, startsAt: starts, rollover: op.Rollover, firstPeriod: first})
		w.allocate()
		return accepted(), w
	})
}

func (m *Model) cancel(op Op, now time.Time) Answer {
	op.Line = m.lineWith(op.Tenant, op.Line, op.ID, factSubStart)
	return m.keyed(op.Tenant, OpCancel, op.ID, op.body(), func() (Answer, *write) {
		w := m.begin(op.Tenant, op.Line, now)
		if _, ok := w.view().findSubscription(op.ID); !ok {
			return refused(ReasonNotFound), w
		}
		w.dueWork()
		s := w.view().subscription(op.ID)
		if s.cancelEnd != nil {
			return refused(ReasonCanceled), w
		}
		ends := s.startsAt
		if !now.Before(s.startsAt) {
			ends = periodStart(s.startsAt, periodAt(s.startsAt, now)+1)
		}
		w.add(fact{kind: factSubCancel, id: op.ID, endsAt: ends})
		return accepted(), w
	})
}

func (m *Model) void(op Op, now time.Time) Answer {
	op.Line = m.lineWith(op.Tenant, op.Line, op.ID, factGrant)
	return m.keyed(op.Tenant, OpVoid, op.ID, op.body(), func() (Answer, *write) {
		w := m.begin(op.Tenant, op.Line, now)
		// Due work first: it may allocate the very grant named.
		w.dueWork()
		v := w.view()
		g, ok := v.findGrant(op.ID)
		if !ok || !g.remaining.IsPositive() {
			return refused(ReasonNotFound), w
		}
		// Only the unpinned remainder goes now; the pinned part is forfeited
		// when its hold lets go of it.
		unpinned := g.remaining.Sub(v.held(g.id))
		w.add(fact{kind: factVoid, id: op.ID, amount: unpinned})
		a := accepted()
		a.Amount = unpinned
		return a, w
	})
}

func (m *Model) changeExpiry(op Op, now time.Time) Answer {
	op.Line = m.lineWith(op.Tenant, op.Line, op.ID, factGrant)
	w := m.begin(op.Tenant, op.Line, now)
	w.dueWork()
	g, ok := w.view().findGrant(op.ID)
	switch {
	case !ok:
		return refused(ReasonNotFound)
	case g.expiresAt != nil && !g.expiresAt.After(now):
		return refused(ReasonExpired)
	case g.voided || !g.remaining.IsPositive():
		return refused(ReasonNotFound)
	case op.ExpiresAt != nil && (!op.ExpiresAt.After(now) || !op.ExpiresAt.After(g.effectiveAt)):
		return refused(invalid("expires_at"))
	}
	same := g.expiresAt == nil && op.ExpiresAt == nil || g.expiresAt != nil && op.ExpiresAt != nil && g.expiresAt.Equal(*op.ExpiresAt)
	if !same {
		w.add(fact{kind: factExpiryChange, id: op.ID, expiresAt: op.ExpiresAt})
	}
	w.commit()
	return Answer{Status: StatusAccepted}
}

func (m *Model) reverse(op Op, now time.Time) Answer {
	// The engine finds the usage's line itself, among accepted debits.
	t := m.tenants[op.Tenant]
	line := ""
	for _, name := range slices.Sorted(maps.Keys(t.lines)) {
		if _, ok := viewOf(t.lines[name].facts).usages[op.ID]; ok {
			line = name
		}
	}
	if line == "" {
		return refused(ReasonNotFound)
	}
	op.Line = line
	return m.keyed(op.Tenant, OpReverse, op.ID, op.body(), func() (Answer, *write) {
		w := m.begin(op.Tenant, line, now)
		w.dueWork()
		debit := w.view().usages[op.ID]
		w.add(fact{kind: factReverse, id: op.ID, amount: debit.amount, parts: debit.parts})
		// What returns to a grant that is expired at now, or voided, goes
		// at once.
		w.forfeit(debit.parts)
		// The credits given back must leave the balance within the limit.
		if overLimit(w.view()) {
			return refused(invalid("path.usage_id")), w
		}
		a := accepted()
		a.Parts = grantParts(debit.parts)
		return a, w
	})
}

// RunDue applies what is due at now on every line, as the engine's sweep
// does.
func (m *Model) RunDue(now time.Time) {
	for tenant, t := range m.tenants {
		for _, name := range slices.Sorted(maps.Keys(t.lines)) {
			w := m.begin(tenant, name, now)
			w.dueWork()
			w.commit()
		}
	}
}

// ---- reads for the checks and the generator ----

// State is a line's committed state.
func (m *Model) State(tenant int, line string) LineState {
	return viewOf(m.line(tenant, line).facts).state()
}

// StateAfterDue is the line's state once what is due at now is applied:
// what a write at now would first bring the line to.
func (m *Model) StateAfterDue(tenant int, line string, now time.Time) LineState {
	w := m.begin(tenant, line, now)
	w.dueWork()
	return w.view().state()
}

// Exempt reports whether a line had a write allowed to leave available
// below −overdraft (a negative adjustment, a lowered limit).
func (m *Model) Exempt(tenant int, line string) bool {
	return viewOf(m.line(tenant, line).facts).exempt
}

// Lines lists a tenant's lines that hold at least one fact, sorted.
func (m *Model) Lines(tenant int) []string {
	var names []string
	for name, l := range m.tenants[tenant].lines {
		if len(l.facts) > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// GrantInfo, HoldInfo, UsageInfo and SubscriptionInfo are what the
// generator may know of a line to pick targets.
type GrantInfo struct {
	ID, Line             string
	Remaining            decimal.Decimal
	EffectiveAt          time.Time
	ExpiresAt            *time.Time
	Voided, Subscription bool
}

type HoldInfo struct {
	ID, Line  string
	Amount    decimal.Decimal
	ExpiresAt time.Time
	Open      bool
}

type SubscriptionInfo struct {
	ID, Line  string
	StartsAt  time.Time
	Next      int
	CancelEnd *time.Time
}

// Snapshot is a read-only summary of a tenant's lines for the generator.
type Snapshot struct {
	Grants        []GrantInfo
	Holds         []HoldInfo
	Usages        []string // accepted usage ids
	Subscriptions []SubscriptionInfo
	Settings      map[string]Settings // by line
}

// Settings are a line's auto-reload and overdraft settings.
type Settings struct {
	ReloadEnabled                 bool
	ReloadThreshold, ReloadAmount decimal.Decimal
	Overdraft                     decimal.Decimal
}

// Snapshot summarises a tenant's committed lines.
func (m *Model) Snapshot(tenant int) Snapshot {
	s := Snapshot{Settings: map[string]Settings{}}
	t := m.tenants[tenant]
	for _, name := range slices.Sorted(maps.Keys(t.lines)) {
		v := viewOf(t.lines[name].facts)
		for _, g := range v.grants {
			s.Grants = append(s.Grants, GrantInfo{ID: g.id, Line: name, Remaining: g.remaining, EffectiveAt: g.effectiveAt,
				ExpiresAt: g.expiresAt, Voided: g.voided, Subscription: g.source == sourceSubscription})
		}
		for _, h := range v.holds {
			s.Holds = append(s.Holds, HoldInfo{ID: h.id, Line: name, Amount: h.amount, ExpiresAt: h.expiresAt, Open: h.open})
		}
		for _, id := range slices.Sorted(maps.Keys(v.usages)) {
			s.Usages = append(s.Usages, id)
		}
		for _, sub := range v.subs {
			s.Subscriptions = append(s.Subscriptions, SubscriptionInfo{ID: sub.id, Line: name, StartsAt: sub.startsAt, Next: sub.next, CancelEnd: sub.cancelEnd})
		}
		s.Settings[name] = Settings{ReloadEnabled: v.reloadEnabled, ReloadThreshold: v.reloadThreshold, ReloadAmount: v.reloadAmount, Overdraft: v.overdraft}
	}
	return s
}

// Boundaries lists every instant after now at which something of the
// model's lines becomes due or starts: grants' effective_at and expires_at,
// holds' ends, subscriptions' next period starts and ends. Sorted, unique.
func (m *Model) Boundaries(now time.Time) []time.Time {
	var out []time.Time
	add := func(t time.Time) {
		if t.After(now) {
			out = append(out, t)
		}
	}
	for _, t := range m.tenants {
		for _, name := range slices.Sorted(maps.Keys(t.lines)) {
			v := viewOf(t.lines[name].facts)
			for _, g := range v.grants {
				add(g.effectiveAt)
				if g.expiresAt != nil {
					add(*g.expiresAt)
				}
			}
			for _, h := range v.holds {
				if h.open {
					add(h.expiresAt)
				}
			}
			for _, s := range v.subs {
				for n := s.next; n < s.next+2; n++ {
					add(periodStart(s.startsAt, n))
				}
				if s.cancelEnd != nil {
					add(*s.cancelEnd)
				}
			}
		}
	}
	slices.SortFunc(out, time.Time.Compare)
	return slices.CompactFunc(out, time.Time.Equal)
}
