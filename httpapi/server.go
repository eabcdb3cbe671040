// Package httpapi serves creditd's HTTP API: writes through the command
// engine, errors as RFC 7807 problems.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/creditd/creditd/audit"
	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/httpapi/compat"
	"github.com/creditd/creditd/internal/webhook"
	"github.com/creditd/creditd/queries"
)

// Writer is what the API needs of the write side; *commands.Engine
// satisfies it.
type Writer interface {
	CreateTenant(ctx context.Context, c commands.CreateTenant) (commands.CreatedTenant, error)
	IssueAPIKey(ctx context.Context, tenantID int64) (commands.IssuedKey, error)
	RevokeAPIKey(ctx context.Context, tenantID int64, keyID string) (uint64, error)
	Authenticate(key string) (int64, bool)
	Grant(ctx context.Context, tenantID int64, creditType string, c domain.Grant) (commands.Result, error)
	// RecordUsageBatch keys the whole batch by batchKey when it is set.
	RecordUsageBatch(ctx context.Context, tenantID int64, batchKey string, events []commands.UsageEvent) ([]commands.Result, error)
	Reserve(ctx context.Context, tenantID int64, creditType string, c domain.Reserve) (commands.Result, error)
	Capture(ctx context.Context, tenantID int64, creditType string, c domain.Capture) (commands.Result, error)
	Release(ctx context.Context, tenantID int64, creditType, reservationID string) (commands.Result, error)
	Adjust(ctx context.Context, tenantID int64, creditType string, c domain.Adjust) (commands.Result, error)
	ConfigureAutoReload(ctx context.Context, tenantID int64, creditType string, c domain.ConfigureAutoReload) (commands.Result, error)
	ConfigureLine(ctx context.Context, tenantID int64, creditType string, c domain.ConfigureLine) (commands.Result, error)
	StartSubscription(ctx context.Context, tenantID int64, creditType string, c domain.StartSubscription) (commands.Result, error)
	CancelSubscription(ctx context.Context, tenantID int64, creditType, subscriptionID string) (commands.Result, error)
	ConfigureSettings(ctx context.Context, tenantID int64, s commands.Settings) (commands.Tenant, uint64, error)
	ConfigureNotices(ctx context.Context, tenantID int64, n commands.Notices) (uint64, error)
	Checkpoint(ctx context.Context) (commands.Checkpoint, uint64, error)
	ReverseUsage(ctx context.Context, tenantID int64, c domain.ReverseUsage) (commands.Result, error)
	VoidGrant(ctx context.Context, tenantID int64, creditType string, c domain.VoidGrant) (commands.Result, error)
	ChangeGrantExpiry(ctx context.Context, tenantID int64, creditType string, c domain.ChangeGrantExpiry) (commands.Result, error)
}

// Reader is what the API needs of the read models; *queries.Reader
// satisfies it.
type Reader interface {
	// The compat profiles read the same reports; the native API also lists
	// notice deliveries.
	compat.Reader
	NoticeDeliveries(ctx context.Context, tenantID int64) ([]queries.NoticeDelivery, error)
}

// Projection is what the API needs to know of the read models' freshness;
// *projections.Projector satisfies it.
type Projection interface {
	Position() uint64
	// WaitFor returns nil once the read models include position, an error
	// when ctx ends first.
	WaitFor(ctx context.Context, position uint64) error
	// Err is why the read models cannot advance now (they cannot be
	// written, or a foreign message stops them), nil when they can.
	Err() error
}

// ReadModels is what the API needs to know of the read models' first
// catch-up after a start, which runs while writes are already served;
// serve's read side satisfies it. Until it is done, reads wait for it up
// to positionWaitMax and then answer 503 read-models-catching-up (a read
// whose min_position the read models already hold is served), and /readyz
// reports reads catching up.
type ReadModels interface {
	CatchUp() CatchUp
	// CaughtUp is closed once the first catch-up is done.
	CaughtUp() <-chan struct{}
}

// CatchUp is how far the read models' first catch-up after a start has
// come.
type CatchUp struct {
	// Done: the read models reached Target; reads are served from then on.
	Done bool
	// Mode is CatchUpBulk or CatchUpInPlace.
	Mode string
	// Position is the last log position applied; Target is the log's last
	// position when creditd started.
	Position, Target uint64
}

// How the read models catch up after a start.
const (
	// CatchUpBulk builds them afresh beside the live file, which the
	// build replaces once whole: nothing can be read until then.
	CatchUpBulk = "bulk"
	// CatchUpInPlace applies the log to the live read models, which hold a
	// consistent prefix of it all along.
	CatchUpInPlace = "in_place"
)

