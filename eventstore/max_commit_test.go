package eventstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/testnats"
)

// plainServer starts a nats-server with JetStream and the given
// max_payload (0: NATS's default, 1 MiB), as an external server would be.
func plainServer(t *testing.T, maxPayload int32) *nats.Conn {
	t.Helper()
	ns, err := server.NewServer(&server.Options{JetStream: true, StoreDir: t.TempDir(), DontListen: true, NoSigs: true, NoLog: true, MaxPayload: maxPayload})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		nc.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return nc
}

func TestMaxCommitBytesFollowsTheServer(t *testing.T) {
	t.Parallel()
	t.Run("the_embedded_servers_8_MiB", func(t *testing.T) {
		t.Parallel()
		s := testnats.Start(t, t.TempDir()).Store
		if got := s.MaxCommitBytes(); got > eventstore.MaxPayloadBytes || got < eventstore.MaxPayloadBytes-8<<10 {
			t.Fatalf("MaxCommitBytes = %d, want just under %d", got, eventstore.MaxPayloadBytes)
		}
	})
	t.Run("a_server_with_the_default_1_MiB", func(t *testing.T) {
		t.Parallel()
		s, err := eventstore.Open(context.Background(), plainServer(t, 0), eventstore.Config{})
		if err != nil {
			t.Fatal(err)
		}
		limit := s.MaxCommitBytes()
		if limit > 1<<20 || limit < 1<<20-8<<10 {
			t.Fatalf("MaxCommitBytes = %d, want just under 1 MiB", limit)
		}
		// A commit of exactly the limit is stored; one byte more is refused
		// as too large, not as the store being unavailable.
		subject := eventstore.PartitionSubject(0)
		if _, err := s.Append(context.Background(), subject, 0, make([]byte, limit)); err != nil {
			t.Fatalf("a commit of MaxCommitBytes: %v", err)
		}
		if _, err := s.Append(context.Background(), subject, 0, make([]byte, 1<<20+1)); !errors.Is(err, eventstore.ErrTooLarge) {
			t.Fatalf("a message over max_payload: %v, want ErrTooLarge", err)
		}
	})
	t.Run("a_server_whose_max_payload_leaves_no_room_is_refused", func(t *testing.T) {
		t.Parallel()
		_, err := eventstore.Open(context.Background(), plainServer(t, 16<<10), eventstore.Config{})
		if err == nil || !strings.Contains(err.Error(), "max_payload") {
			t.Fatalf("Open on a 16 KiB max_payload: %v, want a refusal naming max_payload", err)
		}
	})
}
