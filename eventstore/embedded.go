package eventstore

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// MaxPayloadBytes is the embedded server's message size limit, and the
// most a commit may take anywhere. A commit carries whole requests (a
// usage batch holds up to 1000 events), which can exceed NATS's 1 MiB
// default; on an external server with a smaller max_payload, commits are
// sized under it (Store.MaxCommitBytes) and a request that does not fit
// alone is refused as too large.
const MaxPayloadBytes = 8 << 20

// serverReadyWait bounds how long the embedded server may take to start.
const serverReadyWait = 10 * time.Second

// EmbeddedOptions configures the in-process nats-server.
type EmbeddedOptions struct {
	// StoreDir is where JetStream keeps its files.
	StoreDir string
	// Listen is the host:port producers connect to; empty means the server
	// accepts only in-process connections.
	Listen string
	// Token is the operator credential: a connection presenting it gets
	// full access (the JetStream API, every subject). Empty: only creditd's
	// own in-process connections have full access.
	Token string
	// Producers authenticates every other connection and grants its
	// permissions (ingest.Producers: tenant API keys). Nil refuses them.
	Producers server.Authentication
	// ProducerServices and ProducerStreams are the subjects producers
	// reach: they connect to an account of their own (ProducerAccount),
	// which imports these from creditd's as services (requests, and
	// publishes JetStream acknowledges) and as streams (notices).
	ProducerServices, ProducerStreams []string
	// TLSCertFile and TLSKeyFile, when set, make network clients use TLS
	// (nats-server's own TLS; in-process connections need none).
	TLSCertFile, TLSKeyFile string
	// SyncInterval zero means fsync before every acknowledgement (the
	// durable default); a positive value trades a bounded loss window on
	// power failure for throughput.
	SyncInterval time.Duration
}

// tlsHandshakeWait bounds a network client's TLS handshake, in seconds.
const tlsHandshakeWait = 5

// Embedded is an in-process nats-server with JetStream.
type Embedded struct {
	server *server.Server
	// internalToken is what creditd's own in-process connections present:
	// random per start, so it is never configured, logged or shared.
	internalToken string
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
	if opts.Producers != nil && len(opts.ProducerServices) == 0 {
		// Producers could connect and reach nothing.
		return nil, errors.New("embedded nats-server: producers are let in, with no subject to reach (ProducerServices)")
	}
	internal := make([]byte, 24)
	rand.Read(internal)
	auth := &embeddedAuth{internalToken: hex.EncodeToString(internal), operatorToken: opts.Token, producers: opts.Producers}
	// Every client authenticates, in-process ones included: a producer's
	// permissions hold whatever else is misconfigured.
	serverOpts.CustomClientAuthentication = auth
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
	}
	if opts.TLSCertFile != "" || opts.TLSKeyFile != "" {
		tlsConfig, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: opts.TLSCertFile, KeyFile: opts.TLSKeyFile, Timeout: tlsHandshakeWait})
		if err != nil {
			return nil, fmt.Errorf("nats tls: %w", err)
		}
		serverOpts.TLSConfig, serverOpts.TLS, serverOpts.TLSTimeout = tlsConfig, true, tlsHandshakeWait
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
	if opts.Producers != nil {
		acc, err := isolateProducers(ns, opts.ProducerServices, opts.ProducerStreams)
		if err != nil {
			ns.Shutdown()
			return nil, fmt.Errorf("embedded nats-server: producers' account: %w", err)
		}
		auth.producerAccount.Store(acc)
	}
	return &Embedded{server: ns, internalToken: auth.internalToken}, nil
}

// ProducerAccount is the NATS account producers connect to. NATS checks
// the subject a client publishes to, never the reply subject it names, and
// JetStream sends a publish's acknowledgement to that reply subject: in
// creditd's account, a producer could have named credits.registry or a
// partition's log subject and had the acknowledgement stored in the log,
// a message creditd did not write, which stops writes on that subject. In
// an account of their own, a reply subject resolves there, where no
// stream listens; what producers may use of creditd's account comes in by
// imports, whose replies NATS maps back to the importing account.
const ProducerAccount = "CREDITD_PRODUCERS"

// isolateProducers registers the producers' account and its imports of
// services and streams from the global account, where creditd and its
// streams are. It runs after JetStream has started on the global account:
// an account configured before would take JetStream from it.
func isolateProducers(ns *server.Server, services, streams []string) (*server.Account, error) {
	global := ns.GlobalAccount()
	acc, err := ns.RegisterAccount(ProducerAccount)
	if err != nil {
		return nil, err
	}
	for _, subject := range services {
		if err := global.AddServiceExport(subject, []*server.Account{acc}); err != nil {
			return nil, err
		}
		if err := acc.AddServiceImport(global, subject, subject); err != nil {
			return nil, err
		}
	}
	for _, subject := range streams {
		if err := global.AddStreamExport(subject, []*server.Account{acc}); err != nil {
			return nil, err
		}
		if err := acc.AddStreamImport(global, subject, ""); err != nil {
			return nil, err
		}
	}
	return acc, nil
}

// Connect opens an in-process client connection with full access.
func (e *Embedded) Connect(name string) (*nats.Conn, error) {
	return nats.Connect("", nats.InProcessServer(e.server), nats.Name(name), nats.MaxReconnects(-1), nats.Token(e.internalToken))
}

// Server is the running nats-server, for what needs its monitoring and
// control calls (ingest.Producers closes revoked producers' connections).
func (e *Embedded) Server() *server.Server { return e.server }

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

// embeddedAuth admits creditd's own connections and the operator with full
// access, and hands every other connection to the producers' check.
type embeddedAuth struct {
	internalToken string
	operatorToken string
	producers     server.Authentication
	// producerAccount is set once the server has started; until then
	// producers are refused and retry.
	producerAccount atomic.Pointer[server.Account]
}

// Check implements server.Authentication.
func (a *embeddedAuth) Check(c server.ClientAuthentication) bool {
	token := c.GetOpts().Token
	if token == "" {
		return false
	}
	if equalSecret(token, a.internalToken) || (a.operatorToken != "" && equalSecret(token, a.operatorToken)) {
		// No permissions: full access.
		c.RegisterUser(&server.User{Username: "creditd-operator"})
		return true
	}
	acc := a.producerAccount.Load()
	return a.producers != nil && acc != nil && a.producers.Check(inAccount{c, acc})
}

// inAccount registers a producer's user in the producers' account.
type inAccount struct {
	server.ClientAuthentication
	account *server.Account
}

func (c inAccount) RegisterUser(u *server.User) {
	u.Account = c.account
	c.ClientAuthentication.RegisterUser(u)
}

func equalSecret(given, want string) bool {
	return subtle.ConstantTimeCompare([]byte(given), []byte(want)) == 1
}
