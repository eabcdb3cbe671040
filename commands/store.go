package commands

import (
	"context"

	"github.com/creditd/creditd/eventstore"
)

// Store is what the write side needs of the event log. *eventstore.Store
// satisfies it; tests use that same store on an embedded server.
type Store interface {
	// Append keeps nothing of data once it returns: the writer reuses
	// the buffer for its next commit.
	Append(ctx context.Context, subject string, expectedSeq uint64, data []byte) (uint64, error)
	ReadSubject(ctx context.Context, subject string, afterSeq uint64, fn func(eventstore.StoredMsg) error) error
	Partitions() int
	PartitionOf(tenantID int64) int
	// MaxCommitBytes is the largest commit Append stores, from the
	// server's limits.
	MaxCommitBytes() int
	// Quarantined lists the foreign messages an operator set aside.
	Quarantined(ctx context.Context) (eventstore.Quarantined, error)
}
