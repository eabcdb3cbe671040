package commands

import (
	"context"
	"fmt"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// reverseUsage gives an accepted usage debit's credits back to the grants
// that paid for it. Reversing again returns the original outcome. Errors:
// domain.ErrUsageNotFound, *domain.FieldError, ErrTenantNotFound,
// ErrUnavailable, ErrContention.
func (e *Engine) reverseUsage(ctx context.Context, tenantID int64, c domain.ReverseUsage) (Result, error) {
	original, creditType, err := e.originalDebit(ctx, tenantID, c.UsageID)
	if err != nil {
		return Result{}, err
	}
	return e.single(ctx, tenantID, op{
		creditType:  creditType,
		key:         makeKey(tenantID, kindReverse, c.UsageID),
		fingerprint: lineFingerprint(c.Fingerprint(), creditType),
		grants:      grantIDs(original.Burned),
		decide:      func(d decision) ([]domain.Event, error) { return domain.DecideReverseUsage(d.line, c, original, d.now) },
	})
}

// originalDebit reads an accepted usage debit back from the commit that
// holds it (the write model keeps ids and positions, not every debit).
func (e *Engine) originalDebit(ctx context.Context, tenantID int64, usageID string) (domain.UsageDebited, string, error) {
	var found outcome
	var known bool
	var lookupErr error
	r := &request{tenantID: tenantID, done: make(chan error, 1), inspect: func(p *partition) {
		found, known, lookupErr = p.outcomeOf(makeKey(tenantID, kindUsage, usageID))
	}}
	if err := e.submit(ctx, r); err != nil {
		return domain.UsageDebited{}, "", err
	}
	if lookupErr != nil {
		return domain.UsageDebited{}, "", fmt.Errorf("%w: %v", ErrUnavailable, lookupErr)
	}
	if !known || found.status != outcomeAccepted {
		return domain.UsageDebited{}, "", fmt.Errorf("%w: no accepted usage %q", domain.ErrUsageNotFound, usageID)
	}
	msg, err := e.loader.Load(ctx, found.position)
	if err != nil {
		return domain.UsageDebited{}, "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	commit, err := eventstore.DecodeCommit(msg.Data)
	if err != nil {
		return domain.UsageDebited{}, "", err
	}
	for _, env := range commit.Events {
		if u, ok := env.Event.(domain.UsageDebited); ok && env.TenantID == tenantID && u.UsageID == usageID {
			return u, env.CreditType, nil
		}
	}
	return domain.UsageDebited{}, "", fmt.Errorf("commit %d holds no usage %q", found.position, usageID)
}
