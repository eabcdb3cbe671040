// Package eventstore keeps creditd's event log in one JetStream stream.
//
// Layout (docs/architecture.md has the reasoning): tenants are spread over a
// fixed number of partitions; each partition is one subject,
// credits.events.<partition>, written by one writer at a time and fenced by
// the expected last sequence of that subject. Each stored message is a
// Commit carrying many events of many lines, so one fsync pays for many
// events. Tenant records (creation, API keys) live on credits.registry.
package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// StreamName is the JetStream stream holding the log.
	StreamName = "CREDITS"
	// RegistrySubject holds tenant and API key events.
	RegistrySubject = "credits.registry"
	// PartitionsDefault is the partition count of a new stream. It is stored
	// in the stream's metadata and read from there ever after, because every
	// instance must map a tenant to the same subject; a stream created with
	// another count keeps it.
	//
	// 16 leaves room to spread the partitions over several instances (one
	// owner each), at a cost of about a tenth of HTTP writes on one
	// instance. In a quiet sitting (load average under 1), three pairs
	// alternated: 16 ran HTTP ingest at 0.89 of 4 and end to end at 0.87,
	// lower in every pair, NATS ingest at 1.02 and the hot line at 0.96.
	// Each partition's group commit gathers a sixteenth of the requests in
	// flight instead of a quarter: more, smaller commits. Noisier sittings
	// put it inside the noise: `creditd bench --partitions
	// N` (200,000 events, 1,000 tenants, fsync always), 2 shared cores,
	// runs alternated in one sitting, end-to-end events/s against the N=4
	// run beside it: 16 at 0.97 (geometric mean of 5 pairs, 0.67–1.59) and
	// 0.86 (6 rounds of 4, 8, 16, 32; 8 at 0.87), inside the ±15% between
	// runs of one build; 32 at 0.61 (0.52–0.82 in all 6 rounds), since the
	// same load split over more writers packs fewer events per commit and
	// pays more fsyncs. Medians of all runs: 4: 33,756 (11 runs), 8: 34,120
	// (6), 16: 30,981 (11), 32: 21,359 (6). Since the projection applies
	// the commits that queued together, three alternated rounds put 16 at
	// 0.94 of 4 for HTTP ingest and 0.99 end to end, with the lower lag.
	PartitionsDefault = 16
	partitionsMax     = 1024

	metadataPartitions = "creditd_partitions"
	partitionPrefix    = "credits.events."
)

// streamSubjects are the stream's subjects: partition commits, the
// registry, checkpoints, and the records of messages set aside.
var streamSubjects = []string{partitionPrefix + ">", RegistrySubject, CheckpointSubject, QuarantineSubject}

// Errors Append can return.
var (
	// ErrConflict: the subject moved past the expected sequence; another
	// writer got there first. Reload and decide again.
	ErrConflict = errors.New("eventstore: subject moved past the expected sequence")
	// ErrUnavailable: the store could not be reached or did not answer. The
	// append may or may not have landed: read the subject before retrying.
	ErrUnavailable = errors.New("eventstore: unavailable")
	// ErrTooLarge: the message is over the server's max_payload or the
	// stream's max_msg_size, and was not stored (MaxCommitBytes).
	ErrTooLarge = errors.New("eventstore: message too large")
)

// Config describes the stream to open or create.
type Config struct {
	// Replicas is the stream's replica count (1 embedded, 3 on a cluster).
	Replicas int
	// Partitions is used only when the stream is created.
	Partitions int
}

// Store appends commits to and reads them from the stream.
type Store struct {
	nc         *nats.Conn
	js         jetstream.JetStream
	stream     jetstream.Stream
	partitions int
	replicas   int
	// maxMsgSize is the stream's max_msg_size, 0 or -1 for none.
	maxMsgSize int32
	snap       snapshots
	fetches    fetchSlots // the read path's, read.go
}

