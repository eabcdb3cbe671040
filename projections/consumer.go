package projections

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjetstream "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/wmjs"
)

// Bounds of the consumer.
const (
	// consumerAckPendingMax bounds commits delivered ahead of the one being
	// applied; it is also the applier's queue.
	consumerAckPendingMax = 512
	consumerAckWait       = 30 * time.Second
	consumerIdle          = 30 * time.Second
	// liveBatchCommitsMax bounds the commits applied in one transaction
	// while consuming live. Commits that queued while the last transaction
	// ran are applied together: a transaction's fixed costs (the commit of
	// the WAL, the checkpoint row, the index pages a tenant's rows share)
	// are paid once for all of them. Under a light load a batch is one
	// commit, so nothing waits for company.
	liveBatchCommitsMax = 256
	// liveBatchBytesMax bounds the stored bytes of a batch, and
	// liveQueueBytesMax the bytes the queue behind it holds, stored and
	// decoded (delivery.weight): a commit may be up to 8 MiB, and 512 of
	// them must not all wait in memory.
	liveBatchBytesMax = 32 << 20
	liveQueueBytesMax = 64 << 20
	// decodedEventBytesMax bounds what decoding adds to a commit's stored
	// bytes per event, beyond copies of the stored text: the envelope,
	// the event's struct, its decimals and dimension texts. Measured at
	// about 250 on usage debits of 320 stored bytes
	// (TestLiveQueueHoldsItsBoundInDecodedBytesToo weighs the heap a full
	// queue holds, and fails if this falls short).
	decodedEventBytesMax = 384
	// applyRetryMin and applyRetryMax pace the retries of a batch that
	// failed (SQLite busy, disk full). A commit is never skipped: a poison
	// commit stalls the projection, which shows as lag and as the error on
	// /readyz, rather than leave a balance silently wrong.
	applyRetryMin   = 20 * time.Millisecond
	applyRetryMax   = time.Second
	routerCloseWait = 10 * time.Second
	// catchUpPending is the backlog, in commits not yet delivered, past
	// which the applier catches up in bulk straight from the log.
	catchUpPending    = consumerAckPendingMax
	watermillTopicAll = eventstore.StreamName
)

