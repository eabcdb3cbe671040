// Package ingest takes metering producers' usage events from NATS: they
// publish to credits.usage.<tenant_id> on a JetStream work stream, and a
// Watermill router of many concurrent handlers records them through the
// command engine, acknowledging each message only after its debits are
// stored. Messages that can never be recorded go to a dead-letter stream
// with the reason.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjetstream "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/internal/wmjs"
)

// Streams, subjects and the consumer.
const (
	StreamName     = "CREDITS_USAGE"
	SubjectPrefix  = "credits.usage."
	DeadStreamName = "CREDITS_USAGE_DEAD"
	DeadPrefix     = "credits.usage_dead."
	ConsumerName   = "creditd-ingest"

	// HeaderReason names why a dead letter could not be recorded.
	HeaderReason = "Creditd-Reason"
	// HeaderSubject is the subject the dead letter was published to.
	HeaderSubject = "Creditd-Subject"
)

// Bounds of ingestion.
const (
	// WorkersDefault is how many messages are recorded at once: the
	// engine's group commit gathers them into few commits.
	WorkersDefault = 64
	// deliveriesMax bounds attempts at a message that fails for a reason
	// that may pass (the store unavailable); after it, a dead letter.
	deliveriesMax    = 5
	redeliveryDelay  = time.Second
	ackWait          = 30 * time.Second
	ackPendingMax    = 8192
	pullBatch        = 64
	messageBytesMax  = commands.UsageBatchMax * httpapi.UsageEventBytesMax
	routerCloseWait  = 10 * time.Second
	deadPublishLimit = 5 * time.Second
)

// Recorder records usage; *commands.Engine satisfies it.
type Recorder interface {
	RecordUsage(ctx context.Context, tenantID int64, events []commands.UsageEvent) ([]commands.Result, error)
}

// Options configures Consume.
type Options struct {
	Workers int
	Logger  *slog.Logger
	// Dead counts dead letters, for metrics; may be nil.
	Dead func(reason string)
}

