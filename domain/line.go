package domain

import (
	"fmt"
	"maps"
	"slices"
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
}

// ActiveAt reports whether the grant may pay for a debit decided at now: at
// or after its effective_at and before its expiry.
func (g GrantBalance) ActiveAt(now time.Time) bool {
	if now.Before(g.EffectiveAt) {
		return false
	}
	return g.ExpiresAt == nil || now.Before(*g.ExpiresAt)
}

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

	// Grants holds every grant with credits left, in burn-down order.
	Grants []GrantBalance
	// Depleted keeps the grants burned down to zero, so a reversed debit
	// can give credits back to the grant that paid for it.
	Depleted      map[string]GrantBalance
	Reservations  map[string]Hold
	Subscriptions map[string]Subscription

	AutoReload AutoReload
	// ReloadArmed is true while available is at or above the threshold (or
	// since the setting changed): the next debit that ends below it reloads,
	// and disarms until available is back at the threshold. That makes one
	// reload per crossing, not one per debit.
	ReloadArmed bool

	grantCount int64
}

// NewLine returns the empty state of a line.
func NewLine(creditType string) *Line {
	return &Line{CreditType: creditType, Reservations: map[string]Hold{}, Subscriptions: map[string]Subscription{}, Depleted: map[string]GrantBalance{}}
}

// Clone returns a deep copy, so a batch can decide on a copy and drop it if
// the commit does not land.
func (l *Line) Clone() *Line {
	c := *l
	c.Grants = slices.Clone(l.Grants)
	c.Reservations = maps.Clone(l.Reservations)
	c.Subscriptions = maps.Clone(l.Subscriptions)
	c.Depleted = maps.Clone(l.Depleted)
	return &c
}

// Balance = granted + adjusted − used − expired.
func (l *Line) Balance() decimal.Decimal {
	return l.Granted.Add(l.Adjusted).Sub(l.Used).Sub(l.Expired)
}

// Available = balance − reserved.
func (l *Line) Available() decimal.Decimal { return l.Balance().Sub(l.Reserved) }

// Spendable is what a debit decided at now may take: the active grants'
// remaining credits plus the unallocated balance, less what is held, plus
// the overdraft limit. Grants not yet effective, or past expiry but not yet
// swept, count in Balance but cannot pay.
func (l *Line) Spendable(now time.Time) decimal.Decimal {
	total := l.Unallocated.Sub(l.Reserved).Add(l.OverdraftLimit)
	for _, g := range l.Grants {
		if g.ActiveAt(now) {
			total = total.Add(g.Remaining)
		}
	}
	return total
}

// planBurn returns the grants that pay for amount at now, in burn-down order.
// What the active grants cannot cover falls to the unallocated balance.
func (l *Line) planBurn(amount decimal.Decimal, now time.Time) []Burn {
	var burns []Burn
	left := amount
	for _, g := range l.Grants {
		if !left.IsPositive() {
			break
		}
		if !g.ActiveAt(now) {
			continue
		}
		take := decimal.Min(left, g.Remaining)
		burns = append(burns, Burn{GrantID: g.GrantID, Amount: take})
		left = left.Sub(take)
	}
	return burns
}

