package domain

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// DefaultCreditType names the line used when a request names none.
const DefaultCreditType = "default"

// GrantBalance is what is left of one grant.
type GrantBalance struct {
	GrantID     string
	Original    decimal.Decimal
	Remaining   decimal.Decimal
	Priority    int
	EffectiveAt time.Time
	ExpiresAt   *time.Time
	// Order is the grant's position among the line's grants, the last key of
	// the burn-down order (earliest grant first).
	Order int64
	// Held is the part of Remaining that open holds pinned: it neither
	// pays for other debits nor expires nor is voided while held.
	Held decimal.Decimal
	// Voided is set once the grant was voided; a voided grant never pays,
	// and what a hold later releases to it is voided at once.
	Voided bool
}

// ActiveAt reports whether the grant may pay for a debit decided at now: at
// or after its effective_at, before its expiry, and not voided.
func (g GrantBalance) ActiveAt(now time.Time) bool {
	if g.Voided || now.Before(g.EffectiveAt) {
		return false
	}
	return g.ExpiresAt == nil || now.Before(*g.ExpiresAt)
}

// ExpiredAt reports whether the grant's expiry has passed at now.
func (g GrantBalance) ExpiredAt(now time.Time) bool {
	return g.ExpiresAt != nil && !now.Before(*g.ExpiresAt)
}

// Unpinned is the part of the grant's credits no hold pinned.
func (g GrantBalance) Unpinned() decimal.Decimal { return sub(g.Remaining, g.Held) }

// burnsBefore is the burn-down order of domain/README.md: priority (lower
// first), then earliest expiry (no expiry last), then earliest grant.
func burnsBefore(a, b GrantBalance) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	switch {
	case a.ExpiresAt != nil && b.ExpiresAt == nil:
		return true
	case a.ExpiresAt == nil && b.ExpiresAt != nil:
		return false
	case a.ExpiresAt != nil && !a.ExpiresAt.Equal(*b.ExpiresAt):
		return a.ExpiresAt.Before(*b.ExpiresAt)
	}
	return a.Order < b.Order
}

// Hold is an open reservation.
type Hold struct {
	ReservationID string
	Amount        decimal.Decimal
	ExpiresAt     time.Time
	Dimensions    Dimensions
	// Pinned are the credits the hold pins, in the order a capture spends
	// them: grants in burn-down order, then the part no grant could hold
	// (GrantID ""). Empty for holds made before pinning existed: their
	// capture is planned at capture time.
	Pinned []Burn
}

// AutoReload is a line's auto-reload setting.
type AutoReload struct {
	Enabled   bool
	Threshold decimal.Decimal
	Amount    decimal.Decimal
}

// Line is the state of one tenant's credit line, built only by Apply.
//
// Credits not tied to a grant (positive adjustments, and debt from overdraft
// or negative adjustments beyond the grants) sit in Unallocated, so that
// Balance() == Σ grant remaining + Unallocated always holds.
type Line struct {
	CreditType string

	Granted  decimal.Decimal
	Adjusted decimal.Decimal
	Used     decimal.Decimal
	Expired  decimal.Decimal
	Reserved decimal.Decimal

	Unallocated    decimal.Decimal
	OverdraftLimit decimal.Decimal

	// Grants holds every grant with credits left, in burn-down order
	// (an expired or voided grant stays while a hold pins part of it).
	Grants []GrantBalance
	// Depleted holds grants with nothing left (burned down, expired or
	// voided), so a reversed debit can give credits back to the grant that
	// paid for it, with that grant's expiry. A writer keeps only the ones a
	// decision needs here: it moves newly depleted grants out to its own
	// index after each commit and brings back those a write names
	// (commands, "depleted grants"), so a line's copy stays small however
	// many grants it burned through. Nil when empty.
	Depleted      map[string]GrantBalance
	Reservations  map[string]Hold
	Subscriptions map[string]Subscription

	AutoReload AutoReload
	// ReloadArmed is true while available is at or above the threshold (or
	// since the setting changed): the next debit that ends below it reloads,
	// and disarms until available is back at the threshold. That makes one
	// reload per crossing, not one per debit.
	ReloadArmed bool
	// AsOf is the latest decision instant the line has seen (Observe): the
	// instant at which arming is judged, since free credits depend on time
	// (grants becoming effective) and Apply takes none.
	AsOf time.Time

	// GrantsMade counts the grants ever made on the line: the next grant's
	// Order.
	GrantsMade int64
}

// NewLine returns the empty state of a line.
func NewLine(creditType string) *Line {
	return &Line{CreditType: creditType, Reservations: map[string]Hold{}, Subscriptions: map[string]Subscription{}}
}

