package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// directReadsMax is how many messages ReadSubject fetches one by one
	// before it opens a consumer for the rest.
	directReadsMax = 8
	// readFetchBytesMax bounds the bytes one fetch brings, where a count of
	// commits alone allowed gigabytes: a read holds at most this much that
	// fn has not seen. It is MaxPayloadBytes, so nearly every commit fits a
	// bounded fetch (one that does not comes alone, see reader.run). More
	// would not read faster: one round trip per 8 MiB is nothing beside
	// decoding 8 MiB.
	readFetchBytesMax = MaxPayloadBytes
	// readFetchesInFlightMax bounds the fetches in flight on the store's
	// connection at once (see fetchSlots): 4 of 8 MiB is half of the 64 MiB
	// a server lets wait for one connection before it cuts it off as a slow
	// consumer. A start-up reads every partition at once (16 by default),
	// their fetches taking turns at these slots: more slots would risk the
	// cut-off, and on a few cores decoding, not fetching, paces the read.
	readFetchesInFlightMax = 4
	// readFetchMessagesMax bounds the messages of one fetch as well: the
	// client sizes its buffers for this count before anything arrives.
	readFetchMessagesMax = 4096
	// readFetchWait is how long a fetch waits for its first message. An
	// empty fetch is no error (a large stream can take the server seconds
	// to scan); the next waits twice as long, up to readFetchWaitMax.
	readFetchWait    = 2 * time.Second
	readFetchWaitMax = 16 * time.Second
	// readRetryWait is the pause after a fetch that brought nothing or
	// failed, doubling up to readRetryWaitMax while nothing arrives.
	readRetryWait    = 20 * time.Millisecond
	readRetryWaitMax = time.Second
	// readStallMax is how long a read goes on without a single message
	// before it gives up with ErrUnavailable: empty fetches alone never fail
	// a read, a store that answers nothing for minutes does.
	readStallMax = 2 * time.Minute
	// readConsumerIdle is when the server drops a read's consumer after the
	// reader stops pulling (a crashed reader leaves no litter). A reader
	// whose fn was slower than that makes a new one where it stopped.
	readConsumerIdle = 10 * time.Second
	// readProgressInterval is how often a read reports its progress to a
	// hook set by WithReadProgress.
	readProgressInterval = 5 * time.Second
)

// readLimits are the waits and bounds of one read: the constants above,
// which tests shorten (export_test.go).
type readLimits struct {
	fetchWait  time.Duration
	fetchBytes int
}

var readLimitsDefault = readLimits{fetchWait: readFetchWait, fetchBytes: readFetchBytesMax}

// StoredMsg is one message read back from the stream.
type StoredMsg struct {
	Subject  string
	Sequence uint64
	Time     time.Time
	Data     []byte
}

// ReadSubject calls fn for each message of subject after afterSeq, in order,
// up to the subject's last message at the time of the call. It returns
// ErrUnavailable (wrapped) when the store does not answer, ctx.Err() when
// ctx ends, or fn's error.
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
			if err := ctx.Err(); err != nil {
				return err
			}
			// The server is slow or briefly away: the reader below waits
			// and retries where this gives up.
			break
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

// ReadAll calls fn for each message of the stream after afterSeq up to upTo,
// in order, or up to the stream's last message if upTo is beyond it. It
// returns what ReadSubject returns.
func (s *Store) ReadAll(ctx context.Context, afterSeq, upTo uint64, fn func(StoredMsg) error) error {
	if upTo <= afterSeq {
		return nil
	}
	return s.read(ctx, nil, afterSeq, upTo, fn)
}

// ReadProgress is how far a read of the log has come.
type ReadProgress struct {
	// Subjects are the subjects read; none means the whole stream.
	Subjects []string
	// Position is the stream sequence of the last message delivered, and
	// Target the one the read ends at.
	Position, Target uint64
	Messages         int
	Bytes            int64
	Elapsed          time.Duration
	// Retries counts fetches that brought nothing or failed; Reopened, the
	// consumers made again after one went away or lost messages.
	Retries, Reopened int
	// Done is set on the last report of a read, however it ended.
	Done bool
}

