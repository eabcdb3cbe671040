package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/creditd/creditd/eventstore"
)

// The read models apply a commit only if it links to the commit before it
// on its subject, as the write side does (commands/chain.go): a message
// creditd did not write — forged with the operator token, say — may be
// well-formed JSON, and applying it would show credits no one granted. Such
// a commit stops the projection before it and is reported for /readyz as an
// *eventstore.ForeignMessageError, until an operator sets it aside (creditd
// quarantine). A message set aside moves the position, not the link: the
// next commit links to the one before it, exactly as on the write side.

// chainHead is the last commit applied on one subject: its position and
// the hex SHA-256 of its bytes, which the next commit names in Prev.
type chainHead struct {
	position uint64
	hash     string
}

// errHeadsUnknown: the database predates the chain_heads table and has not
// learnt its links from the log yet (learnHeads).
var errHeadsUnknown = errors.New("projection: the read models predate hash links; they must catch up from the log first")

// checkLinks returns how many of commits, from the first, link each to the
// commit before it on its subject (in heads, then earlier in commits), the
// heads those moved, and for the first that does not link an error naming
// it. A Decoded without a subject (not a commit, or set aside) links
// nothing.
func checkLinks(heads map[string]chainHead, commits []Decoded) (linked int, moved map[string]chainHead, err error) {
	moved = make(map[string]chainHead, 2)
	for i, d := range commits {
		if d.Subject == "" {
			continue
		}
		head, ok := moved[d.Subject]
		if !ok {
			head = heads[d.Subject]
		}
		if d.Commit.Prev != head.hash {
			return i, moved, &eventstore.ForeignMessageError{Subject: d.Subject, Sequence: d.Sequence, SHA256: d.Hash,
				Err: fmt.Errorf("%w: links to %q, expected %q", eventstore.ErrBrokenChain, d.Commit.Prev, head.hash)}
		}
		moved[d.Subject] = chainHead{position: d.Sequence, hash: d.Hash}
	}
	return len(commits), moved, nil
}

// chainHeads reads the heads stored with the checkpoint.
func (db *DB) chainHeads(ctx context.Context) (map[string]chainHead, error) {
	rows, err := db.writer.QueryContext(ctx, `SELECT subject, position, hash FROM chain_heads`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	heads := map[string]chainHead{}
	for rows.Next() {
		var subject string
		var h chainHead
		if err := rows.Scan(&subject, &h.position, &h.hash); err != nil {
			return nil, err
		}
		heads[subject] = h
	}
	return heads, rows.Err()
}

// writeHeads stores moved heads in the transaction of the checkpoint they
// belong to.
func writeHeads(ctx context.Context, tx *sql.Tx, moved map[string]chainHead) error {
	for subject, h := range moved {
		if _, err := tx.ExecContext(ctx, `INSERT INTO chain_heads (subject, position, hash) VALUES (?, ?, ?)
			ON CONFLICT (subject) DO UPDATE SET position = excluded.position, hash = excluded.hash`, subject, h.position, h.hash); err != nil {
			return fmt.Errorf("write chain heads: %w", err)
		}
	}
	return nil
}

// learnHeads is the migration of a database made before chain_heads: it
// reads the log up to the checkpoint once and stores each subject's last
// commit (not a message set aside). Reading without decoding is a small
// part of a rebuild, and it happens once.
func (p *Projector) learnHeads(ctx context.Context, log LogReader) error {
	if !p.headsUnknown {
		return nil
	}
	quarantined, err := log.Quarantined(ctx)
	if err != nil {
		return err
	}
	heads := map[string]chainHead{}
	err = log.ReadAll(ctx, 0, p.Position(), func(m eventstore.StoredMsg) error {
		if eventstore.IsCommitSubject(m.Subject) && !quarantined.Holds(m) {
			heads[m.Subject] = chainHead{position: m.Sequence, hash: eventstore.Hash(m.Data)}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("learn the chain heads from the log: %w", err)
	}
	tx, err := p.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := writeHeads(ctx, tx, heads); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	p.heads, p.headsUnknown = heads, false
	p.log.Info("learnt the hash links of the read models from the log", "position", p.Position(), "subjects", len(heads))
	return nil
}
