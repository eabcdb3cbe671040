package eventstore

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/creditd/creditd/domain"
)

// CommitVersion is the stored format's version; a reader refuses others.
const CommitVersion = 1

// Commit is one stored message: the events one writer decided in one batch
// for one subject, possibly for many tenants and lines. A commit lands
// whole or not at all, which is what makes a request atomic.
type Commit struct {
	Version int `json:"v"`
	// RecordedAt is when the writer decided the events (its clock).
	RecordedAt time.Time `json:"at"`
	// Prev is the hex SHA-256 of the previous commit's stored bytes on the
	// same subject, empty for the first: a chain an auditor can check.
	Prev   string            `json:"prev"`
	Events []domain.Envelope `json:"events"`
}

// Hash is the SHA-256 of a commit's stored bytes, the link the next commit
// on the subject names in Prev.
func Hash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// EncodeCommit returns the stored bytes of c, in the canonical encoding
// (docs/audit.md): what json.Marshal writes.
//
// Encoding is a large part of every write, so the bytes are written by a
// hand-written encoder (encode.go), which leaves to encoding/json what it
// does not mirror, errors included: the bytes and the errors are the same
// whichever path runs.
func EncodeCommit(c Commit) ([]byte, error) {
	if data, ok := encodeCommitFast(c); ok {
		return data, nil
	}
	return encodeCommitJSON(c)
}

// AppendCommit appends the stored bytes of c (EncodeCommit's) to dst and
// returns the extended slice. A writer that appends commit after commit
// reuses one buffer this way, where EncodeCommit returns a new slice each
// time: the store copies the bytes on publishing and keeps nothing of them.
// On an error dst is returned as it was.
func AppendCommit(dst []byte, c Commit) ([]byte, error) {
	var e encoder
	if b := e.commit(dst, c); !e.bad {
		return b, nil
	}
	data, err := encodeCommitJSON(c)
	if err != nil {
		return dst, err
	}
	return append(dst, data...), nil
}

// encodeCommitJSON is the reference encoder, the canonical encoding's
// definition; encodeCommitFast must match it byte for byte.
func encodeCommitJSON(c Commit) ([]byte, error) {
	c.Version = CommitVersion
	return json.Marshal(c)
}

// commitWire is the stored shape; decoding events into their wire form
// reads the bytes in one pass (see domain.EnvelopeWire).
type commitWire struct {
	Version    int                   `json:"v"`
	RecordedAt time.Time             `json:"at"`
	Prev       string                `json:"prev"`
	Events     []domain.EnvelopeWire `json:"events"`
}

// DecodeCommit parses stored bytes, refusing unknown versions and event types.
//
// Decoding is most of the cost of replaying the log, so the bytes
// EncodeCommit writes go through a hand-written decoder (decode.go). That
// decoder gives up on anything else, malformed input included, and those
// bytes take the encoding/json path: results and error messages are the
// same whichever path runs.
func DecodeCommit(data []byte) (Commit, error) {
	if c, ok := decodeCommitFast(data); ok {
		return c, nil
	}
	return decodeCommitJSON(data)
}

// decodeCommitJSON is the reference decoder: encoding/json into the wire
// shape, then each event's conversion. decodeCommitFast must match it.
func decodeCommitJSON(data []byte) (Commit, error) {
	var w commitWire
	if err := json.Unmarshal(data, &w); err != nil {
		return Commit{}, fmt.Errorf("decode commit: %w", err)
	}
	if w.Version != CommitVersion {
		return Commit{}, fmt.Errorf("decode commit: unsupported version %d", w.Version)
	}
	c := Commit{Version: w.Version, RecordedAt: w.RecordedAt, Prev: w.Prev, Events: make([]domain.Envelope, len(w.Events))}
	for i, ew := range w.Events {
		env, err := ew.Envelope()
		if err != nil {
			return Commit{}, fmt.Errorf("decode commit: event %d: %w", i, err)
		}
		c.Events[i] = env
	}
	return c, nil
}