// Clone returns a deep copy, so a batch can decide on a copy and drop it if
// the commit does not land.
func (l *Line) Clone() *Line {
	c := *l
	c.Grants = slices.Clone(l.Grants)
	c.Reservations = maps.Clone(l.Reservations)
	c.Subscriptions = maps.Clone(l.Subscriptions)
	if len(l.Depleted) > 0 {
		c.Depleted = maps.Clone(l.Depleted)
	} else {
		c.Depleted = nil
	}
	return &c
}

// Balance = granted + adjusted − used − expired.
func (l *Line) Balance() decimal.Decimal {
	return sub(sub(add(l.Granted, l.Adjusted), l.Used), l.Expired)
}

// Available = balance − reserved.
func (l *Line) Available() decimal.Decimal { return sub(l.Balance(), l.Reserved) }

// heldUnallocated is the part of the open holds pinned to no grant.
func (l *Line) heldUnallocated() decimal.Decimal {
	held := l.Reserved
	for _, g := range l.Grants {
		held = sub(held, g.Held)
	}
	return held
}

// Free is what the line can pay at now without its overdraft: the active
// grants' unpinned credits plus the unallocated balance, less what holds
// pinned to no grant. Grants not yet effective, or past expiry, count in
// Balance but cannot pay. Auto-reload judges its threshold on Free.
func (l *Line) Free(now time.Time) decimal.Decimal {
	total := sub(l.Unallocated, l.heldUnallocated())
	for _, g := range l.Grants {
		if g.ActiveAt(now) {
			total = add(total, g.Unpinned())
		}
	}
	return total
}

// Spendable is what a debit decided at now may take: Free plus the
// overdraft limit.
func (l *Line) Spendable(now time.Time) decimal.Decimal {
	return add(l.Free(now), l.OverdraftLimit)
}

// planBurn returns the grants that pay for amount at now, in burn-down
// order, from their unpinned credits. What the active grants cannot cover
// falls to the unallocated balance.
func (l *Line) planBurn(amount decimal.Decimal, now time.Time) []Burn {
	var burns []Burn
	left := amount
	for _, g := range l.Grants {
		if !left.IsPositive() {
			break
		}
		free := g.Unpinned()
		if !g.ActiveAt(now) || !free.IsPositive() {
			continue
		}
		take := decimal.Min(left, free)
		burns = append(burns, Burn{GrantID: g.GrantID, Amount: take})
		left = sub(left, take)
	}
	return burns
}

// planPins returns what a hold of amount decided at now pins: the grants
// that would pay for it, in burn-down order, then the rest as a part with
// no grant (GrantID ""), so a new hold always has at least one pin.
func (l *Line) planPins(amount decimal.Decimal, now time.Time) []Burn {
	pins := l.planBurn(amount, now)
	rest := amount
	for _, p := range pins {
		rest = sub(rest, p.Amount)
	}
	if rest.IsPositive() {
		pins = append(pins, Burn{Amount: rest})
	}
	return pins
}

// applyBurn takes amount from the listed grants and the rest from the
// unallocated balance.
func (l *Line) applyBurn(amount decimal.Decimal, burns []Burn) {
	left := amount
	for _, b := range burns {
		i := l.mustGrant(b.GrantID, "burn")
		l.Grants[i].Remaining = sub(l.Grants[i].Remaining, b.Amount)
		left = sub(left, b.Amount)
	}
	l.Unallocated = sub(l.Unallocated, left)
	l.dropEmpty()
}

// dropEmpty moves the grants with nothing left to Depleted.
func (l *Line) dropEmpty() {
	l.Grants = slices.DeleteFunc(l.Grants, func(g GrantBalance) bool {
		if g.Remaining.IsZero() {
			if l.Depleted == nil {
				l.Depleted = map[string]GrantBalance{}
			}
			l.Depleted[g.GrantID] = g
			return true
		}
		return false
	})
}

func (l *Line) mustGrant(id, what string) int {
	i := l.grantIndex(id)
	if i < 0 {
		panic(fmt.Sprintf("%s of unknown grant %q", what, id))
	}
	return i
}

// pin adds sign × each pin to its grant's held credits.
func (l *Line) pin(pins []Burn, sign int) {
	for _, p := range pins {
		if p.GrantID == "" {
			continue
		}
		i := l.mustGrant(p.GrantID, "pin")
		if sign > 0 {
			l.Grants[i].Held = add(l.Grants[i].Held, p.Amount)
		} else {
			l.Grants[i].Held = sub(l.Grants[i].Held, p.Amount)
		}
	}
}

// Grant returns a grant of the line by id, open or depleted.
func (l *Line) Grant(id string) (GrantBalance, bool) {
	if i := l.grantIndex(id); i >= 0 {
		return l.Grants[i], true
	}
	g, ok := l.Depleted[id]
	return g, ok
}

