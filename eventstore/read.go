package eventstore

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

const (
	// readBatchSize bounds the messages fetched per pull when reading a subject.
	readBatchSize = 512
	// directReadsMax is how many messages ReadSubject fetches one by one
	// before it opens a consumer for the rest.
	directReadsMax   = 8
	readFetchWait    = 2 * time.Second
	readConsumerIdle = 10 * time.Second
)

// StoredMsg is one message read back from the stream.
type StoredMsg struct {
	Subject  string
	Sequence uint64
	Time     time.Time
	Data     []byte
}

// ReadSubject calls fn for each message of subject after afterSeq, in order,
// up to the subject's last message at the time of the call.
func (s *Store) ReadSubject(ctx context.Context, subject string, afterSeq uint64, fn func(StoredMsg) error) error {
	last, err := s.LastSeq(ctx, subject)
	if err != nil || last <= afterSeq {
		return err
	}
	// A writer that lost a race is usually a commit or two behind: fetch
	// those directly, which is much cheaper than creating a consumer.
	for range directReadsMax {
		msg, err := s.stream.GetMsg(ctx, afterSeq+1, jetstream.WithGetMsgSubject(subject))
		if err != nil {
			return fmt.Errorf("%w: read %s after %d: %v", ErrUnavailable, subject, afterSeq, err)
		}
		if err := fn(StoredMsg{Subject: msg.Subject, Sequence: msg.Sequence, Time: msg.Time, Data: msg.Data}); err != nil {
			return err
		}
		if afterSeq = msg.Sequence; afterSeq >= last {
			return nil
		}
	}
	return s.read(ctx, []string{subject}, afterSeq, last, fn)
}

// ReadAll calls fn for each message of the stream after afterSeq up to upTo.
func (s *Store) ReadAll(ctx context.Context, afterSeq, upTo uint64, fn func(StoredMsg) error) error {
	if upTo <= afterSeq {
		return nil
	}
	return s.read(ctx, nil, afterSeq, upTo, fn)
}

func (s *Store) read(ctx context.Context, subjects []string, afterSeq, last uint64, fn func(StoredMsg) error) error {
	consumer, err := s.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    afterSeq + 1,
		// Each read makes a consumer; let the server drop it soon after.
		InactiveThreshold: readConsumerIdle,
	})
	if err != nil {
		return fmt.Errorf("%w: read %v: %v", ErrUnavailable, subjects, err)
	}
	for {
		batch, err := consumer.Fetch(readBatchSize, jetstream.FetchMaxWait(readFetchWait))
		if err != nil {
			return fmt.Errorf("%w: read %v: %v", ErrUnavailable, subjects, err)
		}
		received := 0
		for msg := range batch.Messages() {
			received++
			meta, err := msg.Metadata()
			if err != nil {
				return fmt.Errorf("read %v: %w", subjects, err)
			}
			if meta.Sequence.Stream > last {
				return nil
			}
			if err := fn(StoredMsg{Subject: msg.Subject(), Sequence: meta.Sequence.Stream, Time: meta.Timestamp, Data: msg.Data()}); err != nil {
				return err
			}
			if meta.Sequence.Stream == last {
				return nil
			}
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("%w: read %v: %v", ErrUnavailable, subjects, err)
		}
		if received == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			return fmt.Errorf("%w: read %v: no message before %d", ErrUnavailable, subjects, last)
		}
	}
}

// Load reads the message at stream sequence seq.
func (s *Store) Load(ctx context.Context, seq uint64) (StoredMsg, error) {
	msg, err := s.stream.GetMsg(ctx, seq)
	if err != nil {
		return StoredMsg{}, fmt.Errorf("load %d: %w", seq, err)
	}
	return StoredMsg{Subject: msg.Subject, Sequence: msg.Sequence, Time: msg.Time, Data: msg.Data}, nil
}
