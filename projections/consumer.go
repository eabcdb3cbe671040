package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
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
	// applied.
	consumerAckPendingMax = 512
	consumerAckWait       = 30 * time.Second
	consumerIdle          = 30 * time.Second
	// applyRetriesMax retries a failing commit in place (SQLite busy, disk
	// full) before it is handed back to JetStream for redelivery. A commit
	// is never skipped: a poison commit stalls the projection, which shows
	// as lag on /readyz, rather than leave a balance silently wrong.
	applyRetriesMax = 5
	redeliveryDelay = 500 * time.Millisecond
	routerCloseWait = 10 * time.Second
	// catchUpPending is the backlog, in commits, past which the consumer
	// catches up in bulk.
	catchUpPending    = 32
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
//
// When the consumer reports more than catchUpPending commits waiting, the
// handler first catches up straight from the log (reader) in large
// transactions; the deliveries it covered are then skipped as already
// applied. That keeps the lag bounded under heavy writes, where one
// transaction per commit could not keep up.
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
		NakDelay:            wmjetstream.NewStaticDelay(redeliveryDelay),
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
		seq, err := strconv.ParseUint(msg.Metadata.Get(wmjs.MetadataSequence), 10, 64)
		if err != nil {
			return fmt.Errorf("message without stream sequence: %w", err)
		}
		pending, err := strconv.ParseUint(msg.Metadata.Get(wmjs.MetadataPending), 10, 64)
		if err == nil {
			p.pending.Store(pending)
		}
		if reader != nil && pending > catchUpPending && seq > p.Position() {
			if err := p.CatchUp(msg.Context(), reader, 0); err != nil {
				log.Warn("projection catch-up failed; continuing commit by commit", "err", err)
			}
		}
		stored := eventstore.StoredMsg{Subject: msg.Metadata.Get(wmjs.MetadataSubject), Sequence: seq, Data: msg.Payload}
		err = p.Apply(msg.Context(), []eventstore.StoredMsg{stored})
		if eventstore.IsForeign(err) && reader != nil {
			// An operator may have set it aside since: read the records
			// again (only on this rare path) and retry once.
			if quarantined, qerr := reader.Quarantined(msg.Context()); qerr == nil {
				p.UseQuarantined(quarantined)
				err = p.Apply(msg.Context(), []eventstore.StoredMsg{stored})
			}
		}
		if err != nil {
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
		gates.Stop()
		stopRouter()
	}()
	return router.Run(routerCtx)
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
