package commands

import (
	"errors"

	"github.com/creditd/creditd/eventstore"
)

// Errors of the write side beyond the domain's own (domain/errors.go).
var (
	// ErrUnavailable: the event store could not be reached, or the outcome
	// of an append is unknown. Retrying with the same ids is safe.
	ErrUnavailable = errors.New("event store unavailable")
	// ErrContention: the subject kept moving under this writer (other
	// instances writing the same partition). Retrying is safe.
	ErrContention = errors.New("too much write contention")
	// ErrCommitTooLarge: one request's events do not fit in a stored message.
	ErrCommitTooLarge = errors.New("request too large for one commit")
	// ErrTenantNotFound: no tenant has that id.
	ErrTenantNotFound = errors.New("tenant not found")
	// ErrAPIKeyNotFound: the tenant has no such key.
	ErrAPIKeyNotFound = errors.New("api key not found")
	// ErrClosed: the engine is shutting down.
	ErrClosed = errors.New("engine is shutting down")
	// ErrBrokenChain: a stored commit does not link to the one before it;
	// the log was altered outside creditd. The read side checks the same
	// links, so both name one error.
	ErrBrokenChain = eventstore.ErrBrokenChain
)

func joinErrors(errs []error) error { return errors.Join(errs...) }