// Consume runs the projection from its checkpoint with a Watermill router on
// a JetStream consumer until ctx ends. nc must be a connection of its own:
// Watermill drains it on close.
//
// JetStream acknowledgements are flow control only. The resume point is the
// checkpoint stored in the same SQLite transaction as the rows a commit
// produced; each run creates its consumer at checkpoint + 1, so a commit
// delivered but not yet applied is delivered again after a restart, and the
// projection's strict next-position check drops redeliveries of applied
// ones. The handler therefore acknowledges a delivery once it is queued for
// the applier, which applies whatever queued meanwhile in one transaction
// (liveBatchCommitsMax): one transaction per commit could not keep up with
// heavy writes, and the lag grew with them.
//
// When the consumer reports more than catchUpPending commits waiting, the
// applier first catches up straight from the log (reader) in large
// transactions; the deliveries it covered are then skipped as already
// applied. A delivery that does not follow the last commit applied (a
// consumer recreated past a gap) is preceded by a read of the missing
// commits from the log.
func Consume(ctx context.Context, nc *nats.Conn, p *Projector, reader LogReader, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reader != nil {
		if err := p.learnHeads(ctx, reader); err != nil {
			return err
		}
	}
	var gates wmjs.Gates
	// Watermill logs every message at info; that is debug detail here.
	wlog := watermill.NewSlogLoggerWithLevelMapping(log.With("component", "projection"),
		map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
	subscriber, err := wmjetstream.NewSubscriber(wmjetstream.SubscriberConfig{
		Conn:                nc,
		Logger:              wlog,
		AckWaitTimeout:      consumerAckWait,
		ResourceInitializer: consumerFromCheckpoint(p, &gates),
		AckAsync:            true,
		Unmarshaler:         wmjs.Unmarshaler{},
	})
	if err != nil {
		return fmt.Errorf("projection subscriber: %w", err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: routerCloseWait}, wlog)
	if err != nil {
		return err
	}
	router.AddMiddleware(middleware.Recoverer)
	// The applier runs until ctx ends; the router's handler only queues.
	a := newApplier(p, reader, log)
	var applying sync.WaitGroup
	applying.Go(func() { a.run(ctx) })
	applying.Go(func() { p.db.checkpointWAL(ctx, log) })
	defer applying.Wait()
	router.AddConsumerHandler("projection", watermillTopicAll, subscriber, func(msg *message.Message) error {
		seq, err := strconv.ParseUint(msg.Metadata.Get(wmjs.MetadataSequence), 10, 64)
		if err != nil {
			return fmt.Errorf("message without stream sequence: %w", err)
		}
		if pending, err := strconv.ParseUint(msg.Metadata.Get(wmjs.MetadataPending), 10, 64); err == nil {
			a.undelivered.Store(pending)
		}
		var storedAt time.Time
		if ns, err := strconv.ParseInt(msg.Metadata.Get(wmjs.MetadataStoredAt), 10, 64); err == nil {
			storedAt = time.Unix(0, ns)
		}
		return a.enqueue(ctx, eventstore.StoredMsg{Subject: msg.Metadata.Get(wmjs.MetadataSubject), Sequence: seq, Time: storedAt, Data: msg.Payload})
	})
	// Stop in order: no new deliveries, in-flight ones finished, then the
	// router. watermill-nats closes its output channel when the context
	// ends, and a delivery still in flight then would send on it and panic.
	routerCtx, stopRouter := context.WithCancel(context.Background())
	defer stopRouter()
	go func() {
		<-ctx.Done()
		gates.Stop()
		stopRouter()
	}()
	return router.Run(routerCtx)
}

// applier applies the queued deliveries in batches, in order.
type applier struct {
	p      *Projector
	reader LogReader // nil: no catch-up from the log
	log    *slog.Logger
	queue  chan delivery
	// prepared is enqueue's cache of dimension texts (prepareDims); enqueue
	// runs on the consumer's handler, one delivery at a time.
	prepared map[dimsKey]*dimsText
	// decoded is run's buffer for a batch's commits.
	decoded []Decoded
	// queued is the weight of the deliveries in queue, which
	// queueBytesMax bounds; drained wakes an enqueue waiting for it to
	// shrink.
	queued        atomic.Int64
	queueBytesMax int64
	drained       chan struct{}
	// undelivered is what the consumer last reported waiting behind the
	// newest delivery.
	undelivered atomic.Uint64
	// lagReported is the last delivery whose lag was reported, or the
	// position when the applier started.
	lagReported uint64
}

func newApplier(p *Projector, reader LogReader, log *slog.Logger) *applier {
	a := &applier{p: p, reader: reader, log: log, queue: make(chan delivery, consumerAckPendingMax),
		queueBytesMax: liveQueueBytesMax, prepared: map[dimsKey]*dimsText{}, drained: make(chan struct{}, 1)}
	if p != nil {
		// What the read models held before this consumer started is not
		// its to report: a redelivery of it would show as a huge lag.
		a.lagReported = p.Position()
	}
	return a
}

// delivery is a commit as the consumer's handler queued it: the stored
// message and, decoded ahead, its commit.
//
// Decoding on the handler's goroutine takes it off the applier's, which
// is the live projection's one sequential path: while the applier writes a
// batch to SQLite the handler decodes the next, on the other core. Decoding
// and hashing were nearly a third of the applier's time, and the
// projection fell behind a 100,000 events/s ingest (BenchmarkLiveApply).
type delivery struct {
	eventstore.StoredMsg
	decoded Decoded
	// skip is the set of messages set aside that the decoding honoured
	// (the projector's, at the time); err is why the message did not
	// decode. Either sends the batch through Projector.Apply, which decodes
	// again with what holds then.
	skip *eventstore.Quarantined
	err  error
	// weight is what the delivery holds in memory, at most: its stored
	// bytes, a copy of them at most in the decoded texts, and each event's
	// decoded structures. It, not the stored bytes alone, is what the
	// queue's bound counts: with its decoding, a commit holds about 2.7
	// times its stored bytes, so a stalled projection whose queue held
	// 64 MiB of stored bytes held about 170 MB.
	weight int64
}

// prepare decodes m for the applier, as Projector.Apply would.
func (a *applier) prepare(m eventstore.StoredMsg) delivery {
	d := delivery{StoredMsg: m, weight: int64(len(m.Data))}
	if a.p == nil {
		return d
	}
	d.skip = a.p.quarantined.Load()
	var skip eventstore.Quarantined
	if d.skip != nil {
		skip = *d.skip
	}
	decoded, err := Decode([]eventstore.StoredMsg{m}, skip)
	if err != nil {
		d.err = err
		return d
	}
	prepareDims(decoded, a.prepared)
	d.decoded = decoded[0]
	if d.decoded.Subject != "" { // a commit, not a checkpoint or a message set aside
		d.weight += int64(len(m.Data)) + int64(len(d.decoded.Commit.Events))*decodedEventBytesMax
	}
	return d
}

// enqueue decodes a delivery and queues it for the applier, waiting while
// the queue would hold more than queueBytesMax (a delivery alone weighing
// more still goes through an empty queue).
func (a *applier) enqueue(ctx context.Context, m eventstore.StoredMsg) error {
	d := a.prepare(m)
	for queued := a.queued.Load(); queued > 0 && queued+d.weight > a.queueBytesMax; queued = a.queued.Load() {
		select {
		case <-a.drained:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	a.queued.Add(d.weight)
	select {
	case a.queue <- d:
		a.notePending()
		return nil
	case <-ctx.Done():
		a.queued.Add(-d.weight)
		return ctx.Err()
	}
}

// take receives one delivery from the queue (false: none waiting, or ctx
// ended while wait was set).
func (a *applier) take(ctx context.Context, wait bool) (delivery, bool) {
	var m delivery
	if wait {
		select {
		case <-ctx.Done():
			return m, false
		case m = <-a.queue:
		}
	} else {
		select {
		case m = <-a.queue:
		default:
			return m, false
		}
	}
	a.queued.Add(-m.weight)
	select {
	case a.drained <- struct{}{}:
	default:
	}
	return m, true
}

// notePending sets the projection's lag in commits: queued here, or not
// yet delivered.
func (a *applier) notePending() {
	a.p.pending.Store(a.undelivered.Load() + uint64(len(a.queue)))
}

func (a *applier) run(ctx context.Context) {
	batch := make([]delivery, 0, liveBatchCommitsMax)
	for {
		m, ok := a.take(ctx, true)
		if !ok {
			return
		}
		batch = append(batch[:0], m)
		for bytes := len(m.Data); len(batch) < liveBatchCommitsMax && bytes < liveBatchBytesMax; bytes += len(m.Data) {
			if m, ok = a.take(ctx, false); !ok {
				break
			}
			batch = append(batch, m)
		}
		a.apply(ctx, batch)
		clear(batch) // the payloads are garbage once applied
		a.notePending()
	}
}

// apply applies a batch, retrying until it is applied or ctx ends, and
// reports the lag of the commits it brought into the read models.
func (a *applier) apply(ctx context.Context, batch []delivery) {
	p := a.p
	defer a.reportLag(batch)
	wait := applyRetryMin
	for {
		if a.reader != nil && a.undelivered.Load() > catchUpPending && batch[len(batch)-1].Sequence > p.Position() {
			if err := p.CatchUp(ctx, a.reader, 0); err != nil && ctx.Err() == nil {
				a.log.Warn("projection catch-up failed; continuing with the deliveries", "err", err)
			}
		}
		var err error
		if next := firstAfter(batch, p.Position()); a.reader != nil && next > p.Position()+1 {
			// Deliveries are missing before this batch: read them from the
			// log (applying the batch first would break its chains).
			err = p.CatchUp(ctx, a.reader, next-1)
		}
		if err == nil {
			err = a.applyDecoded(ctx, batch)
		}
		if eventstore.IsForeign(err) && a.reader != nil {
			// An operator may have set it aside since: read the records
			// again (only on this rare path) and retry.
			if quarantined, qerr := a.reader.Quarantined(ctx); qerr == nil {
				p.UseQuarantined(quarantined)
				err = p.Apply(ctx, stored(batch))
			}
		}
		if err == nil || ctx.Err() != nil {
			return
		}
		a.log.Warn("projection apply failed", "from", batch[0].Sequence, "to", batch[len(batch)-1].Sequence, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, applyRetryMax)
	}
}

// applyDecoded applies the batch's commits as decoded ahead (a retry
// reuses them: applying reads a decoded commit, never changes it). A batch
// with a delivery that did not decode, or one decoded before the messages
// set aside changed, goes through Projector.Apply instead, which decodes
// the stored messages afresh: exactly what applying them without decoding
// ahead would do.
func (a *applier) applyDecoded(ctx context.Context, batch []delivery) error {
	skip := a.p.quarantined.Load()
	decoded := a.decoded[:0]
	for _, d := range batch {
		if d.err != nil || d.skip != skip {
			return a.p.Apply(ctx, stored(batch))
		}
		decoded = append(decoded, d.decoded)
	}
	err := a.p.ApplyDecoded(ctx, decoded)
	clear(decoded) // the commits are garbage once applied
	a.decoded = decoded[:0]
	return err
}

// stored is the batch's stored messages.
func stored(batch []delivery) []eventstore.StoredMsg {
	msgs := make([]eventstore.StoredMsg, len(batch))
	for i, d := range batch {
		msgs[i] = d.StoredMsg
	}
	return msgs
}

// consumerFromCheckpoint creates this instance's own consumer of the whole
// stream, starting after the projection's checkpoint. Each instance builds
// its own read models, so consumers are per process and removed on close.
func consumerFromCheckpoint(p *Projector, gates *wmjs.Gates) wmjetstream.ResourceInitializer {
	return func(ctx context.Context, js jetstream.JetStream, _ string) (jetstream.Consumer, func(context.Context, watermill.LoggerAdapter), error) {
		stream, err := js.Stream(ctx, eventstore.StreamName)
		if err != nil {
			return nil, nil, err
		}
		name := "creditd-projection-" + nuid.Next()
		consumer, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Name:              name,
			DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:       p.Position() + 1,
			AckPolicy:         jetstream.AckExplicitPolicy,
			AckWait:           consumerAckWait,
			MaxAckPending:     consumerAckPendingMax,
			InactiveThreshold: consumerIdle,
		})
		if err != nil {
			return nil, nil, err
		}
		return gates.Wrap(consumer), func(ctx context.Context, log watermill.LoggerAdapter) {
			if err := stream.DeleteConsumer(ctx, name); err != nil {
				log.Debug("delete projection consumer", watermill.LogFields{"err": err})
			}
		}, nil
	}
}

// firstAfter is the first sequence in batch after position, 0 if none.
func firstAfter(batch []delivery, position uint64) uint64 {
	for _, m := range batch {
		if m.Sequence > position {
			return m.Sequence
		}
	}
	return 0
}
