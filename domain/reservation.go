package domain

import (
	"fmt"
	"time"

	"github.com/shopspring/decimal"
)

// Reservation TTL bounds: a hold must end by itself, and soon enough that a
// crashed client does not lock credits for long.
const (
	ReservationTTLDefault = 5 * time.Minute
	ReservationTTLMax     = 7 * 24 * time.Hour
)

// Reserve holds credits for work whose cost is known only afterwards.
type Reserve struct {
	ReservationID string
	Amount        decimal.Decimal
	// TTL is how long the hold lasts; zero means ReservationTTLDefault.
	TTL        time.Duration
	Dimensions Dimensions
}

// Validate reports every malformed field at once.
func (c Reserve) Validate() error {
	var v validator
	v.id("reservation_id", c.ReservationID, true)
	v.amount("amount", c.Amount, ValidatePositive)
	if c.TTL < 0 || c.TTL > ReservationTTLMax {
		v.add("ttl_seconds", fmt.Sprintf("must be between 0 (the default, %d s) and %d", int(ReservationTTLDefault.Seconds()), int(ReservationTTLMax.Seconds())), int64(c.TTL.Seconds()))
	}
	v.dimensions(c.Dimensions)
	return v.err()
}

// Fingerprint identifies the request for idempotency.
func (c Reserve) Fingerprint() uint64 {
	var f fingerprinter
	return f.str("reserve").str(c.ReservationID).dec(c.Amount).str(c.TTL.String()).dimensions(c.Dimensions).sum()
}

// DecideReserve holds the amount, pinning it to the grants that would pay
// for it now. An amount beyond what the line can spend is refused and
// recorded (ReservationRejected), after an armed auto-reload had its
// chance, as for usage.
func DecideReserve(l *Line, c Reserve, now time.Time) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if _, open := l.Reservations[c.ReservationID]; open {
		return nil, &FieldError{Location: "reservation_id", Message: "is already an open reservation of this line", Value: c.ReservationID}
	}
	trigger := "reservation:" + c.ReservationID
	line, events := reloadFirst(l, c.Amount, trigger, now)
	reloaded := len(events) > 0
	if c.Amount.GreaterThan(line.Spendable(now)) {
		return append(events, ReservationRejected{ReservationID: c.ReservationID, Amount: c.Amount, Dimensions: c.Dimensions,
			Reason: RejectInsufficientCredits, Fingerprint: c.Fingerprint()}), nil
	}
	ttl := c.TTL
	if ttl == 0 {
		ttl = ReservationTTLDefault
	}
	events = append(events, CreditsReserved{
		ReservationID: c.ReservationID, Amount: c.Amount, ExpiresAt: now.Add(ttl).UTC(),
		Dimensions: c.Dimensions, Pinned: line.planPins(c.Amount, now), Fingerprint: c.Fingerprint(),
	})
	if !reloaded {
		// One reload per write at most: its id is the write's.
		events = append(events, autoReloadAfter(line, c.Amount, trigger, now)...)
	}
	if err := checkTotals(l, events, "amount"); err != nil {
		return nil, err
	}
	return events, nil
}

// Capture turns (part of) a hold into a debit. Amount nil captures all held;
// the rest of the hold is released in the same event.
type Capture struct {
	ReservationID string
	Amount        *decimal.Decimal
}

// Fingerprint identifies the request for idempotency.
func (c Capture) Fingerprint() uint64 {
	var f fingerprinter
	f = f.str("capture").str(c.ReservationID)
	if c.Amount != nil {
		f = f.dec(*c.Amount)
	} else {
		f = f.str("all")
	}
	return f.sum()
}

// DecideCapture returns the ReservationCaptured event, spending the credits
// the hold pinned in pin order, and forfeits what the rest of the hold gives
// back to grants expired or voided since. Errors: ErrReservationNotFound
// when the line holds no such open reservation, ErrReservationClosed past
// its TTL, ErrCaptureExceedsHold, or a FieldError for a malformed amount or
// one that would take the used total past LineTotalMax. The hold was
// already counted against available, so a capture never fails for lack of
// credits.
func DecideCapture(l *Line, c Capture, now time.Time) ([]Event, error) {
	h, ok := l.Reservations[c.ReservationID]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrReservationNotFound, c.ReservationID)
	}
	if !now.Before(h.ExpiresAt) {
		// Past its TTL: the sweeper is about to release it.
		return nil, fmt.Errorf("%w: %s expired at %s", ErrReservationClosed, c.ReservationID, h.ExpiresAt.Format(time.RFC3339))
	}
	amount := h.Amount
	if c.Amount != nil {
		if err := ValidateNonNegative(*c.Amount); err != nil {
			return nil, &FieldError{Location: "amount", Message: err.Error(), Value: c.Amount.String()}
		}
		if c.Amount.GreaterThan(h.Amount) {
			return nil, fmt.Errorf("%w: %s > %s held", ErrCaptureExceedsHold, c.Amount, h.Amount)
		}
		amount = *c.Amount
	}
	var burns, rest []Burn
	if len(h.Pinned) == 0 {
		// A hold from before pinning: planned as if the hold were already
		// gone, its credits being the ones this capture spends.
		burns = l.planBurn(amount, now)
	} else {
		burns, rest = spendPins(h.Pinned, amount)
	}
	events := []Event{ReservationCaptured{
		ReservationID: c.ReservationID, Amount: amount, Released: h.Amount.Sub(amount),
		Burned: burns, Fingerprint: c.Fingerprint(),
	}}
	events = append(events, forfeits(l, rest, "capture:"+c.ReservationID, now)...)
	// A hold counts in the reserved total, a capture moves it to the used
	// one, which must stay within LineTotalMax too: past it, the line
	// would refuse every later write that adds to a total.
	if err := checkTotals(l, events, "amount"); err != nil {
		return nil, err
	}
	return events, nil
}

// spendPins spends amount from pins in order: burns are the grants' parts
// spent (the no-grant part is spent from the unallocated balance), rest what
// each pin gives back.
func spendPins(pins []Burn, amount decimal.Decimal) (burns, rest []Burn) {
	left := amount
	for _, p := range pins {
		take := decimal.Min(left, p.Amount)
		left = left.Sub(take)
		if p.GrantID != "" && take.IsPositive() {
			burns = append(burns, Burn{GrantID: p.GrantID, Amount: take})
		}
		if back := p.Amount.Sub(take); back.IsPositive() {
			rest = append(rest, Burn{GrantID: p.GrantID, Amount: back})
		}
	}
	return burns, rest
}

// DecideRelease ends a hold without a debit, and forfeits what it gives
// back to grants expired or voided since it was made. It returns
// ErrReservationNotFound when the line holds no such open reservation.
func DecideRelease(l *Line, reservationID string, reason ReleaseReason, now time.Time) ([]Event, error) {
	h, ok := l.Reservations[reservationID]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrReservationNotFound, reservationID)
	}
	events := []Event{ReservationReleased{ReservationID: reservationID, Amount: h.Amount, Reason: reason}}
	return append(events, forfeits(l, h.Pinned, "reservation:"+reservationID, now)...), nil
}
