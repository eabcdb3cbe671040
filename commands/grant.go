package commands

import (
	"context"

	"github.com/creditd/creditd/domain"
)

// grant adds credits to a tenant's line. A repeat of the same grant id
// returns the original outcome (Duplicate) and appends nothing. Errors:
// *domain.FieldError, domain.ErrIdempotencyConflict, ErrTenantNotFound,
// ErrUnavailable, ErrContention.
func (e *Engine) grant(ctx context.Context, tenantID int64, creditType string, c domain.Grant) (Result, error) {
	if err := c.Validate(); err != nil {
		return Result{}, err
	}
	return e.single(ctx, tenantID, op{
		creditType:  creditType,
		key:         makeKey(tenantID, kindGrant, c.GrantID),
		fingerprint: lineFingerprint(c.Fingerprint(), creditType),
		grants:      []string{c.GrantID},
		decide:      func(d decision) ([]domain.Event, error) { return domain.DecideGrant(d.line, c, d.now) },
	})
}
