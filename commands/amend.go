package commands

import (
	"context"

	"github.com/creditd/creditd/domain"
)

// voidGrant takes a grant's remaining credits off the balance. Voiding
// again returns the original outcome. An empty creditType means the line
// the grant was made on. Errors: domain.ErrGrantNotFound, *domain.FieldError,
// ErrTenantNotFound, ErrUnavailable, ErrContention.
func (e *Engine) voidGrant(ctx context.Context, tenantID int64, creditType string, c domain.VoidGrant) (Result, error) {
	creditType, err := e.grantLine(ctx, tenantID, creditType, c.GrantID)
	if err != nil {
		return Result{}, err
	}
	return e.single(ctx, tenantID, op{
		creditType:  creditType,
		key:         makeKey(tenantID, kindVoid, c.GrantID),
		fingerprint: lineFingerprint(c.Fingerprint(), creditType),
		decide:      func(d decision) ([]domain.Event, error) { return domain.DecideVoidGrant(d.line, c) },
	})
}

// changeGrantExpiry moves a grant's expiry (nil: never). Setting the
// expiry it has appends nothing. Errors: domain.ErrGrantNotFound,
// *domain.FieldError, ErrTenantNotFound, ErrUnavailable, ErrContention.
func (e *Engine) changeGrantExpiry(ctx context.Context, tenantID int64, creditType string, c domain.ChangeGrantExpiry) (Result, error) {
	creditType, err := e.grantLine(ctx, tenantID, creditType, c.GrantID)
	if err != nil {
		return Result{}, err
	}
	return e.single(ctx, tenantID, op{
		creditType: creditType,
		grants:     []string{c.GrantID},
		decide:     func(d decision) ([]domain.Event, error) { return domain.DecideChangeGrantExpiry(d.line, c, d.now) },
	})
}

func (e *Engine) grantLine(ctx context.Context, tenantID int64, creditType, grantID string) (string, error) {
	if creditType != "" {
		return creditType, nil
	}
	return e.lineOf(ctx, tenantID, kindGrant, grantID)
}
