package domain

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Period is a subscription's allocation period.
type Period string

// PeriodMonthly allocates on the same day of every month (the last day of
// a shorter month when the start day does not exist in it).
const PeriodMonthly Period = "monthly"

// SubscriptionGrantPrefix starts the id of every subscription allocation:
// subscription:<subscription id>:<period index from 0>. Client grant ids
// may not use it.
const SubscriptionGrantPrefix = "subscription:"

// subscriptionGrantsPerSweepMax bounds the allocations one decision may
// catch up on (a subscription started far in the past).
const subscriptionGrantsPerSweepMax = 120

// Subscription is a subscription's state on its line.
type Subscription struct {
	ID               string
	CreditsPerPeriod decimal.Decimal
	StartsAt         time.Time
	Rollover         bool
	PriceAmount      *decimal.Decimal
	PriceCurrency    string
	// CancelAt is when a canceled subscription ends (a period end).
	CancelAt *time.Time
	// Granted counts the periods allocated so far.
	Granted int
}

// PeriodStart is the start of period n (0 is StartsAt).
func (s Subscription) PeriodStart(n int) time.Time {
	return addMonthsClamped(s.StartsAt, n)
}

// PeriodAt returns the index of the period holding t, or -1 before the start.
func (s Subscription) PeriodAt(t time.Time) int {
	if t.Before(s.StartsAt) {
		return -1
	}
	months := (t.Year()-s.StartsAt.Year())*12 + int(t.Month()-s.StartsAt.Month())
	n := max(months-1, 0)
	for !s.PeriodStart(n + 1).After(t) {
		n++
	}
	return n
}

// Active reports whether the subscription allocates at t.
func (s Subscription) Active(t time.Time) bool {
	return !t.Before(s.StartsAt) && (s.CancelAt == nil || t.Before(*s.CancelAt))
}

// addMonthsClamped adds n months keeping the day of month, clamped to the
// last day of shorter months (Jan 31 → Feb 28 → Mar 31).
func addMonthsClamped(t time.Time, n int) time.Time {
	t = t.UTC()
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(n), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(d, last)-1)
}

// StartSubscription starts allocating credits every period.
type StartSubscription struct {
	SubscriptionID   string
	CreditsPerPeriod decimal.Decimal
	Period           Period
	// StartsAt is the first period's start; zero means now.
	StartsAt      time.Time
	PriceAmount   *decimal.Decimal
	PriceCurrency string
	Rollover      bool
}

// Validate reports every malformed field at once.
func (c StartSubscription) Validate() error {
	var v validator
	v.id("subscription_id", c.SubscriptionID, true)
	v.amount("credits_per_period", c.CreditsPerPeriod, ValidatePositive)
	if c.Period != PeriodMonthly {
		v.add("period", "must be monthly", string(c.Period))
	}
	if c.PriceAmount != nil {
		v.amount("price.amount", *c.PriceAmount, ValidateNonNegative)
		if len(c.PriceCurrency) != 3 || strings.ToUpper(c.PriceCurrency) != c.PriceCurrency {
			v.add("price.currency", "must be a three-letter ISO 4217 code", c.PriceCurrency)
		}
	}
	return v.err()
}

// Fingerprint identifies the request for idempotency.
func (c StartSubscription) Fingerprint() uint64 {
	var f fingerprinter
	f = f.str("subscription").str(c.SubscriptionID).dec(c.CreditsPerPeriod).str(string(c.Period)).time(c.StartsAt)
	if c.PriceAmount != nil {
		f = f.dec(*c.PriceAmount).str(c.PriceCurrency)
	} else {
		f = f.str("-")
	}
	return f.str(strconv.FormatBool(c.Rollover)).sum()
}

