package eventstore

import (
	"encoding/json"
	"fmt"
	"time"
)

// CheckpointSubject holds the periodic checkpoints.
const CheckpointSubject = "credits.checkpoints"

// Head is a subject's last commit at a checkpoint.
type Head struct {
	Subject  string `json:"subject"`
	Position uint64 `json:"position"`
	Hash     string `json:"hash"`
}

// Checkpoint records, at an instant, every subject's head (the hash of its
// last commit, which chains to all before it) and a digest of every line's
// balances as of those heads. Holding one checkpoint's text is enough to
// prove later that the history up to it was not rewritten.
type Checkpoint struct {
	Version        int       `json:"v"`
	At             time.Time `json:"at"`
	Heads          []Head    `json:"heads"`
	BalancesDigest string    `json:"balances_digest"`
}

// EncodeCheckpoint returns the stored bytes of c.
func EncodeCheckpoint(c Checkpoint) ([]byte, error) {
	c.Version = CommitVersion
	return json.Marshal(c)
}

// DecodeCheckpoint parses stored bytes.
func DecodeCheckpoint(data []byte) (Checkpoint, error) {
	var c Checkpoint
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("decode checkpoint: %w", err)
	}
	if c.Version != CommitVersion {
		return c, fmt.Errorf("decode checkpoint: unsupported version %d", c.Version)
	}
	return c, nil
}
