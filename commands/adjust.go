package commands

import (
	"context"

	"github.com/creditd/creditd/domain"
)

// adjust corrects a line by a signed amount. Errors: *domain.FieldError,
// domain.ErrIdempotencyConflict, ErrTenantNotFound, ErrUnavailable,
// ErrContention.
func (e *Engine) adjust(ctx context.Context, tenantID int64, creditType string, c domain.Adjust) (Result, error) {
	if err := c.Validate(); err != nil {
		return Result{}, err
	}
	return e.single(ctx, tenantID, op{
		creditType:  creditType,
		key:         makeKey(tenantID, kindAdjustment, c.AdjustmentID),
		fingerprint: lineFingerprint(c.Fingerprint(), creditType),
		decide:      func(d decision) ([]domain.Event, error) { return domain.DecideAdjust(d.line, c, d.now) },
	})
}
