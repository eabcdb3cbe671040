// Package wmjs holds what creditd's Watermill consumers of JetStream share:
// a consumer that can be stopped cleanly, and an unmarshaler that keeps
// the stream metadata Watermill's default one drops.
package wmjs

import (
	"strconv"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go/jetstream"
)

// Metadata keys set by Unmarshaler.
const (
	MetadataSequence  = "creditd_stream_seq"
	MetadataPending   = "creditd_pending"
	MetadataDelivered = "creditd_delivered"
	MetadataSubject   = "creditd_subject"
	// MetadataStoredAt is when the stream stored the message, in Unix
	// nanoseconds of the server's clock.
	MetadataStoredAt = "creditd_stored_at"
)

// GatedConsumer wraps a JetStream consumer so deliveries can be stopped and
// the ones in flight waited for before the subscription's context ends:
// watermill-nats closes its output channel when the context ends, and a
// delivery still in flight would then send on it and panic.
type GatedConsumer struct {
	jetstream.Consumer
	mu       sync.Mutex
	stopped  bool
	inflight sync.WaitGroup
}

// Consume delivers messages to handler until Stop. A message arriving after
// Stop is left unacknowledged and is redelivered later.
func (g *GatedConsumer) Consume(handler jetstream.MessageHandler, opts ...jetstream.PullConsumeOpt) (jetstream.ConsumeContext, error) {
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

// Stop ends deliveries and waits for those in flight.
func (g *GatedConsumer) Stop() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
	g.inflight.Wait()
}

// Gates stops several gated consumers together.
type Gates struct {
	mu    sync.Mutex
	gates []*GatedConsumer
}

// Wrap gates a consumer and remembers it.
func (gs *Gates) Wrap(c jetstream.Consumer) *GatedConsumer {
	g := &GatedConsumer{Consumer: c}
	gs.mu.Lock()
	gs.gates = append(gs.gates, g)
	gs.mu.Unlock()
	return g
}

// Stop stops every gate.
func (gs *Gates) Stop() {
	gs.mu.Lock()
	gates := gs.gates
	gs.mu.Unlock()
	for _, g := range gates {
		g.Stop()
	}
}

// Unmarshaler carries the stream sequence, pending count, delivery count,
// subject and storage time into the Watermill message.
type Unmarshaler struct{}

// Unmarshal implements the watermill-nats jetstream Unmarshaler.
func (Unmarshaler) Unmarshal(msg jetstream.Msg) (*message.Message, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return nil, err
	}
	wm := message.NewMessage(strconv.FormatUint(meta.Sequence.Stream, 10), msg.Data())
	wm.Metadata.Set(MetadataSequence, strconv.FormatUint(meta.Sequence.Stream, 10))
	wm.Metadata.Set(MetadataPending, strconv.FormatUint(meta.NumPending, 10))
	wm.Metadata.Set(MetadataDelivered, strconv.FormatUint(meta.NumDelivered, 10))
	wm.Metadata.Set(MetadataSubject, msg.Subject())
	wm.Metadata.Set(MetadataStoredAt, strconv.FormatInt(meta.Timestamp.UnixNano(), 10))
	return wm, nil
}
