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
	return e.RecordUsageBatch(ctx, tenantID, "", events)
}

// recordUsageBatch is RecordUsage with the whole batch keyed by batchKey
// (domain.UsageBatch) when it is not empty: a repeat of the key with the
// same events answers each event's original outcome as a duplicate; with
// other events the call's error is domain.ErrIdempotencyConflict and
// nothing is appended. An invalid key is a *domain.FieldError.
func (e *Engine) recordUsageBatch(ctx context.Context, tenantID int64, batchKey string, events []UsageEvent) ([]Result, error) {
	if len(events) == 0 || len(events) > UsageBatchMax {
		return nil, fmt.Errorf("%w: a batch holds 1 to %d events", domain.ErrInvalidCommand, UsageBatchMax)
	}
	ops := make([]op, len(events), len(events)+1)
	checked := make([]domain.CheckedUsage, len(events))
	for i, ev := range events {
		var err error
		checked[i], err = ev.Check()
		if err := errors.Join(domain.ValidateCreditType(ev.CreditType), err); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		ops[i] = op{
			creditType:  ev.CreditType,
			key:         makeKey(tenantID, kindUsage, ev.UsageID),
			fingerprint: lineFingerprint(checked[i].Fingerprint(), ev.CreditType),
			usage:       &checked[i],
		}
	}
	if batchKey != "" {
		batch, err := usageBatchOp(tenantID, batchKey, events, ops)
		if err != nil {
			return nil, err
		}
		// First, so that a conflict is decided before any event (see
		// op.guards).
		ops = append([]op{batch}, ops...)
	}
	r := newRequest(tenantID, ops)
	if err := e.submit(ctx, r); err != nil {
		return nil, err
	}
	if batchKey == "" {
		return r.results, nil
	}
	if err := r.results[0].Err; err != nil {
		return nil, err
	}
	return r.results[1:], nil
}

// usageBatchOp is the op recording a batch's key, on the line of its first
// event. Its fingerprint is made of the events' own (ops), which already
// bind each to its line.
func usageBatchOp(tenantID int64, key string, events []UsageEvent, ops []op) (op, error) {
	b := domain.UsageBatch{Key: key, Fingerprints: make([]uint64, len(ops))}
	for i, o := range ops {
		b.Fingerprints[i] = o.fingerprint
	}
	if err := b.Validate(); err != nil {
		return op{}, err
	}
	return op{
		creditType:  events[0].CreditType,
		key:         makeKey(tenantID, kindUsageBatch, key),
		fingerprint: lineFingerprint(b.Fingerprint(), events[0].CreditType),
		guards:      true,
		decide:      func(decision) ([]domain.Event, error) { return domain.DecideUsageBatch(b) },
	}, nil
}