// LogValue makes a progress report one readable log attribute.
func (p ReadProgress) LogValue() slog.Value {
	rate := 0.0
	if seconds := p.Elapsed.Seconds(); seconds > 0 {
		rate = float64(p.Messages) / seconds
	}
	return slog.GroupValue(
		slog.Any("subjects", p.Subjects),
		slog.Uint64("position", p.Position),
		slog.Uint64("target", p.Target),
		slog.Int("messages", p.Messages),
		slog.Int64("bytes", p.Bytes),
		slog.Duration("elapsed", p.Elapsed.Round(time.Millisecond)),
		slog.Int("messages_per_second", int(rate)),
		slog.Int("retries", p.Retries),
		slog.Int("reopened", p.Reopened),
		slog.Bool("done", p.Done),
	)
}

type readProgressKey struct{}

// WithReadProgress returns a context under which the store's reads that
// open a consumer (long ones: start-up, rebuilds, audits) call report every
// few seconds and once when they end. report runs on the reading goroutine
// and must be quick. It rides on the context, like net/http/httptrace, so
// that a caller watches the reads it starts without the store holding a
// logger or metrics of its own.
func WithReadProgress(ctx context.Context, report func(ReadProgress)) context.Context {
	return context.WithValue(ctx, readProgressKey{}, report)
}

// errLostMessages: the consumer delivered messages this reader never got,
// for instance after a fetch gave up waiting while they were in flight.
var errLostMessages = errors.New("consumer sequence skipped: messages lost in transit")

// errEmptyFetch stands for a fetch that brought nothing, in the error a
// stalled read ends with.
var errEmptyFetch = errors.New("fetches came back empty")

// fetchSlots bounds the fetches in flight on the store's connection. Every
// read shares that one connection, and a start-up reads all partitions at
// once; the server queues a whole fetch for the connection as soon as it
// is asked, and cuts the connection off (a slow consumer) when more than
// its max_pending (64 MiB by default) waits to be written. Four partitions
// read at once in fetches of 512 commits (about 16 MiB each at one million
// events) did that, and lost the messages in flight. A fetch holds a slot
// until its batch has arrived (reader.fetch). The zero value is ready for
// use.
type fetchSlots struct {
	once  sync.Once
	slots chan struct{}
}

