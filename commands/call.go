package commands

import (
	"context"
	"fmt"

	"github.com/creditd/creditd/domain"
)

// A call is one write on one tenant's partition, as a value: the public
// write methods make one and route it (route.go), so the same write runs
// here when this instance owns the partition, or at the owner when
// another instance does (forward.go). Exactly one of the command fields
// is set, the one Method names.
type call struct {
	Method     string
	Tenant     int64
	CreditType string `json:",omitempty"`
	// ID is the reservation (release) or subscription (cancel) named.
	ID string `json:",omitempty"`
	// BatchKey keys a usage batch (RecordUsageBatch).
	BatchKey string `json:",omitempty"`

	Grant      *domain.Grant               `json:",omitempty"`
	Usage      []UsageEvent                `json:",omitempty"`
	Reserve    *domain.Reserve             `json:",omitempty"`
	Capture    *domain.Capture             `json:",omitempty"`
	Adjust     *domain.Adjust              `json:",omitempty"`
	AutoReload *domain.ConfigureAutoReload `json:",omitempty"`
	Line       *domain.ConfigureLine       `json:",omitempty"`
	Subscribe  *domain.StartSubscription   `json:",omitempty"`
	Reverse    *domain.ReverseUsage        `json:",omitempty"`
	Void       *domain.VoidGrant           `json:",omitempty"`
	Expiry     *domain.ChangeGrantExpiry   `json:",omitempty"`
}

// The calls' methods.
const (
	callGrant       = "grant"
	callUsage       = "usage"
	callReserve     = "reserve"
	callCapture     = "capture"
	callRelease     = "release"
	callAdjust      = "adjust"
	callAutoReload  = "auto_reload"
	callLine        = "line"
	callSubscribe   = "subscribe"
	callUnsubscribe = "unsubscribe"
	callReverse     = "reverse"
	callVoid        = "void"
	callExpiry      = "expiry"
)

// exec runs a call on this instance's writers. Every write but a usage
// batch answers one Result.
func (e *Engine) exec(ctx context.Context, c call) ([]Result, error) {
	one := func(res Result, err error) ([]Result, error) { return []Result{res}, err }
	missing := fmt.Errorf("%w: call %q carries no command", domain.ErrInvalidCommand, c.Method)
	switch c.Method {
	case callUsage:
		return e.recordUsageBatch(ctx, c.Tenant, c.BatchKey, c.Usage)
	case callGrant:
		if c.Grant == nil {
			return nil, missing
		}
		return one(e.grant(ctx, c.Tenant, c.CreditType, *c.Grant))
	case callReserve:
		if c.Reserve == nil {
			return nil, missing
		}
		return one(e.reserve(ctx, c.Tenant, c.CreditType, *c.Reserve))
	case callCapture:
		if c.Capture == nil {
			return nil, missing
		}
		return one(e.capture(ctx, c.Tenant, c.CreditType, *c.Capture))
	case callRelease:
		return one(e.release(ctx, c.Tenant, c.CreditType, c.ID))
	case callAdjust:
		if c.Adjust == nil {
			return nil, missing
		}
		return one(e.adjust(ctx, c.Tenant, c.CreditType, *c.Adjust))
	case callAutoReload:
		if c.AutoReload == nil {
			return nil, missing
		}
		return one(e.configureAutoReload(ctx, c.Tenant, c.CreditType, *c.AutoReload))
	case callLine:
		if c.Line == nil {
			return nil, missing
		}
		return one(e.configureLine(ctx, c.Tenant, c.CreditType, *c.Line))
	case callSubscribe:
		if c.Subscribe == nil {
			return nil, missing
		}
		return one(e.startSubscription(ctx, c.Tenant, c.CreditType, *c.Subscribe))
	case callUnsubscribe:
		return one(e.cancelSubscription(ctx, c.Tenant, c.CreditType, c.ID))
	case callReverse:
		if c.Reverse == nil {
			return nil, missing
		}
		return one(e.reverseUsage(ctx, c.Tenant, *c.Reverse))
	case callVoid:
		if c.Void == nil {
			return nil, missing
		}
		return one(e.voidGrant(ctx, c.Tenant, c.CreditType, *c.Void))
	case callExpiry:
		if c.Expiry == nil {
			return nil, missing
		}
		return one(e.changeGrantExpiry(ctx, c.Tenant, c.CreditType, *c.Expiry))
	}
	return nil, fmt.Errorf("%w: unknown call %q", domain.ErrInvalidCommand, c.Method)
}

// Grant adds credits to a tenant's line. A repeat of the same grant id
// returns the original outcome (Duplicate) and appends nothing. Errors:
// *domain.FieldError, domain.ErrIdempotencyConflict, ErrTenantNotFound,
// ErrUnavailable, ErrContention.
func (e *Engine) Grant(ctx context.Context, tenantID int64, creditType string, c domain.Grant) (Result, error) {
	return e.routeOne(ctx, call{Method: callGrant, Tenant: tenantID, CreditType: creditType, Grant: &c})
}

