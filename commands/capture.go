package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/creditd/creditd/domain"
)

// capture turns a reservation (or part of it) into a debit and releases the
// rest. Capturing again with the same amount returns the original outcome.
// Errors: domain.ErrReservationNotFound, domain.ErrReservationClosed
// (released, expired or captured with another amount),
// domain.ErrCaptureExceedsHold, *domain.FieldError, ErrTenantNotFound,
// ErrUnavailable, ErrContention.
//
// An empty creditType means the line holding the reservation.
func (e *Engine) capture(ctx context.Context, tenantID int64, creditType string, c domain.Capture) (Result, error) {
	if creditType == "" {
		var err error
		if creditType, err = e.reservationLine(ctx, tenantID, c.ReservationID); err != nil {
			return Result{}, err
		}
	}
	res, err := e.single(ctx, tenantID, op{
		creditType:  creditType,
		key:         makeKey(tenantID, kindCapture, c.ReservationID),
		fingerprint: lineFingerprint(c.Fingerprint(), creditType),
		decide: func(d decision) ([]domain.Event, error) {
			events, err := domain.DecideCapture(d.line, c, d.now)
			return events, closedIfKnown(err, d, c.ReservationID)
		},
	})
	if errors.Is(err, domain.ErrIdempotencyConflict) {
		// Captured before with another amount: the reservation is closed.
		return res, fmt.Errorf("%w: %s was captured already", domain.ErrReservationClosed, c.ReservationID)
	}
	return res, err
}

// closedIfKnown turns "not found" into "closed" for a reservation that was
// held on this line: the line only keeps open holds. One held on another
// line, or refused, stays not found.
func closedIfKnown(err error, d decision, reservationID string) error {
	if !errors.Is(err, domain.ErrReservationNotFound) {
		return err
	}
	known, lookupErr := d.knownOn(kindReservation, reservationID)
	switch {
	case lookupErr != nil:
		return lookupErr
	case known:
		return fmt.Errorf("%w: %s", domain.ErrReservationClosed, reservationID)
	}
	return err
}
