package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// checkpointAttemptsMax bounds retries when another instance appended a
// checkpoint at the same time.
const checkpointAttemptsMax = 3

// CheckpointStore is what checkpoints need beyond Store.
type CheckpointStore interface {
	LastSeq(ctx context.Context, subject string) (uint64, error)
}

// Checkpoint appends a checkpoint: every subject's head and the digest of
// every line's balances as of those heads. Errors: ErrUnavailable,
// ErrContention, ErrClosed.
// Checkpoint is what a checkpoint records; callers of the command (the
// HTTP edge) name it here, not in the store.
type Checkpoint = eventstore.Checkpoint

func (e *Engine) Checkpoint(ctx context.Context) (Checkpoint, uint64, error) {
	store, ok := e.store.(CheckpointStore)
	if !ok {
		return eventstore.Checkpoint{}, 0, errors.New("the store cannot hold checkpoints")
	}
	if err := e.registry.refreshLimited(); err != nil {
		return eventstore.Checkpoint{}, 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	e.registry.mu.RLock()
	heads := []eventstore.Head{{Subject: eventstore.RegistrySubject, Position: e.registry.chain.lastSeq, Hash: e.registry.chain.lastHash}}
	e.registry.mu.RUnlock()
	lines := map[domain.LineRef]*domain.Line{}
	for _, p := range e.partitions {
		var head eventstore.Head
		var frozen map[lineRef]*domain.Line
		r := &request{done: make(chan error, 1), inspect: func(p *partition) {
			head = eventstore.Head{Subject: p.chain.subject, Position: p.chain.lastSeq, Hash: p.chain.lastHash}
			frozen = p.freezeLines()
		}}
		if err := e.submitTo(ctx, p, r); err != nil {
			return eventstore.Checkpoint{}, 0, err
		}
		// The digest reads the frozen lines here, off the writer.
		for ref, l := range frozen {
			lines[domain.LineRef{TenantID: ref.tenantID, CreditType: ref.creditType}] = l
		}
		heads = append(heads, head)
	}
	cp := eventstore.Checkpoint{At: e.clock().UTC(), Heads: heads, BalancesDigest: domain.BalancesDigest(lines)}
	data, err := eventstore.EncodeCheckpoint(cp)
	if err != nil {
		return cp, 0, err
	}
	for attempt := 1; ; attempt++ {
		last, err := store.LastSeq(ctx, eventstore.CheckpointSubject)
		if err != nil {
			return cp, 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		seq, err := e.store.Append(ctx, eventstore.CheckpointSubject, last, data)
		if err == nil {
			return cp, seq, nil
		}
		if !errors.Is(err, eventstore.ErrConflict) || attempt >= checkpointAttemptsMax {
			return cp, 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
}

// submitTo hands a request to one partition's writer and waits.
func (e *Engine) submitTo(ctx context.Context, p *partition, r *request) error {
	e.mu.RLock()
	if e.closed {
		e.mu.RUnlock()
		return ErrClosed
	}
	select {
	case p.inbox <- r:
		e.mu.RUnlock()
	case <-ctx.Done():
		e.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