// Observe tells the line that a write is decided at now. Arming is judged
// at the instants a line is written, and Apply has no clock: the writer
// observes each line it decides on, and a replay observes each commit's
// recording instant (the same instant), so both reach the same state.
func (l *Line) Observe(now time.Time) {
	if now.After(l.AsOf) {
		l.AsOf = now
	}
	l.rearm()
}

// rearm arms the auto-reload while free credits are at or above its
// threshold.
func (l *Line) rearm() {
	if l.AutoReload.Enabled && !l.ReloadArmed && l.Free(l.AsOf).GreaterThanOrEqual(l.AutoReload.Threshold) {
		l.ReloadArmed = true
	}
}

// insertGrant places g in burn-down order.
func (l *Line) insertGrant(g GrantBalance) {
	i, _ := slices.BinarySearchFunc(l.Grants, g, func(a, b GrantBalance) int {
		if burnsBefore(a, b) {
			return -1
		}
		return 1
	})
	l.Grants = slices.Insert(l.Grants, i, g)
}

func (l *Line) grantIndex(id string) int {
	return slices.IndexFunc(l.Grants, func(g GrantBalance) bool { return g.GrantID == id })
}

// NextDue is the earliest instant at which due work falls on the line (a
// grant's unpinned credits expire, a hold's TTL ends, a subscription
// allocates), and false when nothing will.
func (l *Line) NextDue() (time.Time, bool) {
	var due time.Time
	found := false
	consider := func(t time.Time) {
		if !found || t.Before(due) {
			due, found = t, true
		}
	}
	for _, g := range l.Grants {
		if g.ExpiresAt != nil && !g.Voided && g.Unpinned().IsPositive() {
			consider(*g.ExpiresAt)
		}
	}
	for _, h := range l.Reservations {
		consider(h.ExpiresAt)
	}
	for _, s := range l.Subscriptions {
		if next, ok := s.nextAllocation(); ok {
			consider(next)
		}
	}
	return due, found
}

// Apply evolves the line by one of its events. Events come from the log, so
// Apply never fails on a business rule: a fact that broke one would be a
// programmer error and panics.
func (l *Line) Apply(e Event) {
	switch e := e.(type) {
	case CreditsGranted:
		l.Granted = add(l.Granted, e.Amount)
		l.GrantsMade++
		g := GrantBalance{GrantID: e.GrantID, Original: e.Amount, Remaining: e.Amount, Priority: e.Priority,
			EffectiveAt: e.EffectiveAt, ExpiresAt: e.ExpiresAt, Order: l.GrantsMade}
		l.insertGrant(g)
		if e.Source == SourceAutoReload {
			l.ReloadArmed = false
		}
		if s, ok := l.Subscriptions[e.SubscriptionID]; ok && e.SubscriptionID != "" {
			s.Granted = allocationIndex(e.GrantID, s.Granted) + 1
			l.Subscriptions[e.SubscriptionID] = s
		}
	case UsageDebited:
		l.Used = add(l.Used, e.Amount)
		l.applyBurn(e.Amount, e.Burned)
	case DebitRejected:
		// An attempt on record; it moves no credits.
	case ReservationRejected:
		// An attempt on record; it holds nothing.
	case UsageBatchRecorded:
		// A key on record; it moves nothing.
	case CreditsReserved:
		l.Reserved = add(l.Reserved, e.Amount)
		l.pin(e.Pinned, +1)
		l.Reservations[e.ReservationID] = Hold{ReservationID: e.ReservationID, Amount: e.Amount, ExpiresAt: e.ExpiresAt, Dimensions: e.Dimensions, Pinned: slices.Clone(e.Pinned)}
	case ReservationCaptured:
		h := l.mustHold(e.ReservationID)
		l.Reserved = sub(l.Reserved, h.Amount)
		l.pin(h.Pinned, -1)
		delete(l.Reservations, e.ReservationID)
		l.Used = add(l.Used, e.Amount)
		l.applyBurn(e.Amount, e.Burned)
	case ReservationReleased:
		h := l.mustHold(e.ReservationID)
		l.Reserved = sub(l.Reserved, h.Amount)
		l.pin(h.Pinned, -1)
		delete(l.Reservations, e.ReservationID)
	case CreditsAdjusted:
		l.Adjusted = add(l.Adjusted, e.Amount)
		if e.Amount.IsPositive() {
			l.Unallocated = add(l.Unallocated, e.Amount)
		} else {
			l.applyBurn(e.Amount.Neg(), e.Burned)
		}
	case GrantExpired:
		i := l.mustGrant(e.GrantID, "expiry")
		l.Expired = add(l.Expired, e.Amount)
		l.Grants[i].Remaining = sub(l.Grants[i].Remaining, e.Amount)
		l.dropEmpty()
	case AutoReloadConfigured:
		l.AutoReload = AutoReload{Enabled: e.Enabled, Threshold: e.Threshold, Amount: e.Amount}
		l.ReloadArmed = e.Enabled
	case CreditLineConfigured:
		l.OverdraftLimit = e.OverdraftLimit
	case UsageReversed:
		l.Used = sub(l.Used, e.Amount)
		left := e.Amount
		for _, r := range e.Returned {
			left = sub(left, r.Amount)
			if i := l.grantIndex(r.GrantID); i >= 0 {
				l.Grants[i].Remaining = add(l.Grants[i].Remaining, r.Amount)
				continue
			}
			g, ok := l.Depleted[r.GrantID]
			if !ok {
				panic(fmt.Sprintf("credits returned to grant %q, which cannot take them", r.GrantID))
			}
			delete(l.Depleted, r.GrantID)
			g.Remaining, g.Held = r.Amount, decimal.Zero
			l.insertGrant(g)
		}
		l.Unallocated = add(l.Unallocated, left)
	case GrantVoided:
		i := l.mustGrant(e.GrantID, "void")
		l.Adjusted = sub(l.Adjusted, e.Amount)
		l.Grants[i].Remaining = sub(l.Grants[i].Remaining, e.Amount)
		l.Grants[i].Voided = true
		l.dropEmpty()
	case GrantExpiryChanged:
		i := l.mustGrant(e.GrantID, "expiry change")
		g := l.Grants[i]
		g.ExpiresAt = e.ExpiresAt
		l.Grants = slices.Delete(l.Grants, i, i+1)
		l.insertGrant(g)
	case SubscriptionStarted:
		l.Subscriptions[e.SubscriptionID] = subscriptionOf(e)
	case SubscriptionCanceled:
		s := l.Subscriptions[e.SubscriptionID]
		ends := e.EndsAt
		s.CancelAt = &ends
		// A subscription canceled with nothing allocated allocates
		// nothing. Due work runs before any write is decided, so a cancel
		// finds every period started by then allocated; nothing is, only
		// when the first allocation, the period holding the creation
		// (those before it are never allocated), was refused by the
		// totals limit, which ended the subscription at that period's
		// start. SubscriptionStarted does not record that period: without
		// this, the periods before it counted as due.
		if s.Granted == 0 {
			s.Granted = max(s.PeriodAt(ends), 0)
		}
		l.Subscriptions[e.SubscriptionID] = s
	default:
		panic(fmt.Sprintf("line cannot apply %T", e))
	}
	l.rearm()
}

