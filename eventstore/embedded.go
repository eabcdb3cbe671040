package eventstore

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// MaxPayloadBytes is the embedded server's message size limit. A commit
// carries a whole HTTP usage batch (up to 1000 events), which can exceed
// NATS's 1 MiB default; an external server must allow at least what
// creditd's commits need (see README, cluster mode).
const MaxPayloadBytes = 8 << 20

// serverReadyWait bounds how long the embedded server may take to start.
const serverReadyWait = 10 * time.Second

// EmbeddedOptions configures the in-process nats-server.
type EmbeddedOptions struct {
	// StoreDir is where JetStream keeps its files.
	StoreDir string
	// Listen is a loopback host:port producers may connect to; empty means
	// the server accepts only in-process connections.
	Listen string
	// Token, when set, is required from network clients.
	Token string
	// SyncInterval zero means fsync before every acknowledgement (the
	// durable default); a positive value trades a bounded loss window on
	// power failure for throughput.
	SyncInterval time.Duration
}

// Embedded is an in-process nats-server with JetStream.
type Embedded struct {
	server *server.Server
	token  string
}

// StartEmbedded starts the server and waits until it accepts connections.
func StartEmbedded(opts EmbeddedOptions) (*Embedded, error) {
	serverOpts := &server.Options{
		ServerName: "creditd-embedded",
		JetStream:  true,
		StoreDir:   filepath.Clean(opts.StoreDir),
		MaxPayload: MaxPayloadBytes,
		NoSigs:     true,
		NoLog:      true,
		// Durable means fsynced: with the default lazy fsync an acknowledged
		// write could vanish on power loss.
		SyncAlways: opts.SyncInterval == 0,
	}
	if opts.SyncInterval > 0 {
		serverOpts.SyncInterval = opts.SyncInterval
	}
	if opts.Listen == "" {
		serverOpts.DontListen = true
	} else {
		host, portText, err := net.SplitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats listen address %q: %w", opts.Listen, err)
		}
		port, err := strconv.Atoi(portText)
		if err != nil {
			return nil, fmt.Errorf("nats listen port %q: %w", portText, err)
		}
		serverOpts.Host, serverOpts.Port = host, port
		serverOpts.Authorization = opts.Token
	}
	ns, err := server.NewServer(serverOpts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(serverReadyWait) {
		ns.Shutdown()
		return nil, errors.New("embedded nats-server did not become ready")
	}
	return &Embedded{server: ns, token: opts.Token}, nil
}

// Connect opens an in-process client connection.
func (e *Embedded) Connect(name string) (*nats.Conn, error) {
	opts := []nats.Option{nats.InProcessServer(e.server), nats.Name(name), nats.MaxReconnects(-1)}
	if e.token != "" {
		opts = append(opts, nats.Token(e.token))
	}
	return nats.Connect("", opts...)
}

// ClientURL is the address network clients use, empty when not listening.
func (e *Embedded) ClientURL() string {
	if e.server.Addr() == nil {
		return ""
	}
	return e.server.ClientURL()
}

// Shutdown stops the server; JetStream flushes its files first.
func (e *Embedded) Shutdown() {
	e.server.Shutdown()
	e.server.WaitForShutdown()
}