// applyBurn takes amount from the listed grants and the rest from the
// unallocated balance.
func (l *Line) applyBurn(amount decimal.Decimal, burns []Burn) {
	left := amount
	for _, b := range burns {
		i := l.grantIndex(b.GrantID)
		if i < 0 {
			panic(fmt.Sprintf("burn of unknown grant %q", b.GrantID))
		}
		l.Grants[i].Remaining = l.Grants[i].Remaining.Sub(b.Amount)
		left = left.Sub(b.Amount)
	}
	l.Unallocated = l.Unallocated.Sub(left)
	l.Grants = slices.DeleteFunc(l.Grants, func(g GrantBalance) bool {
		if g.Remaining.IsZero() {
			l.Depleted[g.GrantID] = g
			return true
		}
		return false
	})
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

// NextDue is the earliest instant at which a grant or a reservation of the
// line expires, and false when nothing will.
func (l *Line) NextDue() (time.Time, bool) {
	var due time.Time
	found := false
	consider := func(t time.Time) {
		if !found || t.Before(due) {
			due, found = t, true
		}
	}
	for _, g := range l.Grants {
		if g.ExpiresAt != nil {
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
		l.Granted = l.Granted.Add(e.Amount)
		l.grantCount++
		g := GrantBalance{GrantID: e.GrantID, Original: e.Amount, Remaining: e.Amount, Priority: e.Priority,
			EffectiveAt: e.EffectiveAt, ExpiresAt: e.ExpiresAt, Order: l.grantCount}
		l.insertGrant(g)
		if e.Source == SourceAutoReload {
			l.ReloadArmed = false
		}
		if s, ok := l.Subscriptions[e.SubscriptionID]; ok && e.SubscriptionID != "" {
			s.Granted++
			l.Subscriptions[e.SubscriptionID] = s
		}
	case UsageDebited:
		l.Used = l.Used.Add(e.Amount)
		l.applyBurn(e.Amount, e.Burned)
	case DebitRejected:
		// An attempt on record; it moves no credits.
	case CreditsReserved:
		l.Reserved = l.Reserved.Add(e.Amount)
		l.Reservations[e.ReservationID] = Hold{ReservationID: e.ReservationID, Amount: e.Amount, ExpiresAt: e.ExpiresAt, Dimensions: e.Dimensions}
	case ReservationCaptured:
		h := l.mustHold(e.ReservationID)
		l.Reserved = l.Reserved.Sub(h.Amount)
		delete(l.Reservations, e.ReservationID)
		l.Used = l.Used.Add(e.Amount)
		l.applyBurn(e.Amount, e.Burned)
	case ReservationReleased:
		h := l.mustHold(e.ReservationID)
		l.Reserved = l.Reserved.Sub(h.Amount)
		delete(l.Reservations, e.ReservationID)
	case CreditsAdjusted:
		l.Adjusted = l.Adjusted.Add(e.Amount)
		if e.Amount.IsPositive() {
			l.Unallocated = l.Unallocated.Add(e.Amount)
		} else {
			l.applyBurn(e.Amount.Neg(), e.Burned)
		}
	case GrantExpired:
		i := l.grantIndex(e.GrantID)
		if i < 0 {
			panic(fmt.Sprintf("expiry of unknown grant %q", e.GrantID))
		}
		l.Expired = l.Expired.Add(e.Amount)
		l.Grants = slices.Delete(l.Grants, i, i+1)
	case AutoReloadConfigured:
		l.AutoReload = AutoReload{Enabled: e.Enabled, Threshold: e.Threshold, Amount: e.Amount}
		l.ReloadArmed = e.Enabled
	case CreditLineConfigured:
		l.OverdraftLimit = e.OverdraftLimit
	case UsageReversed:
		l.Used = l.Used.Sub(e.Amount)
		left := e.Amount
		for _, r := range e.Returned {
			left = left.Sub(r.Amount)
			if i := l.grantIndex(r.GrantID); i >= 0 {
				l.Grants[i].Remaining = l.Grants[i].Remaining.Add(r.Amount)
				continue
			}
			g, ok := l.Depleted[r.GrantID]
			if !ok {
				panic(fmt.Sprintf("credits returned to grant %q, which cannot take them", r.GrantID))
			}
			delete(l.Depleted, r.GrantID)
			g.Remaining = r.Amount
			l.insertGrant(g)
		}
		l.Unallocated = l.Unallocated.Add(left)
	case GrantVoided:
		i := l.grantIndex(e.GrantID)
		if i < 0 {
			panic(fmt.Sprintf("void of unknown grant %q", e.GrantID))
		}
		l.Adjusted = l.Adjusted.Sub(e.Amount)
		l.Grants = slices.Delete(l.Grants, i, i+1)
	case GrantExpiryChanged:
		i := l.grantIndex(e.GrantID)
		if i < 0 {
			panic(fmt.Sprintf("expiry change of unknown grant %q", e.GrantID))
		}
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
		l.Subscriptions[e.SubscriptionID] = s
	default:
		panic(fmt.Sprintf("line cannot apply %T", e))
	}
	if l.AutoReload.Enabled && l.Available().GreaterThanOrEqual(l.AutoReload.Threshold) {
		l.ReloadArmed = true
	}
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
	return nil
}