// DecideStartSubscription records the subscription and allocates the
// current period, when it has started. Periods that ended before now are
// not allocated: they would be granted and expired in the same instant,
// inflating both totals with credits nobody could spend.
func DecideStartSubscription(l *Line, c StartSubscription, now time.Time) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if _, ok := l.Subscriptions[c.SubscriptionID]; ok {
		return nil, &FieldError{Location: "subscription_id", Message: "is already a subscription of this line", Value: c.SubscriptionID}
	}
	starts := c.StartsAt
	if starts.IsZero() {
		starts = now
	}
	started := SubscriptionStarted{SubscriptionID: c.SubscriptionID, CreditsPerPeriod: c.CreditsPerPeriod, Period: c.Period,
		StartsAt: starts.UTC(), PriceAmount: c.PriceAmount, PriceCurrency: c.PriceCurrency, Rollover: c.Rollover, Fingerprint: c.Fingerprint()}
	sub := subscriptionOf(started)
	sub.Granted = max(sub.PeriodAt(now), 0)
	// An allocation past the totals limit ends the subscription instead,
	// as for every later allocation (dueAllocations).
	return append([]Event{started}, dueAllocations(l, sub, now)...), nil
}

// DecideCancelSubscription ends a subscription at the end of its current
// period (at its start, if it has not started). Errors:
// ErrSubscriptionNotFound, ErrSubscriptionCanceled.
func DecideCancelSubscription(l *Line, subscriptionID string, now time.Time) ([]Event, error) {
	s, ok := l.Subscriptions[subscriptionID]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrSubscriptionNotFound, subscriptionID)
	}
	if s.CancelAt != nil {
		return nil, fmt.Errorf("%w: %s ends at %s", ErrSubscriptionCanceled, subscriptionID, s.CancelAt.Format(time.RFC3339))
	}
	ends := s.StartsAt
	if n := s.PeriodAt(now); n >= 0 {
		ends = s.PeriodStart(n + 1)
	}
	return []Event{SubscriptionCanceled{SubscriptionID: subscriptionID, EndsAt: ends}}, nil
}

func subscriptionOf(e SubscriptionStarted) Subscription {
	return Subscription{ID: e.SubscriptionID, CreditsPerPeriod: e.CreditsPerPeriod, StartsAt: e.StartsAt, Rollover: e.Rollover,
		PriceAmount: e.PriceAmount, PriceCurrency: e.PriceCurrency}
}

// dueAllocations returns the grants of the periods that have started by
// now and not been allocated, up to a cancellation. An allocation that
// would take the line's granted total past LineTotalMax ends the
// subscription at that period's start instead.
func dueAllocations(l *Line, s Subscription, now time.Time) []Event {
	var events []Event
	for n := s.Granted; len(events) < subscriptionGrantsPerSweepMax; n++ {
		start := s.PeriodStart(n)
		if start.After(now) || (s.CancelAt != nil && !start.Before(*s.CancelAt)) {
			break
		}
		probe := CreditsGranted{Amount: s.CreditsPerPeriod}
		if checkTotals(l, append(slices.Clip(events), probe), "") != nil {
			return append(events, SubscriptionCanceled{SubscriptionID: s.ID, EndsAt: start})
		}
		end := s.PeriodStart(n + 1)
		g := CreditsGranted{
			GrantID: SubscriptionGrantPrefix + s.ID + ":" + strconv.Itoa(n), Amount: s.CreditsPerPeriod, Source: SourceSubscription,
			EffectiveAt: start, Description: fmt.Sprintf("subscription %s, period %d", s.ID, n+1), SubscriptionID: s.ID,
		}
		if !s.Rollover {
			g.ExpiresAt = &end
		}
		if s.PriceAmount != nil {
			cost := s.PriceAmount.DivRound(s.CreditsPerPeriod, AmountScaleMax)
			g.CostPerCredit, g.Currency = &cost, s.PriceCurrency
		}
		events = append(events, g)
	}
	return events
}

// nextAllocation is when the subscription allocates next, false if never.
func (s Subscription) nextAllocation() (time.Time, bool) {
	next := s.PeriodStart(s.Granted)
	if s.CancelAt != nil && !next.Before(*s.CancelAt) {
		return time.Time{}, false
	}
	return next, true
}
