package commands

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Routing bounds.
const (
	// forwardTimeoutDefault bounds a forwarded write whose caller set no
	// deadline: the owner's answer, or the retries while a lease changes
	// hands, never wait longer.
	forwardTimeoutDefault = 30 * time.Second
	// rerouteWaitFirst and rerouteWaitMax pace the retries of a write
	// whose partition has no owner now (a lease changing hands): well
	// under the TTL, so a handover costs the caller milliseconds.
	rerouteWaitFirst = 5 * time.Millisecond
	rerouteWaitMax   = 250 * time.Millisecond
)

// errNotOwner: this instance does not hold the partition's lease (any
// more). The write was not decided and nothing was appended: it goes to
// the owner instead.
var errNotOwner = errors.New("this instance does not own the partition")

// routeOne routes a call that answers one Result.
func (e *Engine) routeOne(ctx context.Context, c call) (Result, error) {
	results, err := e.route(ctx, c)
	if len(results) == 0 {
		return Result{}, err
	}
	return results[0], err
}

// route runs a call where its partition is owned: here when this instance
// owns it (or runs alone), else at the owner through the cluster. While
// the partition has no owner (a lease changing hands, an owner that died
// and whose lease has not expired yet) it tries again until ctx ends; the
// caller then gets ErrUnavailable and retries with the same ids, which is
// safe: a write is decided once, by one owner, whatever the path.
func (e *Engine) route(ctx context.Context, c call) ([]Result, error) {
	if e.cluster == nil {
		return e.exec(ctx, c)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, forwardTimeoutDefault)
		defer cancel()
	}
	// An unknown tenant is answered here: the owner is asked only about
	// tenants this instance knows, so it may read its registry again for
	// one it does not know yet (forward.go).
	if _, err := e.registry.tenant(c.Tenant); err != nil {
		return nil, err
	}
	partition := e.store.PartitionOf(c.Tenant)
	wait := rerouteWaitFirst
	for {
		var results []Result
		var err error
		if e.cluster.owns(partition) {
			results, err = e.exec(ctx, c)
		} else {
			results, err = e.cluster.forward(ctx, partition, c)
		}
		if !errors.Is(err, errNotOwner) {
			return results, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: partition %d has no owner now: %v", ErrUnavailable, partition, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(wait*2, rerouteWaitMax)
	}
}