func (f *fetchSlots) acquire(ctx context.Context) error {
	f.once.Do(func() { f.slots = make(chan struct{}, readFetchesInFlightMax) })
	select {
	case f.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fetchSlots) release() { <-f.slots }

// reader is one read: a consumer from just after the last message delivered
// to fn, made again whenever it goes away, until the target is delivered.
type reader struct {
	stream jetstream.Stream
	slots  *fetchSlots
	// nc is the store's connection. Once closed it never reconnects, so a
	// read on it ends, unavailable, rather than wait on a fetch and retry
	// until its context ends (an engine closing after its connection did
	// would wait that long).
	nc       *nats.Conn
	subjects []string
	limits   readLimits
	consumer jetstream.Consumer
	// delivered is the consumer sequence of the last message received from
	// the current consumer: each must be the next, or some went missing.
	delivered uint64
	// pending is how many messages the consumer had left to deliver, as
	// of its last message (or its creation).
	pending  uint64
	opened   bool
	finished bool
	progress ReadProgress
	start    time.Time
	report   func(ReadProgress)
}

func (s *Store) read(ctx context.Context, subjects []string, afterSeq, last uint64, fn func(StoredMsg) error) error {
	r := &reader{
		stream:   s.stream,
		slots:    &s.fetches,
		nc:       s.nc,
		subjects: subjects,
		limits:   readLimitsDefault,
		progress: ReadProgress{Subjects: subjects, Position: afterSeq, Target: last},
		start:    time.Now(),
	}
	r.report, _ = ctx.Value(readProgressKey{}).(func(ReadProgress))
	if r.report != nil {
		defer func() {
			r.progress.Done = true
			r.reportNow()
		}()
	}
	return r.run(ctx, fn)
}

func (r *reader) run(ctx context.Context, fn func(StoredMsg) error) error {
	fetchWait, retryWait := r.limits.fetchWait, readRetryWait
	// oneMessage asks the next fetch for a single message of any size: a
	// message larger than the byte bound ends a bounded fetch empty
	// (the server answers 409, which the client reports as no messages).
	oneMessage := false
	movedAt, reportedAt := time.Now(), time.Now()
	var lastErr error
	for !r.finished {
		if err := ctx.Err(); err != nil {
			return err
		}
		if r.nc != nil && r.nc.IsClosed() {
			return r.connClosed()
		}
		if stalled := time.Since(movedAt); stalled > readStallMax {
			return fmt.Errorf("%w: read %v: nothing after %d (reading to %d) for %s: %v",
				ErrUnavailable, r.subjects, r.progress.Position, r.progress.Target, stalled.Round(time.Second), lastErr)
		}
		var received int
		var fetchErr error
		if r.consumer == nil {
			fetchErr = r.open(ctx)
		}
		if fetchErr == nil {
			var err error
			if received, fetchErr, err = r.fetch(ctx, fetchWait, oneMessage, fn); err != nil {
				return err
			}
		}
		if received > 0 {
			movedAt = time.Now()
			fetchWait, retryWait, oneMessage = r.limits.fetchWait, readRetryWait, false
			if r.report != nil && time.Since(reportedAt) >= readProgressInterval {
				reportedAt = time.Now()
				r.reportNow()
			}
			if fetchErr == nil || r.finished {
				continue
			}
		}
		if r.finished {
			break
		}
		r.progress.Retries++
		failed := fetchErr != nil
		lastErr = fetchErr
		if !failed {
			lastErr = errEmptyFetch
			oneMessage = true
			fetchWait = min(2*fetchWait, readFetchWaitMax)
		}
		if r.consumer != nil {
			if err := r.inspect(ctx); err != nil {
				lastErr, failed = err, true
			}
			if r.finished {
				break
			}
		}
		// An empty fetch on a sound consumer has waited already; the next
		// waits longer. Errors and lost consumers pause before the retry.
		if !failed && r.consumer != nil {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(retryWait):
		}
		retryWait = min(2*retryWait, readRetryWaitMax)
	}
	return nil
}

// connClosed is the error of a read whose connection closed.
func (r *reader) connClosed() error {
	return fmt.Errorf("%w: read %v: the connection to NATS is closed", ErrUnavailable, r.subjects)
}

// open makes a consumer that starts just after the last message delivered.
// It is ephemeral, in memory and unacknowledged: the reader itself keeps
// the position, so a consumer is cheap to lose and to make again.
func (r *reader) open(ctx context.Context) error {
	cfg := jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       r.progress.Position + 1,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: readConsumerIdle,
		MemoryStorage:     true,
		Replicas:          1,
	}
	if len(r.subjects) == 1 {
		cfg.FilterSubject = r.subjects[0]
	} else {
		cfg.FilterSubjects = r.subjects
	}
	consumer, err := r.stream.CreateConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("create consumer: %w", err)
	}
	if r.opened {
		r.progress.Reopened++
	}
	r.consumer, r.delivered, r.opened = consumer, 0, true
	r.pending = consumer.CachedInfo().NumPending
	return nil
}

