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

// DecideReserve holds the amount. It returns ErrInsufficientCredits when the
// amount exceeds what the line can spend now.
func DecideReserve(l *Line, c Reserve, now time.Time) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if _, open := l.Reservations[c.ReservationID]; open {
		return nil, &FieldError{Location: "reservation_id", Message: "is already an open reservation of this line", Value: c.ReservationID}
	}
	if c.Amount.GreaterThan(l.Spendable(now)) {
		return nil, fmt.Errorf("%w: reservation of %s exceeds %s spendable", ErrInsufficientCredits, c.Amount, l.Spendable(now))
	}
	ttl := c.TTL
	if ttl == 0 {
		ttl = ReservationTTLDefault
	}
	events := []Event{CreditsReserved{
		ReservationID: c.ReservationID, Amount: c.Amount, ExpiresAt: now.Add(ttl).UTC(),
		Dimensions: c.Dimensions, Fingerprint: c.Fingerprint(),
	}}
	return append(events, autoReloadAfter(l, c.Amount, "reservation:"+c.ReservationID, now)...), nil
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
	f.str("capture").str(c.ReservationID)
	if c.Amount != nil {
		f.dec(*c.Amount)
	} else {
		f.str("all")
	}
	return f.sum()
}

// DecideCapture returns the ReservationCaptured event. Errors:
// ErrReservationNotFound when the line holds no such open reservation,
// ErrCaptureExceedsHold, or a FieldError for a malformed amount. The hold was
// already counted against available, so a capture never fails for lack of
// credits: what the active grants cannot pay falls to the unallocated balance.
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
	// Plan the burn as if the hold were already gone: its credits are the
	// ones this capture spends.
	return []Event{ReservationCaptured{
		ReservationID: c.ReservationID, Amount: amount, Released: h.Amount.Sub(amount),
		Burned: l.planBurn(amount, now), Fingerprint: c.Fingerprint(),
	}}, nil
}

// DecideRelease ends a hold without a debit. It returns ErrReservationNotFound
// when the line holds no such open reservation.
func DecideRelease(l *Line, reservationID string, reason ReleaseReason) ([]Event, error) {
	h, ok := l.Reservations[reservationID]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrReservationNotFound, reservationID)
	}
	return []Event{ReservationReleased{ReservationID: reservationID, Amount: h.Amount, Reason: reason}}, nil
}