// Consume records usage messages until ctx ends. nc must be a connection of
// its own (Watermill drains it on close).
func Consume(ctx context.Context, nc *nats.Conn, rec Recorder, opts Options) error {
	if opts.Workers <= 0 {
		opts.Workers = WorkersDefault
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	wlog := watermill.NewSlogLoggerWithLevelMapping(opts.Logger.With("component", "ingest"), map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
	var gates wmjs.Gates
	subscriber, err := wmjetstream.NewSubscriber(wmjetstream.SubscriberConfig{
		Conn: nc, Logger: wlog, AckWaitTimeout: ackWait, AckAsync: false,
		NakDelay:    wmjetstream.NewStaticDelay(redeliveryDelay),
		Unmarshaler: wmjs.Unmarshaler{},
		ResourceInitializer: func(ctx context.Context, js jetstream.JetStream, _ string) (jetstream.Consumer, func(context.Context, watermill.LoggerAdapter), error) {
			// One durable consumer shared by every worker and every
			// creditd instance: each message goes to one of them.
			consumer, err := js.CreateOrUpdateConsumer(ctx, StreamName, jetstream.ConsumerConfig{
				Durable: ConsumerName, AckPolicy: jetstream.AckExplicitPolicy, AckWait: ackWait,
				MaxAckPending: ackPendingMax, FilterSubject: SubjectPrefix + "*",
			})
			if err != nil {
				return nil, nil, err
			}
			return gates.Wrap(consumer), nil, nil
		},
		ConsumeOptions: []jetstream.PullConsumeOpt{jetstream.PullMaxMessages(pullBatch)},
	})
	if err != nil {
		return err
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: routerCloseWait}, wlog)
	if err != nil {
		return err
	}
	router.AddMiddleware(middleware.Recoverer)
	h := &handler{js: js, rec: rec, log: opts.Logger, dead: opts.Dead}
	for i := range opts.Workers {
		router.AddConsumerHandler(fmt.Sprintf("ingest-%d", i), StreamName, subscriber, h.handle)
	}
	routerCtx, stopRouter := context.WithCancel(context.Background())
	defer stopRouter()
	go func() {
		<-ctx.Done()
		gates.Stop()
		stopRouter()
	}()
	return router.Run(routerCtx)
}

type handler struct {
	js   jetstream.JetStream
	rec  Recorder
	log  *slog.Logger
	dead func(string)
}

// errRetry marks a failure worth another delivery.
var errRetry = errors.New("retry later")

// handle records one message: a usage event, or {"events": [...]} from a
// producer that batches. Events that cannot be recorded are dead-lettered
// one by one; the others are recorded; the message is acknowledged only
// when every event is stored or dead-lettered.
func (h *handler) handle(msg *message.Message) error {
	ctx := msg.Context()
	subject := msg.Metadata.Get(wmjs.MetadataSubject)
	delivered, _ := strconv.Atoi(msg.Metadata.Get(wmjs.MetadataDelivered))
	tenantID, err := strconv.ParseInt(strings.TrimPrefix(subject, SubjectPrefix), 10, 64)
	if err != nil || tenantID < 1 {
		return h.deadLetter(ctx, subject, msg.Payload, "the subject names no tenant id: publish to "+SubjectPrefix+"<tenant_id>")
	}
	raws, err := splitEvents(msg.Payload)
	if err != nil {
		return h.deadLetter(ctx, subject, msg.Payload, "invalid JSON: "+err.Error())
	}
	events := make([]commands.UsageEvent, 0, len(raws))
	type invalid struct {
		raw    []byte
		reason string
	}
	var invalids []invalid
	var dec httpapi.UsageEventDecoder // the message's events share what recurs
	for _, raw := range raws {
		ev, err := dec.Decode(raw)
		if err != nil {
			invalids = append(invalids, invalid{raw, "invalid event: " + describe(err)})
			continue
		}
		events = append(events, ev)
	}
	// Invalid events are dead-lettered once the valid ones are stored, so
	// a redelivery does not dead-letter them again.
	deadInvalid := func() error {
		for _, inv := range invalids {
			if err := h.deadLetter(ctx, subject, inv.raw, inv.reason); err != nil {
				return err
			}
		}
		return nil
	}
	if len(events) == 0 {
		return deadInvalid()
	}
	results, err := h.rec.RecordUsage(ctx, tenantID, events)
	switch {
	case errors.Is(err, commands.ErrTenantNotFound) && delivered < deliveriesMax:
		// Possibly created a moment ago on another instance.
		return fmt.Errorf("%w: %v", errRetry, err)
	case errors.Is(err, commands.ErrTenantNotFound):
		return h.deadLetter(ctx, subject, msg.Payload, "unknown tenant "+strconv.FormatInt(tenantID, 10))
	case errors.Is(err, commands.ErrCommitTooLarge):
		return h.deadLetter(ctx, subject, msg.Payload, "the batch does not fit in one commit")
	case err != nil:
		if delivered >= deliveriesMax {
			return h.deadLetter(ctx, subject, msg.Payload, fmt.Sprintf("not recorded after %d deliveries: %v", delivered, err))
		}
		h.log.Warn("usage not recorded; it will be redelivered", "subject", subject, "delivered", delivered, "err", err)
		return fmt.Errorf("%w: %v", errRetry, err)
	}
	if err := deadInvalid(); err != nil {
		return err
	}
	for i, res := range results {
		if res.Err != nil {
			// An id reused with another body: the original stands.
			raw, _ := json.Marshal(map[string]string{"id": events[i].UsageID})
			if err := h.deadLetter(ctx, subject, raw, "id conflict: "+res.Err.Error()); err != nil {
				return err
			}
		}
	}
	return nil
}

func describe(err error) string {
	fields := domain.FieldErrors(err)
	if len(fields) == 0 {
		return err.Error()
	}
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = f.Location + " " + f.Message
	}
	return strings.Join(parts, "; ")
}

// deadLetter stores data on the dead-letter stream with the reason; the
// original is then acknowledged (it is kept there, not lost).
func (h *handler) deadLetter(ctx context.Context, subject string, data []byte, reason string) error {
	tenant := strings.TrimPrefix(subject, SubjectPrefix)
	if _, err := strconv.ParseInt(tenant, 10, 64); err != nil {
		tenant = "unknown"
	}
	ctx, cancel := context.WithTimeout(ctx, deadPublishLimit)
	defer cancel()
	msg := nats.NewMsg(DeadPrefix + tenant)
	msg.Data = data
	msg.Header.Set(HeaderReason, reason)
	msg.Header.Set(HeaderSubject, subject)
	if _, err := h.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("%w: dead letter: %v", errRetry, err)
	}
	h.log.Warn("usage dead-lettered", "subject", subject, "reason", reason)
	if h.dead != nil {
		h.dead(reason)
	}
	return nil
}