// fetch pulls one batch and hands its messages to fn as they arrive. It
// returns how many messages the consumer delivered, the error that cut the
// fetch short (the caller retries), and an error that ends the read: fn's,
// or ctx's.
func (r *reader) fetch(ctx context.Context, wait time.Duration, oneMessage bool, fn func(StoredMsg) error) (received int, fetchErr, err error) {
	// The batch's channel stays open when the connection closes, until
	// the fetch's wait runs out: the connection's own news ends it sooner.
	var closed chan nats.Status
	if r.nc != nil {
		closed = r.nc.StatusChanged(nats.CLOSED)
		defer r.nc.RemoveStatusListener(closed)
		if r.nc.IsClosed() {
			return 0, nil, r.connClosed()
		}
	}
	// The slot is held until the batch has arrived, not until fn has seen
	// it: fn may itself read the store (a catch-up looks up the quarantine
	// records), and must not wait for a slot its own read holds.
	if err := r.slots.acquire(ctx); err != nil {
		return 0, nil, err
	}
	// Asking for no more than the consumer has pending lets the server end
	// the batch at the log's end instead of holding it open for messages
	// to come, and the slot with it, until the wait runs out.
	count := int(min(max(r.pending, 1), readFetchMessagesMax))
	var batch jetstream.MessageBatch
	if oneMessage {
		batch, fetchErr = r.consumer.Fetch(1, jetstream.FetchMaxWait(wait))
	} else {
		batch, fetchErr = r.consumer.Fetch(count, jetstream.FetchMaxBytes(r.limits.fetchBytes), jetstream.FetchMaxWait(wait))
	}
	if fetchErr != nil {
		r.slots.release()
		return 0, fetchErr, nil
	}
	// Both channels have room for the whole batch, so neither goroutine
	// blocks on them; a batch left behind (ctx ended, messages lost)
	// finishes on its own within wait and gives its slot back then.
	messages := make(chan jetstream.Msg, readFetchMessagesMax)
	go func() {
		defer r.slots.release()
		defer close(messages)
		for msg := range batch.Messages() {
			messages <- msg
		}
	}()
	for {
		// Checked before every message: select would pick among a buffered
		// message and a done context at random.
		if err := ctx.Err(); err != nil {
			return received, nil, err
		}
		var msg jetstream.Msg
		var ok bool
		select {
		case <-ctx.Done():
			return received, nil, ctx.Err()
		case <-closed:
			return received, nil, r.connClosed()
		case msg, ok = <-messages:
		}
		if !ok {
			// Set before the batch's channel closed, so before this one.
			return received, batch.Error(), nil
		}
		meta, err := msg.Metadata()
		if err != nil {
			return received, nil, fmt.Errorf("read %v: %w", r.subjects, err)
		}
		if meta.Sequence.Consumer != r.delivered+1 {
			r.consumer = nil
			return received, fmt.Errorf("%w: got %d after %d", errLostMessages, meta.Sequence.Consumer, r.delivered), nil
		}
		r.delivered, r.pending = meta.Sequence.Consumer, meta.NumPending
		received++
		seq := meta.Sequence.Stream
		if seq <= r.progress.Position {
			// Delivered already. A consumer starts after the position, so
			// this cannot happen; if it did, fn must not see it twice.
			continue
		}
		if seq > r.progress.Target {
			r.finished = true
			return received, nil, nil
		}
		data := msg.Data()
		if err := fn(StoredMsg{Subject: msg.Subject(), Sequence: seq, Time: meta.Timestamp, Data: data}); err != nil {
			return received, nil, err
		}
		r.progress.Position = seq
		r.progress.Messages++
		r.progress.Bytes += int64(len(data))
		if seq == r.progress.Target {
			r.finished = true
			return received, nil, nil
		}
	}
}

// inspect looks at the consumer after a fetch that brought nothing or
// failed, and drops it when it is gone or cannot bring the rest; the next
// round makes a new one. A consumer that is merely slow is kept. An error
// is the store not answering.
func (r *reader) inspect(ctx context.Context) error {
	info, err := r.consumer.Info(ctx)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		// Deleted after inactivity, or lost with a server restart or a
		// change of leader.
		r.consumer = nil
	case err != nil:
		return fmt.Errorf("consumer info: %w", err)
	case info.Delivered.Consumer != r.delivered:
		// Delivered but never received: the fetch gave up on them.
		r.consumer = nil
		return errLostMessages
	case info.NumPending == 0:
		// Nothing left to deliver though the target is not reached: the
		// target may lie beyond the log (ReadAll's upTo is the caller's),
		// or this consumer is confused. Look at the log itself.
		end, err := r.end(ctx)
		if err != nil {
			return err
		}
		if end < r.progress.Target {
			r.progress.Target = end
			if r.progress.Position >= end {
				r.finished = true
				return nil
			}
		}
		r.consumer = nil
	}
	return nil
}

// end is the stream sequence of the last message on the subjects read.
func (r *reader) end(ctx context.Context) (uint64, error) {
	if len(r.subjects) == 1 {
		msg, err := r.stream.GetLastMsgForSubject(ctx, r.subjects[0])
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("last message of %s: %w", r.subjects[0], err)
		}
		return msg.Sequence, nil
	}
	// The stream's last message bounds any filter's.
	info, err := r.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream info: %w", err)
	}
	return info.State.LastSeq, nil
}

func (r *reader) reportNow() {
	r.progress.Elapsed = time.Since(r.start)
	r.report(r.progress)
}

// Load reads the message at stream sequence seq.
func (s *Store) Load(ctx context.Context, seq uint64) (StoredMsg, error) {
	msg, err := s.stream.GetMsg(ctx, seq)
	if err != nil {
		return StoredMsg{}, fmt.Errorf("load %d: %w", seq, err)
	}
	return StoredMsg{Subject: msg.Subject, Sequence: msg.Sequence, Time: msg.Time, Data: msg.Data}, nil
}
