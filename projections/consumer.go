package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjetstream "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/creditd/creditd/eventstore"
)

// Bounds of the consumer.
const (
	// consumerAckPendingMax bounds commits delivered ahead of the one being
	// applied.
	consumerAckPendingMax = 512
	consumerAckWait       = 30 * time.Second
	consumerIdle          = 30 * time.Second
	// applyRetriesMax retries a failing commit in place (SQLite busy, disk
	// full) before it is handed back to JetStream for redelivery. A commit
	// is never skipped: a poison commit stalls the projection, which shows
	// as lag on /readyz, rather than leave a balance silently wrong.
	applyRetriesMax   = 5
	redeliveryDelay   = 500 * time.Millisecond
	routerCloseWait   = 10 * time.Second
	metadataSequence  = "creditd_stream_seq"
	metadataPending   = "creditd_pending"
	watermillTopicAll = eventstore.StreamName
)

// Consume runs the projection from its checkpoint with a Watermill router on
// a JetStream consumer until ctx ends. nc must be a connection of its own:
// Watermill drains it on close.
//
// JetStream acknowledgements are flow control only. The resume point is the
// checkpoint stored in the same SQLite transaction as the rows a commit
// produced; each run creates its consumer at checkpoint + 1, so an
// acknowledged-but-uncommitted commit is delivered again, and the
// projection's strict next-position check drops redeliveries of applied
// ones.
func Consume(ctx context.Context, nc *nats.Conn, p *Projector, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	gate := &gatedConsumer{}
	// Watermill logs every message at info; that is debug detail here.
	wlog := watermill.NewSlogLoggerWithLevelMapping(log.With("component", "projection"),
		map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
	subscriber, err := wmjetstream.NewSubscriber(wmjetstream.SubscriberConfig{
		Conn:                nc,
		Logger:              wlog,
		AckWaitTimeout:      consumerAckWait,
		ResourceInitializer: consumerFromCheckpoint(p, gate),
		NakDelay:            wmjetstream.NewStaticDelay(redeliveryDelay),
		AckAsync:            true,
		Unmarshaler:         sequenceUnmarshaler{},
	})
	if err != nil {
		return fmt.Errorf("projection subscriber: %w", err)
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: routerCloseWait}, wlog)
	if err != nil {
		return err
	}
	router.AddMiddleware(
		middleware.Recoverer,
		middleware.Retry{
			MaxRetries: applyRetriesMax, InitialInterval: 20 * time.Millisecond, MaxInterval: time.Second, Multiplier: 2,
			// A gap is not fixed by retrying in place: the missing commit
			// must be redelivered first.
			ShouldRetry: func(params middleware.RetryParams) bool { return !errors.Is(params.Err, ErrOutOfOrder) },
			Logger:      wlog,
		}.Middleware,
	)
	router.AddConsumerHandler("projection", watermillTopicAll, subscriber, func(msg *message.Message) error {
		seq, err := strconv.ParseUint(msg.Metadata.Get(metadataSequence), 10, 64)
		if err != nil {
			return fmt.Errorf("message without stream sequence: %w", err)
		}
		if pending, err := strconv.ParseUint(msg.Metadata.Get(metadataPending), 10, 64); err == nil {
			p.pending.Store(pending)
		}
		if err := p.Apply(msg.Context(), []eventstore.StoredMsg{{Sequence: seq, Data: msg.Payload}}); err != nil {
			log.Warn("projection apply failed", "position", seq, "err", err)
			return err
		}
		return nil
	})
	// Stop in order: no new deliveries, in-flight ones finished, then the
	// router. watermill-nats closes its output channel when the context
	// ends, and a delivery still in flight then would send on it and panic.
	routerCtx, stopRouter := context.WithCancel(context.Background())
	defer stopRouter()
	go func() {
		<-ctx.Done()
		gate.stop()
		stopRouter()
	}()
	return router.Run(routerCtx)
}

// gatedConsumer lets Consume stop deliveries and wait for the ones in
// flight before the subscription's context ends.
type gatedConsumer struct {
	jetstream.Consumer
	mu       sync.Mutex
	stopped  bool
	inflight sync.WaitGroup
}

// Consume delivers messages to handler until stop. A message arriving
// after stop is left unacknowledged; the next consumer starts from the
// checkpoint anyway.
func (g *gatedConsumer) Consume(handler jetstream.MessageHandler, opts ...jetstream.PullConsumeOpt) (jetstream.ConsumeContext, error) {
	return g.Consumer.Consume(func(msg jetstream.Msg) {
		g.mu.Lock()
		if g.stopped {
			g.mu.Unlock()
			return
		}
		g.inflight.Add(1)
		g.mu.Unlock()
		defer g.inflight.Done()
		handler(msg)
	}, opts...)
}

func (g *gatedConsumer) stop() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
	g.inflight.Wait()
}

// consumerFromCheckpoint creates this instance's own consumer of the whole
// stream, starting after the projection's checkpoint. Each instance builds
// its own read models, so consumers are per process and removed on close.
func consumerFromCheckpoint(p *Projector, gate *gatedConsumer) wmjetstream.ResourceInitializer {
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
		gate.Consumer = consumer
		return gate, func(ctx context.Context, log watermill.LoggerAdapter) {
			if err := stream.DeleteConsumer(ctx, name); err != nil {
				log.Debug("delete projection consumer", watermill.LogFields{"err": err})
			}
		}, nil
	}
}

// sequenceUnmarshaler carries the stream sequence (the log position) into
// the Watermill message, which the default unmarshaler drops.
type sequenceUnmarshaler struct{}

func (sequenceUnmarshaler) Unmarshal(msg jetstream.Msg) (*message.Message, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return nil, err
	}
	wm := message.NewMessage(strconv.FormatUint(meta.Sequence.Stream, 10), msg.Data())
	wm.Metadata.Set(metadataSequence, strconv.FormatUint(meta.Sequence.Stream, 10))
	wm.Metadata.Set(metadataPending, strconv.FormatUint(meta.NumPending, 10))
	return wm, nil
}
