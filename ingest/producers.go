package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/creditd/creditd/projections"
)

// Producer connections: a metering producer authenticates to the embedded
// NATS server with its tenant's API key as the token, and may then only
// publish its own tenant's usage and read its own notices and publish
// acknowledgements. docs/nats-server.conf gives an external server the
// same permissions.
const (
	// revocationCheckEvery is how often open producer connections are
	// checked against the registry: a revoked key's connections close
	// within about this long (plus one registry read).
	revocationCheckEvery = time.Second
	// connzPage bounds the connections listed per monitoring call.
	connzPage = 1024
	// producerUserPrefix starts the user name of a producer connection:
	// producer/<tenant id>/<key id>.
	producerUserPrefix = "producer/"
)

// ProducerInboxPrefix is the reply-inbox prefix a tenant's producer sets
// (nats.CustomInboxPrefix): JetStream sends publish acknowledgements there,
// and only that tenant's connections may subscribe to it.
func ProducerInboxPrefix(tenantID int64) string {
	return "_INBOX.tenant." + strconv.FormatInt(tenantID, 10)
}

// ProducerPermissions is everything a tenant's producer may do: publish
// its usage (queued, or as requests), and subscribe to its notices and its
// own reply inbox, where the answers to both come. No $JS.API, no other
// subject: anything else is a permissions violation.
func ProducerPermissions(tenantID int64) *server.Permissions {
	id := strconv.FormatInt(tenantID, 10)
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{SubjectPrefix + id, RecordSubjectPrefix + id}},
		Subscribe: &server.SubjectPermission{Allow: []string{projections.NoticeSubjectPrefix + id, ProducerInboxPrefix(tenantID) + ".>"}},
	}
}

// ProducerServices are the subjects producers publish to, which the
// embedded server imports into their account as services so that the
// answers (JetStream's acknowledgement, creditd's answer to a request)
// come back to the reply subject they named, in their account
// (eventstore.ProducerAccount). ProducerStreams are those they subscribe
// to, imported as streams.
var (
	ProducerServices = []string{SubjectPrefix + "*", RecordSubjectPrefix + "*"}
	ProducerStreams  = []string{projections.NoticeSubjectPrefix + "*"}
)

// KeyChecker verifies tenant API keys; *commands.Engine satisfies it with
// the same SHA-256 lookup the HTTP API uses.
type KeyChecker interface {
	AuthenticateKey(key string) (tenantID int64, keyID string, ok bool)
	KeyActive(keyID string) bool
}

// Producers authenticates producer connections on the embedded server
// (eventstore.EmbeddedOptions.Producers) and closes them when their key is
// revoked (Watch).
type Producers struct {
	Log *slog.Logger

	// keys is set once the command engine is up; until then, which is the
	// server's first milliseconds, producers are refused and retry.
	mu   sync.RWMutex
	keys KeyChecker
}

// UseKeys sets the key checker.
func (p *Producers) UseKeys(keys KeyChecker) {
	p.mu.Lock()
	p.keys = keys
	p.mu.Unlock()
}

func (p *Producers) checker() KeyChecker {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.keys
}

// Check implements server.Authentication: the token must be a live API
// key; the connection gets its tenant's permissions and a user name that
// names the key, which Watch reads back.
func (p *Producers) Check(c server.ClientAuthentication) bool {
	keys := p.checker()
	if keys == nil || c.Kind() != server.CLIENT {
		return false
	}
	tenantID, keyID, ok := keys.AuthenticateKey(c.GetOpts().Token)
	if !ok {
		return false
	}
	c.RegisterUser(&server.User{Username: fmt.Sprintf("%s%d/%s", producerUserPrefix, tenantID, keyID), Permissions: ProducerPermissions(tenantID)})
	return true
}

// Connections is the part of *server.Server that Watch uses.
type Connections interface {
	Connz(opts *server.ConnzOptions) (*server.Connz, error)
	DisconnectClientByID(id uint64) error
}

// Watch closes producer connections whose key was revoked, here or on
// another instance, until ctx ends. Checking on a timer keeps it bounded
// and correct whichever instance revoked the key.
func (p *Producers) Watch(ctx context.Context, conns Connections) {
	ticker := time.NewTicker(revocationCheckEvery)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			p.closeRevoked(conns)
		}
	}
}

func (p *Producers) closeRevoked(conns Connections) {
	keys := p.checker()
	if keys == nil {
		return
	}
	for offset := 0; ; offset += connzPage {
		page, err := conns.Connz(&server.ConnzOptions{Username: true, State: server.ConnOpen, Offset: offset, Limit: connzPage})
		if err != nil {
			p.log().Warn("list producer connections", "err", err)
			return
		}
		for _, conn := range page.Conns {
			rest, ok := strings.CutPrefix(conn.AuthorizedUser, producerUserPrefix)
			if !ok {
				continue
			}
			_, keyID, _ := strings.Cut(rest, "/")
			if keys.KeyActive(keyID) {
				continue
			}
			if err := conns.DisconnectClientByID(conn.Cid); err == nil {
				p.log().Info("closed a revoked key's NATS connection", "user", conn.AuthorizedUser, "cid", conn.Cid)
			}
		}
		if len(page.Conns) < connzPage {
			return
		}
	}
}

func (p *Producers) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}
