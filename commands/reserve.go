package commands

import (
	"context"
	"fmt"

	"github.com/creditd/creditd/domain"
)

// reserve holds credits on a line. A refusal is recorded, so a retry of the
// same reservation id answers it again. Errors: domain.ErrInsufficientCredits,
// *domain.FieldError, domain.ErrIdempotencyConflict, ErrTenantNotFound,
// ErrUnavailable, ErrContention.
func (e *Engine) reserve(ctx context.Context, tenantID int64, creditType string, c domain.Reserve) (Result, error) {
	if err := c.Validate(); err != nil {
		return Result{}, err
	}
	res, err := e.single(ctx, tenantID, op{
		creditType:  creditType,
		key:         makeKey(tenantID, kindReservation, c.ReservationID),
		fingerprint: lineFingerprint(c.Fingerprint(), creditType),
		decide:      func(d decision) ([]domain.Event, error) { return domain.DecideReserve(d.line, c, d.now) },
	})
	if err == nil && res.Status == StatusRejected {
		return res, fmt.Errorf("%w: reservation %s of %s was refused", domain.ErrInsufficientCredits, c.ReservationID, c.Amount)
	}
	return res, err
}
