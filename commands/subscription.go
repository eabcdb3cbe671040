package commands

import (
	"context"

	"github.com/creditd/creditd/domain"
)

// startSubscription starts allocating credits every period on a line.
// Errors: *domain.FieldError, domain.ErrIdempotencyConflict,
// ErrTenantNotFound, ErrUnavailable, ErrContention.
func (e *Engine) startSubscription(ctx context.Context, tenantID int64, creditType string, c domain.StartSubscription) (Result, error) {
	if err := c.Validate(); err != nil {
		return Result{}, err
	}
	return e.single(ctx, tenantID, op{
		creditType:  creditType,
		key:         makeKey(tenantID, kindSubscribe, c.SubscriptionID),
		fingerprint: lineFingerprint(c.Fingerprint(), creditType),
		decide:      func(d decision) ([]domain.Event, error) { return domain.DecideStartSubscription(d.line, c, d.now) },
	})
}

// cancelSubscription ends a subscription at the end of its current period.
// Canceling again returns the original outcome. Errors:
// domain.ErrSubscriptionNotFound, ErrTenantNotFound, ErrUnavailable,
// ErrContention.
//
// An empty creditType means the line the subscription was started on.
func (e *Engine) cancelSubscription(ctx context.Context, tenantID int64, creditType, subscriptionID string) (Result, error) {
	if creditType == "" {
		var err error
		if creditType, err = e.lineOf(ctx, tenantID, kindSubscribe, subscriptionID); err != nil {
			return Result{}, err
		}
	}
	return e.single(ctx, tenantID, op{
		creditType:  creditType,
		key:         makeKey(tenantID, kindUnsubscribe, subscriptionID),
		fingerprint: lineFingerprint(1, creditType),
		decide: func(d decision) ([]domain.Event, error) {
			return domain.DecideCancelSubscription(d.line, subscriptionID, d.now)
		},
	})
}
