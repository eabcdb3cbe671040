package commands

import (
	"context"

	"github.com/creditd/creditd/domain"
)

// releaseFingerprint: a release has no body, so every release of the same
// reservation is the same request.
const releaseFingerprint = 1

// release ends a reservation without a debit. Releasing again returns the
// original outcome. Errors: domain.ErrReservationNotFound,
// domain.ErrReservationClosed (captured or expired), ErrTenantNotFound,
// ErrUnavailable, ErrContention.
//
// An empty creditType means the line holding the reservation.
func (e *Engine) release(ctx context.Context, tenantID int64, creditType, reservationID string) (Result, error) {
	if creditType == "" {
		var err error
		if creditType, err = e.reservationLine(ctx, tenantID, reservationID); err != nil {
			return Result{}, err
		}
	}
	return e.single(ctx, tenantID, op{
		creditType:  creditType,
		key:         makeKey(tenantID, kindRelease, reservationID),
		fingerprint: lineFingerprint(releaseFingerprint, creditType),
		decide: func(d decision) ([]domain.Event, error) {
			events, err := domain.DecideRelease(d.line, reservationID, domain.ReleaseReleased, d.now)
			return events, closedIfKnown(err, d, reservationID)
		},
	})
}
