package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/creditd/creditd/domain"
)

// UsageBatchMax bounds the events of one RecordUsage call.
const UsageBatchMax = 1000

// UsageEvent is one metered consumption for a line.
type UsageEvent struct {
	CreditType string
	domain.RecordUsage
}

// RecordUsage debits usage events, each idempotent by its id, all in one
// commit. Each event gets its own Result: accepted, duplicate, or rejected
// with a reason (recorded as DebitRejected); an id reused with another body
// gets Err domain.ErrIdempotencyConflict and appends nothing. The events
// must be valid (Validate); the call's error is ErrTenantNotFound,
// ErrUnavailable, ErrContention or ErrCommitTooLarge.
func (e *Engine) RecordUsage(ctx context.Context, tenantID int64, events []UsageEvent) ([]Result, error) {
	if len(events) == 0 || len(events) > UsageBatchMax {
		return nil, fmt.Errorf("%w: a batch holds 1 to %d events", domain.ErrInvalidCommand, UsageBatchMax)
	}
	ops := make([]op, len(events))
	for i, ev := range events {
		if err := errors.Join(domain.ValidateCreditType(ev.CreditType), ev.Validate()); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		ops[i] = op{
			creditType:  ev.CreditType,
			key:         makeKey(tenantID, kindUsage, ev.UsageID),
			fingerprint: lineFingerprint(ev.Fingerprint(), ev.CreditType),
			decide:      func(d decision) ([]domain.Event, error) { return domain.DecideUsage(d.line, ev.RecordUsage, d.now) },
		}
	}
	r := newRequest(tenantID, ops)
	if err := e.submit(ctx, r); err != nil {
		return nil, err
	}
	return r.results, nil
}
