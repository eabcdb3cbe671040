package commands

import "github.com/creditd/creditd/domain"

// Status is how one write ended.
type Status string

const (
	StatusAccepted  Status = "accepted"
	StatusDuplicate Status = "duplicate"
	StatusRejected  Status = "rejected"
)

// Result is the outcome of one write.
type Result struct {
	Status Status
	// Reason says why a usage event was rejected (domain.Reject*).
	Reason string
	// Duplicate is true when the id was seen before and nothing was
	// appended; Status and Reason are then the original outcome's.
	Duplicate bool
	// Position is the stream sequence of the commit holding the write (the
	// original one for a duplicate): reads that wait for it see the write.
	Position uint64
	// Events are the write's events. For a duplicate of a single write they
	// are read back from the original commit.
	Events []domain.Event
	// Err is a per-write refusal (domain errors) inside a batch.
	Err error
}