// Open connects the store to the stream, creating it on first use. An
// existing stream must pass CheckStream as the log (file storage, at least
// cfg.Replicas replicas, no limits, no deletes or purges, synchronous
// persistence); otherwise Open returns an error naming each setting.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	partitions := cfg.Partitions
	if partitions == 0 {
		partitions = PartitionsDefault
	}
	if partitions < 1 || partitions > partitionsMax {
		return nil, fmt.Errorf("partitions %d outside 1..%d", partitions, partitionsMax)
	}
	replicas := max(cfg.Replicas, 1)
	stream, err := js.Stream(ctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		stream, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        StreamName,
			Description: "creditd event log: append-only commits of credit events",
			Subjects:    streamSubjects,
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Replicas:    replicas,
			MaxMsgSize:  MaxPayloadBytes,
			// History is append-only: nobody may delete or purge it.
			DenyDelete:  true,
			DenyPurge:   true,
			AllowDirect: true,
			Metadata:    map[string]string{metadataPartitions: strconv.Itoa(partitions)},
		})
	}
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", StreamName, err)
	}
	info := stream.CachedInfo()
	// Checked as found, before anything is read or written: a stream that
	// can lose acknowledged commits is refused, never used or "fixed".
	if err := CheckStream(info.Config, Durability{Replicas: replicas, AppendOnly: true}); err != nil {
		return nil, fmt.Errorf("the event log's stream can lose acknowledged events; creditd will not use it:\n%w", err)
	}
	if !slices.Equal(info.Config.Subjects, streamSubjects) {
		// A stream from an earlier version: add the subjects it lacks.
		cfg := info.Config
		cfg.Subjects = streamSubjects
		if stream, err = js.UpdateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("update stream %s subjects: %w", StreamName, err)
		}
		info = stream.CachedInfo()
	}
	stored, err := strconv.Atoi(info.Config.Metadata[metadataPartitions])
	if err != nil || stored < 1 || stored > partitionsMax {
		return nil, fmt.Errorf("stream %s has no valid %s metadata", StreamName, metadataPartitions)
	}
	store := &Store{nc: nc, js: js, stream: stream, partitions: stored, replicas: replicas, maxMsgSize: info.Config.MaxMsgSize}
	if limit := store.MaxCommitBytes(); limit < commitBytesMin {
		return nil, fmt.Errorf("commits may take only %d bytes (the server's max_payload is %d, stream %s's max_msg_size %d); creditd needs at least %d: raise max_payload",
			limit, nc.MaxPayload(), StreamName, info.Config.MaxMsgSize, commitBytesMin+publishOverheadBytes)
	}
	return store, nil
}

// publishOverheadBytes is left free of commit bytes in every message: the
// server counts headers against its limits, and the ones Append sends
// (the expected-sequence header) take under 100 bytes; the rest leaves
// room for more.
const publishOverheadBytes = 4 << 10

// commitBytesMin is the least room for a commit Open accepts: below it,
// requests of a few ordinary events would be refused as too large.
const commitBytesMin = 60 << 10

// MaxCommitBytes is the largest commit Append stores: under the connected
// server's max_payload, the stream's max_msg_size and MaxPayloadBytes,
// less publishOverheadBytes. It is read at each call, because a reconnect
// may reach a server configured otherwise.
func (s *Store) MaxCommitBytes() int {
	limit := int64(MaxPayloadBytes)
	if payload := s.nc.MaxPayload(); payload > 0 {
		limit = min(limit, payload)
	}
	if s.maxMsgSize > 0 {
		limit = min(limit, int64(s.maxMsgSize))
	}
	return int(max(limit-publishOverheadBytes, 0))
}

// Partitions is the stream's partition count.
func (s *Store) Partitions() int { return s.partitions }

// PartitionOf maps a tenant to its partition. Stable forever: changing it
// would split a tenant's history across subjects.
func (s *Store) PartitionOf(tenantID int64) int { return int(uint64(tenantID) % uint64(s.partitions)) }

// PartitionSubject is the subject of partition p.
func PartitionSubject(p int) string { return partitionPrefix + strconv.Itoa(p) }

