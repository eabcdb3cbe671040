package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// A message on a commit subject (credits.events.*, credits.registry) that
// creditd did not write — undecodable, of an unknown version, or not linked
// to the commit before it — stops every reader of that subject: nothing may
// apply it, and silently skipping it would hide tampering. The stream
// denies deletes, so the way out is explicit and audited: an operator
// checks the message and sets it aside with `creditd quarantine`, which
// appends a record naming it (subject, sequence, SHA-256) to
// credits.quarantine. Readers then pass over exactly that message; its
// sequence still counts as a position, and the next commit links to the
// one before it.

// ErrBrokenChain: a stored commit does not link to the commit before it on
// its subject; the log was altered outside creditd.
var ErrBrokenChain = errors.New("commit chain broken")

// QuarantineSubject holds the records of messages set aside.
const QuarantineSubject = "credits.quarantine"

// quarantineVersion is the record format's version.
const quarantineVersion = 1

// Quarantine is one record: the message set aside, and why.
type Quarantine struct {
	Version  int       `json:"v"`
	Subject  string    `json:"subject"`
	Sequence uint64    `json:"seq"`
	SHA256   string    `json:"sha256"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// Quarantined maps the sequence of each message set aside to the SHA-256
// of its bytes.
type Quarantined map[uint64]string

// Holds reports whether m is a message set aside (same sequence, same bytes).
func (q Quarantined) Holds(m StoredMsg) bool {
	hash, ok := q[m.Sequence]
	return ok && hash == Hash(m.Data)
}

// IsCommitSubject reports whether subject carries commits: the registry
// and the partitions. Checkpoints and quarantine records are not commits.
func IsCommitSubject(subject string) bool {
	return subject == RegistrySubject || strings.HasPrefix(subject, partitionPrefix)
}

// ForeignMessageError names a message creditd did not write and what the
// operator can do about it.
type ForeignMessageError struct {
	Subject  string
	Sequence uint64
	SHA256   string
	Err      error
}

func (e *ForeignMessageError) Error() string {
	return fmt.Sprintf("%s at %d is not a commit creditd wrote (%v); nothing after it on %s can be applied. "+
		"Inspect it (nats stream get %s %d), and if it is foreign set it aside with: creditd quarantine --subject %s --sequence %d --sha256 %s",
		e.Subject, e.Sequence, e.Err, e.Subject, StreamName, e.Sequence, e.Subject, e.Sequence, e.SHA256)
}

func (e *ForeignMessageError) Unwrap() error { return e.Err }

// Foreign wraps why m cannot be applied.
func Foreign(m StoredMsg, err error) error {
	return &ForeignMessageError{Subject: m.Subject, Sequence: m.Sequence, SHA256: Hash(m.Data), Err: err}
}

// ForeignMessage marks the error for readers that test it through an
// interface of their own (the HTTP edge does not import the store).
func (e *ForeignMessageError) ForeignMessage() {}

// IsForeign reports whether err names a foreign message.
func IsForeign(err error) bool {
	var f *ForeignMessageError
	return errors.As(err, &f)
}

// Quarantined reads every quarantine record. A record that does not parse
// sets nothing aside.
func (s *Store) Quarantined(ctx context.Context) (Quarantined, error) {
	q := Quarantined{}
	err := s.ReadSubject(ctx, QuarantineSubject, 0, func(m StoredMsg) error {
		var r Quarantine
		if json.Unmarshal(m.Data, &r) == nil && r.Version == quarantineVersion && r.Sequence > 0 {
			q[r.Sequence] = r.SHA256
		}
		return nil
	})
	return q, err
}

// Quarantine appends a record setting the message at r.Sequence aside,
// after checking that it is on r.Subject with r.SHA256 (so a typo cannot
// set another message aside). Deciding that the message is foreign is the
// caller's part.
func (s *Store) Quarantine(ctx context.Context, r Quarantine) (uint64, error) {
	m, err := s.Load(ctx, r.Sequence)
	if err != nil {
		return 0, err
	}
	if m.Subject != r.Subject || Hash(m.Data) != r.SHA256 {
		return 0, fmt.Errorf("the message at %d is on %s with SHA-256 %s, not on %s with %s", r.Sequence, m.Subject, Hash(m.Data), r.Subject, r.SHA256)
	}
	r.Version = quarantineVersion
	data, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	ack, err := s.js.Publish(ctx, QuarantineSubject, data)
	if err != nil {
		return 0, fmt.Errorf("append to %s: %w", QuarantineSubject, err)
	}
	return ack.Sequence, nil
}
