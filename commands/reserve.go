package commands

import (
	"context"

	"github.com/creditd/creditd/domain"
)

// Reserve holds credits on a line. Errors: domain.ErrInsufficientCredits,
// *domain.FieldError, domain.ErrIdempotencyConflict, ErrTenantNotFound,
// ErrUnavailable, ErrContention.
func (e *Engine) Reserve(ctx context.Context, tenantID int64, creditType string, c domain.Reserve) (Result, error) {
	if err := c.Validate(); err != nil {
		return Result{}, err
	}
	return e.single(ctx, tenantID, op{
		creditType:  creditType,
		key:         makeKey(tenantID, kindReservation, c.ReservationID),
		fingerprint: lineFingerprint(c.Fingerprint(), creditType),
		decide:      func(d decision) ([]domain.Event, error) { return domain.DecideReserve(d.line, c, d.now) },
	})
}
