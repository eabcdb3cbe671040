// Package testnats starts a real embedded JetStream server for tests: the
// same server creditd embeds, with fsync on every write, in a directory the
// test owns. It starts in milliseconds, so no test needs a mock store.
package testnats

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/creditd/creditd/eventstore"
)

// Server is a running embedded server and a store on it.
type Server struct {
	Embedded *eventstore.Embedded
	Conn     *nats.Conn
	Store    *eventstore.Store
	Dir      string
}

// Start starts a server storing under dir (reuse dir to restart on the same
// data) and opens the store. It is shut down when the test ends, or earlier
// by Stop.
func Start(t testing.TB, dir string) *Server {
	t.Helper()
	emb, err := eventstore.StartEmbedded(eventstore.EmbeddedOptions{StoreDir: dir})
	if err != nil {
		t.Fatalf("start embedded nats: %v", err)
	}
	nc, err := emb.Connect("test")
	if err != nil {
		emb.Shutdown()
		t.Fatalf("connect: %v", err)
	}
	store, err := eventstore.Open(context.Background(), nc, eventstore.Config{})
	if err != nil {
		nc.Close()
		emb.Shutdown()
		t.Fatalf("open store: %v", err)
	}
	s := &Server{Embedded: emb, Conn: nc, Store: store, Dir: dir}
	t.Cleanup(s.Stop)
	return s
}

// Stop closes the connection and shuts the server down; safe to call twice.
func (s *Server) Stop() {
	if s.Conn == nil {
		return
	}
	s.Conn.Close()
	s.Embedded.Shutdown()
	s.Conn = nil
}