// ErrReadModelsCatchingUp is what a Reader answers while the read models
// are not there yet; the API answers it with a 503 read-models-catching-up.
var ErrReadModelsCatchingUp = errors.New("the read models are catching up with the log after a start")

// WriteChains is what /readyz needs of the write side's logs;
// *commands.Engine satisfies it.
type WriteChains interface {
	// ChainErr is the foreign message a writer stopped at while serving
	// (an *eventstore.ForeignMessageError naming subject and position),
	// nil when none did.
	ChainErr() error
}

// Config configures the API.
type Config struct {
	Writer     Writer
	Reader     Reader
	Projection Projection
	// WriteChains, when set, makes /readyz report a writer stopped by a
	// message creditd did not write.
	WriteChains WriteChains
	// Ownership, when set, makes /readyz show which partitions this
	// instance owns on a cluster (ok false: it runs alone);
	// *commands.Engine's Ownership satisfies it.
	Ownership func() (o commands.Ownership, ok bool)
	// ReadModels, when set, tells whether the read models' first catch-up
	// after a start is done; nil: they are whole from the start.
	ReadModels ReadModels
	// LogPosition reads the log's last position, for /readyz.
	LogPosition func(ctx context.Context) (uint64, error)
	// AdminToken authorises tenant administration.
	AdminToken string
	// Verify recomputes a tenant from the log (GET /v1/audit/verify); nil
	// leaves the route answering 503.
	Verify func(ctx context.Context, tenantID int64) (audit.Report, error)
	// WebhookSecret is a tenant's webhook signing secret, shown in
	// /v1/notices; nil shows none. The dispatcher signs with the same one.
	WebhookSecret func(tenantID int64) string
	// Webhooks are the operator's rules for webhook URLs; zero is strict.
	Webhooks webhook.Policy
	Logger   *slog.Logger
	// Clock is "now" for reads with default ranges; nil means time.Now.
	Clock func() time.Time
	// Middleware wraps routing (metrics); r.Pattern is set when it returns.
	Middleware func(http.Handler) http.Handler
}

// API is the HTTP handler set.
type API struct {
	cfg      Config
	writer   Writer
	reader   Reader
	log      *slog.Logger
	mux      *http.ServeMux
	routes   []route
	routed   http.Handler
	lastUsed sync.Map // tenant id → time.Time of its last authenticated request
	stall    stallWatch

	// profileErrors are the compat profiles' error conventions by name.
	profileErrors map[string]compat.Errors
}

// New returns the API's handler.
func New(cfg Config) http.Handler {
	a := newAPI(cfg)
	a.mux = http.NewServeMux()
	a.routes = a.routeTable()
	a.profileErrors = profileErrors(a.routes)
	for _, rt := range a.routes {
		a.mux.Handle(rt.method+" "+rt.path, a.handler(rt))
	}
	a.routed = http.HandlerFunc(a.route)
	if cfg.Middleware != nil {
		a.routed = cfg.Middleware(a.routed)
	}
	return a.withRequestID(a.withProfileErrors(a.withAccessLog(a.withRecover(a))))
}

// NewUsageAnswerer returns what answers usage bodies that come by NATS
// (AnswerUsage), as the handler New returns for cfg answers them by HTTP.
func NewUsageAnswerer(cfg Config) *API { return newAPI(cfg) }

func newAPI(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &API{cfg: cfg, writer: cfg.Writer, reader: cfg.Reader, log: cfg.Logger}
}

// ServeHTTP serves through the configured middleware.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.routed.ServeHTTP(w, r) }

// route routes the request; an unknown route is a 404 problem and a known
// route with another method a 405 problem with Allow, instead of the mux's
// plain-text answers.
func (a *API) route(w http.ResponseWriter, r *http.Request) {
	handler, pattern := a.mux.Handler(r)
	if pattern != "" {
		// The mux itself serves matched routes: it sets the path values.
		a.mux.ServeHTTP(w, r)
		return
	}
	probe := &statusProbe{header: http.Header{}}
	handler.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", probe.header.Get("Allow"))
		writeProblem(w, r, a.log, newProblem(http.StatusMethodNotAllowed, "method-not-allowed", r.Method+" is not allowed on "+r.URL.Path))
		return
	}
	writeProblem(w, r, a.log, newProblem(http.StatusNotFound, "not-found", "no such route: "+r.Method+" "+r.URL.Path))
}

// statusProbe records what the mux's own error handler would answer.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(status int)      { p.status = status }
