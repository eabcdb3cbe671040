package domain

import "errors"

// Errors a decision can return. httpapi maps each to one RFC 7807 problem.
var (
	// ErrInsufficientCredits: the amount exceeds what the line can spend now
	// (active grants + unallocated balance − reserved + overdraft limit).
	ErrInsufficientCredits = errors.New("insufficient credits")
	// ErrReservationNotFound: no reservation with that id on the line.
	ErrReservationNotFound = errors.New("reservation not found")
	// ErrReservationClosed: the reservation was already captured, released or expired.
	ErrReservationClosed = errors.New("reservation is no longer open")
	// ErrCaptureExceedsHold: a capture asked for more than the reservation holds.
	ErrCaptureExceedsHold = errors.New("capture amount exceeds the amount held")
	// ErrIdempotencyConflict: an id was used before with a different request body.
	ErrIdempotencyConflict = errors.New("id already used with a different request")
	// ErrUsageNotFound: no accepted usage debit with that id.
	ErrUsageNotFound = errors.New("usage not found")
	// ErrGrantNotFound: no grant with credits left by that id on the line.
	ErrGrantNotFound = errors.New("grant not found")
	// ErrGrantExpired: the grant's expiry has passed; its expiry can no
	// longer change.
	ErrGrantExpired = errors.New("grant has expired")
	// ErrSubscriptionNotFound: no subscription with that id on the line.
	ErrSubscriptionNotFound = errors.New("subscription not found")
	// ErrSubscriptionCanceled: the subscription is already canceled.
	ErrSubscriptionCanceled = errors.New("subscription is already canceled")
	// ErrInvalidCommand: a field is missing or malformed; the wrapped text names it.
	ErrInvalidCommand = errors.New("invalid command")

	ErrAmountPrecision   = errors.New("amount has too many decimal places")
	ErrAmountMagnitude   = errors.New("amount is too large")
	ErrAmountNotPositive = errors.New("amount must be positive")
	ErrAmountNegative    = errors.New("amount must not be negative")
)

// Rejection reasons recorded in DebitRejected and answered per usage event.
const (
	RejectInsufficientCredits = "insufficient_credits"
	RejectOccurredInFuture    = "occurred_in_future"
)