// Append stores data on subject if the subject's last sequence is still
// expectedSeq (0: the subject is empty), and returns the stream sequence the
// message got. It returns ErrConflict, ErrTooLarge or ErrUnavailable
// (wrapped).
func (s *Store) Append(ctx context.Context, subject string, expectedSeq uint64, data []byte) (uint64, error) {
	// Fail fast while the connection is down: the client reconnects on its
	// own, and callers answer 503 with Retry-After meanwhile instead of
	// holding requests until a timeout.
	if !s.nc.IsConnected() {
		return 0, fmt.Errorf("%w: not connected to NATS (%s)", ErrUnavailable, s.nc.Status())
	}
	ack, err := s.js.Publish(ctx, subject, data, jetstream.WithExpectLastSequencePerSubject(expectedSeq))
	if err == nil {
		return ack.Sequence, nil
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		// The client checks the size before sending: nothing left.
		return 0, fmt.Errorf("%w: %d bytes to %s: %v", ErrTooLarge, len(data), subject, err)
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		// 10071 on a single server, 10164 on replicated streams.
		case jetstream.JSErrCodeStreamWrongLastSequence, 10164:
			return 0, fmt.Errorf("%w: %s", ErrConflict, apiErr.Description)
		case jetstream.JSErrCodeStreamMessageExceedsMaximum:
			return 0, fmt.Errorf("%w: %d bytes to %s: %s", ErrTooLarge, len(data), subject, apiErr.Description)
		}
		return 0, fmt.Errorf("append to %s: %w", subject, err)
	}
	return 0, fmt.Errorf("%w: append to %s: %v", ErrUnavailable, subject, err)
}

// LastSeq is the stream sequence of the subject's last message, 0 if none.
func (s *Store) LastSeq(ctx context.Context, subject string) (uint64, error) {
	if !s.nc.IsConnected() {
		return 0, fmt.Errorf("%w: not connected to NATS (%s)", ErrUnavailable, s.nc.Status())
	}
	if s.replicas > 1 {
		return s.leaderLastSeq(ctx, subject)
	}
	msg, err := s.stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%w: last message of %s: %v", ErrUnavailable, subject, err)
	}
	return msg.Sequence, nil
}

// leaderLastSeq asks the stream's leader for the subject's last sequence.
// On a replicated stream, direct gets (AllowDirect, which the reads of
// single messages use for speed) are answered by any replica, and a
// follower may not have applied the newest commits yet: a read that must
// see every acknowledged commit (a writer catching up before it decides,
// a registry read after a miss) learns where the subject ends from the
// leader, which has applied every message it acknowledged. Reading up to
// that sequence then waits for a lagging replica rather than stopping
// short (ReadSubject).
func (s *Store) leaderLastSeq(ctx context.Context, subject string) (uint64, error) {
	req, _ := json.Marshal(struct {
		LastBySubject string `json:"last_by_subj"`
	}{subject})
	msg, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+StreamName, req)
	if err != nil {
		return 0, fmt.Errorf("%w: last message of %s: %v", ErrUnavailable, subject, err)
	}
	var resp struct {
		Message *struct {
			Sequence uint64 `json:"seq"`
		} `json:"message"`
		Error *struct {
			Code        int    `json:"code"`
			ErrorCode   int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return 0, fmt.Errorf("%w: last message of %s: %v", ErrUnavailable, subject, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == int(jetstream.JSErrCodeMessageNotFound):
		return 0, nil
	case resp.Error != nil:
		return 0, fmt.Errorf("%w: last message of %s: %s (%d)", ErrUnavailable, subject, resp.Error.Description, resp.Error.ErrorCode)
	case resp.Message == nil:
		return 0, fmt.Errorf("%w: last message of %s: an empty answer", ErrUnavailable, subject)
	}
	return resp.Message.Sequence, nil
}

// LastPosition is the stream's last sequence: how far the whole log goes.
func (s *Store) LastPosition(ctx context.Context) (uint64, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("%w: stream info: %v", ErrUnavailable, err)
	}
	return info.State.LastSeq, nil
}
