package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creditd/creditd/eventstore"
)

// Dead letters are copies of messages creditd could not record, kept for
// an operator to read; nothing depends on them. They are bounded, so a
// producer that publishes garbage without end cannot fill the server's
// disk, and the bounds drop the oldest first (discard old): refusing new
// ones instead would fail dead-lettering and leave the poison message on
// the work stream, redelivered for ever ahead of good usage.
const (
	// DeadLetterMaxAgeDefault keeps a dead letter a month: time for the
	// producer's owner to notice, fix and resend, even across a holiday.
	DeadLetterMaxAgeDefault = 30 * 24 * time.Hour
	// DeadLetterMaxBytesDefault bounds the stream at 1 GiB: some 16,000
	// dead letters of the largest usage event, or millions of ordinary
	// ones; small next to the log on the same servers.
	DeadLetterMaxBytesDefault = 1 << 30
)

// DeadLetterLimits bound the dead-letter stream; zero means no limit.
type DeadLetterLimits struct {
	MaxAge   time.Duration
	MaxBytes int64
}

// StreamOptions configures EnsureStreamsWith.
type StreamOptions struct {
	// Replicas is the least replica count of both streams; a stream that
	// has more keeps them.
	Replicas    int
	DeadLetters DeadLetterLimits
}

// EnsureStreams is EnsureStreamsWith with the default dead-letter limits.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, replicas int) error {
	return EnsureStreamsWith(ctx, js, StreamOptions{Replicas: replicas,
		DeadLetters: DeadLetterLimits{MaxAge: DeadLetterMaxAgeDefault, MaxBytes: DeadLetterMaxBytesDefault}})
}

// EnsureStreamsWith creates the work stream and the dead-letter stream, or
// sets their configuration on the existing ones. The work stream keeps a
// message until it is acknowledged (work-queue retention) and dedupes
// producers' retries by Nats-Msg-Id within its window; creditd's own
// idempotency covers every id for good. It holds usage producers were told
// is stored until creditd records it, so it must keep what it
// acknowledged: a work stream that fails eventstore.CheckStream (memory
// storage or async persistence, which an update cannot change) is refused
// with the setting named.
func EnsureStreamsWith(ctx context.Context, js jetstream.JetStream, opts StreamOptions) error {
	replicas := max(opts.Replicas, 1)
	maxBytes := opts.DeadLetters.MaxBytes
	if maxBytes <= 0 {
		maxBytes = -1 // no limit
	}
	work := jetstream.StreamConfig{Name: StreamName, Description: "creditd usage events from producers, until recorded", Subjects: []string{SubjectPrefix + "*"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Replicas: replicas, MaxMsgSize: messageBytesMax,
		Duplicates: 2 * time.Minute}
	if err := ensureStream(ctx, js, work, &eventstore.Durability{Replicas: replicas}); err != nil {
		return err
	}
	dead := jetstream.StreamConfig{Name: DeadStreamName, Description: "creditd usage messages that could not be recorded, with the reason", Subjects: []string{DeadPrefix + "*"},
		Storage: jetstream.FileStorage, Replicas: replicas, MaxMsgSize: messageBytesMax,
		MaxAge: opts.DeadLetters.MaxAge, MaxBytes: maxBytes, Discard: jetstream.DiscardOld}
	// Not checked: its limits are the point (eventstore/streamcheck.go).
	return ensureStream(ctx, js, dead, nil)
}

// ensureStream creates the stream or updates it to cfg, and checks the
// result against durable when it is not nil.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, durable *eventstore.Durability) error {
	var existing *jetstream.StreamConfig
	stream, err := js.Stream(ctx, cfg.Name)
	switch {
	case err == nil:
		existing = &stream.CachedInfo().Config
		// Asking for fewer replicas never takes copies away.
		cfg.Replicas = max(cfg.Replicas, existing.Replicas)
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	stream, err = js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		if durable != nil && existing != nil {
			// The check names what an update cannot change more plainly
			// than the server does.
			if problems := eventstore.CheckStream(*existing, *durable); problems != nil {
				return fmt.Errorf("%w\n(updating stream %s failed: %v)", problems, cfg.Name, err)
			}
		}
		return fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	if durable != nil {
		return eventstore.CheckStream(stream.CachedInfo().Config, *durable)
	}
	return nil
}

// DeadLettersDropped counts the dead letters the dead-letter stream no
// longer holds from its start: dropped by its age or byte limit, or
// purged by an operator (creditd removes none). The stream's first
// sequence says how many: every message before it is gone.
func DeadLettersDropped(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	stream, err := js.Stream(ctx, DeadStreamName)
	if err != nil {
		return 0, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	// A stream that never held a message reports 0.
	if info.State.FirstSeq == 0 {
		return 0, nil
	}
	return info.State.FirstSeq - 1, nil
}
