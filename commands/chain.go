package commands

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// chain is one subject's tip as this writer knows it: the last sequence
// (the fence for the next append) and the hash the next commit links to.
type chain struct {
	subject  string
	lastSeq  uint64
	lastHash string
	// stopped is the foreign message catching up last stopped at, nil
	// once catching up succeeds: readiness reads it from any goroutine
	// (Engine.ChainErr), while the writer serves on.
	stopped atomic.Pointer[eventstore.ForeignMessageError]
	// applied, when set, runs after each commit caught up on, once the tip
	// has moved past it (a snapshot taken there covers that commit).
	applied func() error
	// buf holds the last commit's bytes, reused for the next: a commit of a
	// few hundred events is tens of KiB, a new slice each time was 5% of
	// everything creditd bench allocates. Dropped when it outgrew
	// commitBufKeptMax, so one huge commit does not stay in memory.
	buf []byte
}

// commitBufKeptMax bounds the buffer a chain keeps between commits.
const commitBufKeptMax = 1 << 20

// Err is the foreign message this subject's writer stopped at, or nil.
func (c *chain) Err() error {
	if f := c.stopped.Load(); f != nil {
		return f
	}
	return nil
}

// note remembers how catching up ended; other failures (the store not
// answering) say nothing about the log, and leave it as it was.
func (c *chain) note(err error) {
	var foreign *eventstore.ForeignMessageError
	switch {
	case err == nil:
		c.stopped.Store(nil)
	case errors.As(err, &foreign):
		c.stopped.Store(foreign)
	}
}

// append stores events as one commit fenced on the known tip, and moves the
// tip on success.
func (c *chain) append(ctx context.Context, store Store, at time.Time, events []domain.Envelope) (uint64, error) {
	data, err := eventstore.AppendCommit(c.buf[:0], eventstore.Commit{RecordedAt: at.UTC(), Prev: c.lastHash, Events: events})
	if err != nil {
		return 0, fmt.Errorf("encode commit: %w", err)
	}
	// The store keeps nothing of data once Append returns (Store).
	if cap(data) <= commitBufKeptMax {
		c.buf = data
	} else {
		c.buf = nil
	}
	// The limit is the server's (its max_payload), read at each commit; a
	// group commit over it is split by the caller (partition.commitBatch).
	if limit := store.MaxCommitBytes(); len(data) > limit {
		return 0, fmt.Errorf("%w: %d bytes, the store takes %d", ErrCommitTooLarge, len(data), limit)
	}
	seq, err := store.Append(ctx, c.subject, c.lastSeq, data)
	if errors.Is(err, eventstore.ErrTooLarge) {
		// The server's limit fell below what was read (a reconnect to a
		// server configured otherwise): nothing was stored.
		return 0, fmt.Errorf("%w: %v", ErrCommitTooLarge, err)
	}
	if err != nil {
		return 0, err
	}
	c.lastSeq, c.lastHash = seq, eventstore.Hash(data)
	return seq, nil
}

// catchUp applies every commit stored on the subject after the known tip,
// checking that each links to the one before it. A message that does not
// decode or link is foreign: unless an operator set it aside
// (eventstore.Quarantine), catching up stops there with an error naming it.
// One set aside moves the fence but not the link: the next commit links to
// the last one creditd wrote.
func (c *chain) catchUp(ctx context.Context, store Store, apply func(seq uint64, commit eventstore.Commit) error) (err error) {
	defer func() { c.note(err) }()
	var quarantined eventstore.Quarantined // read only when a message is foreign: rare
	return store.ReadSubject(ctx, c.subject, c.lastSeq, func(msg eventstore.StoredMsg) error {
		commit, err := eventstore.DecodeCommit(msg.Data)
		if err == nil && commit.Prev != c.lastHash {
			err = fmt.Errorf("%w: links to %q, expected %q", ErrBrokenChain, commit.Prev, c.lastHash)
		}
		if err != nil {
			if quarantined == nil {
				var readErr error
				if quarantined, readErr = store.Quarantined(ctx); readErr != nil {
					return readErr
				}
			}
			if quarantined.Holds(msg) {
				c.lastSeq = msg.Sequence
				return nil
			}
			return eventstore.Foreign(msg, err)
		}
		if err := apply(msg.Sequence, commit); err != nil {
			return err
		}
		c.lastSeq, c.lastHash = msg.Sequence, eventstore.Hash(msg.Data)
		if c.applied != nil {
			return c.applied()
		}
		return nil
	})
}