// RecordUsageBatch is RecordUsage with the whole batch keyed by batchKey
// (domain.UsageBatch) when it is not empty: a repeat of the key with the
// same events answers each event's original outcome as a duplicate; with
// other events the call's error is domain.ErrIdempotencyConflict and
// nothing is appended. An invalid key is a *domain.FieldError.
func (e *Engine) RecordUsageBatch(ctx context.Context, tenantID int64, batchKey string, events []UsageEvent) ([]Result, error) {
	return e.route(ctx, call{Method: callUsage, Tenant: tenantID, BatchKey: batchKey, Usage: events})
}

// Reserve holds credits on a line. A refusal is recorded, so a retry of the
// same reservation id answers it again. Errors: domain.ErrInsufficientCredits,
// *domain.FieldError, domain.ErrIdempotencyConflict, ErrTenantNotFound,
// ErrUnavailable, ErrContention.
func (e *Engine) Reserve(ctx context.Context, tenantID int64, creditType string, c domain.Reserve) (Result, error) {
	return e.routeOne(ctx, call{Method: callReserve, Tenant: tenantID, CreditType: creditType, Reserve: &c})
}

// Capture turns a reservation (or part of it) into a debit and releases the
// rest (capture.go). An empty creditType means the line holding the
// reservation.
func (e *Engine) Capture(ctx context.Context, tenantID int64, creditType string, c domain.Capture) (Result, error) {
	return e.routeOne(ctx, call{Method: callCapture, Tenant: tenantID, CreditType: creditType, Capture: &c})
}

// Release ends a reservation without a debit (release.go). An empty
// creditType means the line holding the reservation.
func (e *Engine) Release(ctx context.Context, tenantID int64, creditType, reservationID string) (Result, error) {
	return e.routeOne(ctx, call{Method: callRelease, Tenant: tenantID, CreditType: creditType, ID: reservationID})
}

// Adjust corrects a line by a signed amount. Errors: *domain.FieldError,
// domain.ErrIdempotencyConflict, ErrTenantNotFound, ErrUnavailable,
// ErrContention.
func (e *Engine) Adjust(ctx context.Context, tenantID int64, creditType string, c domain.Adjust) (Result, error) {
	return e.routeOne(ctx, call{Method: callAdjust, Tenant: tenantID, CreditType: creditType, Adjust: &c})
}

// ConfigureAutoReload sets a line's auto-reload. Setting what is already
// set appends nothing. Errors: *domain.FieldError, ErrTenantNotFound,
// ErrUnavailable, ErrContention.
func (e *Engine) ConfigureAutoReload(ctx context.Context, tenantID int64, creditType string, c domain.ConfigureAutoReload) (Result, error) {
	return e.routeOne(ctx, call{Method: callAutoReload, Tenant: tenantID, CreditType: creditType, AutoReload: &c})
}

// ConfigureLine sets a line's overdraft limit. Errors as ConfigureAutoReload.
func (e *Engine) ConfigureLine(ctx context.Context, tenantID int64, creditType string, c domain.ConfigureLine) (Result, error) {
	return e.routeOne(ctx, call{Method: callLine, Tenant: tenantID, CreditType: creditType, Line: &c})
}

// StartSubscription starts allocating credits every period on a line.
// Errors: *domain.FieldError, domain.ErrIdempotencyConflict,
// ErrTenantNotFound, ErrUnavailable, ErrContention.
func (e *Engine) StartSubscription(ctx context.Context, tenantID int64, creditType string, c domain.StartSubscription) (Result, error) {
	return e.routeOne(ctx, call{Method: callSubscribe, Tenant: tenantID, CreditType: creditType, Subscribe: &c})
}

// CancelSubscription ends a subscription at the end of its current period
// (subscription.go). An empty creditType means the line the subscription
// was started on.
func (e *Engine) CancelSubscription(ctx context.Context, tenantID int64, creditType, subscriptionID string) (Result, error) {
	return e.routeOne(ctx, call{Method: callUnsubscribe, Tenant: tenantID, CreditType: creditType, ID: subscriptionID})
}

// ReverseUsage gives an accepted usage debit's credits back to the grants
// that paid for it (reverse.go).
func (e *Engine) ReverseUsage(ctx context.Context, tenantID int64, c domain.ReverseUsage) (Result, error) {
	return e.routeOne(ctx, call{Method: callReverse, Tenant: tenantID, Reverse: &c})
}

// VoidGrant takes a grant's remaining credits off the balance (amend.go).
func (e *Engine) VoidGrant(ctx context.Context, tenantID int64, creditType string, c domain.VoidGrant) (Result, error) {
	return e.routeOne(ctx, call{Method: callVoid, Tenant: tenantID, CreditType: creditType, Void: &c})
}

// ChangeGrantExpiry moves a grant's expiry, nil for never (amend.go).
func (e *Engine) ChangeGrantExpiry(ctx context.Context, tenantID int64, creditType string, c domain.ChangeGrantExpiry) (Result, error) {
	return e.routeOne(ctx, call{Method: callExpiry, Tenant: tenantID, CreditType: creditType, Expiry: &c})
}