// allocationIndex is the period index at the end of a subscription
// allocation's id (subscription:<id>:<n>); prev when it has none.
func allocationIndex(grantID string, prev int) int {
	i := strings.LastIndexByte(grantID, ':')
	if i < 0 {
		return prev
	}
	n, err := strconv.Atoi(grantID[i+1:])
	if err != nil {
		return prev
	}
	return n
}

func (l *Line) mustHold(id string) Hold {
	h, ok := l.Reservations[id]
	if !ok {
		panic(fmt.Sprintf("reservation %q is not open", id))
	}
	return h
}

// CheckInvariants returns an error when the state breaks a rule that Apply
// must keep: the balance equals the grants' remaining plus the unallocated
// balance, reserved equals the open holds, and no grant is overdrawn.
func (l *Line) CheckInvariants() error {
	sum := l.Unallocated
	for i, g := range l.Grants {
		if !g.Remaining.IsPositive() || g.Remaining.GreaterThan(g.Original) {
			return fmt.Errorf("grant %s remaining %s outside (0, %s]", g.GrantID, g.Remaining, g.Original)
		}
		if g.Held.IsNegative() || g.Held.GreaterThan(g.Remaining) {
			return fmt.Errorf("grant %s held %s outside [0, %s]", g.GrantID, g.Held, g.Remaining)
		}
		if i > 0 && burnsBefore(g, l.Grants[i-1]) {
			return fmt.Errorf("grants out of burn-down order at %s", g.GrantID)
		}
		sum = sum.Add(g.Remaining)
	}
	if !sum.Equal(l.Balance()) {
		return fmt.Errorf("balance %s != grants remaining + unallocated %s", l.Balance(), sum)
	}
	held := decimal.Zero
	for _, h := range l.Reservations {
		held = held.Add(h.Amount)
	}
	if !held.Equal(l.Reserved) {
		return fmt.Errorf("reserved %s != open holds %s", l.Reserved, held)
	}
	pinned := map[string]decimal.Decimal{}
	for _, h := range l.Reservations {
		for _, p := range h.Pinned {
			if p.GrantID != "" {
				pinned[p.GrantID] = pinned[p.GrantID].Add(p.Amount)
			}
		}
	}
	for _, g := range l.Grants {
		if !g.Held.Equal(pinned[g.GrantID]) {
			return fmt.Errorf("grant %s held %s != pinned by open holds %s", g.GrantID, g.Held, pinned[g.GrantID])
		}
	}
	return nil
}
