// Package httpapi serves creditd's HTTP API: writes through the command
// engine, errors as RFC 7807 problems.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
)

// Writer is what the API needs of the write side; *commands.Engine
// satisfies it.
type Writer interface {
	CreateTenant(ctx context.Context, c commands.CreateTenant) (commands.CreatedTenant, error)
	IssueAPIKey(ctx context.Context, tenantID int64) (commands.IssuedKey, error)
	RevokeAPIKey(ctx context.Context, tenantID int64, keyID string) (uint64, error)
	Authenticate(key string) (int64, bool)
	Grant(ctx context.Context, tenantID int64, creditType string, c domain.Grant) (commands.Result, error)
	RecordUsage(ctx context.Context, tenantID int64, events []commands.UsageEvent) ([]commands.Result, error)
	Reserve(ctx context.Context, tenantID int64, creditType string, c domain.Reserve) (commands.Result, error)
	Capture(ctx context.Context, tenantID int64, creditType string, c domain.Capture) (commands.Result, error)
	Release(ctx context.Context, tenantID int64, creditType, reservationID string) (commands.Result, error)
	Adjust(ctx context.Context, tenantID int64, creditType string, c domain.Adjust) (commands.Result, error)
	ConfigureAutoReload(ctx context.Context, tenantID int64, creditType string, c domain.ConfigureAutoReload) (commands.Result, error)
	ConfigureLine(ctx context.Context, tenantID int64, creditType string, c domain.ConfigureLine) (commands.Result, error)
}

// Config configures the API.
type Config struct {
	Writer Writer
	// AdminToken authorises tenant administration.
	AdminToken string
	Logger     *slog.Logger
}

// API is the HTTP handler set.
type API struct {
	writer     Writer
	adminToken string
	log        *slog.Logger
	mux        *http.ServeMux
}

// New returns the API's handler.
func New(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &API{writer: cfg.Writer, adminToken: cfg.AdminToken, log: cfg.Logger, mux: http.NewServeMux()}
	a.routes()
	return a.withRequestID(a.withRecover(a))
}

func (a *API) routes() {
	a.mux.HandleFunc("GET /healthz", a.healthz)

	a.mux.Handle("POST /v1/tenants", a.admin(a.createTenant))
	a.mux.Handle("POST /v1/tenants/{tenant_id}/api-keys", a.admin(a.issueAPIKey))
	a.mux.Handle("DELETE /v1/tenants/{tenant_id}/api-keys/{key_id}", a.admin(a.revokeAPIKey))

	a.mux.Handle("POST /v1/grants", a.tenant(a.grant))
	a.mux.Handle("POST /v1/usage", a.tenant(a.recordUsage))
	a.mux.Handle("POST /v1/reservations", a.tenant(a.reserve))
	a.mux.Handle("POST /v1/reservations/{reservation_id}/capture", a.tenant(a.capture))
	a.mux.Handle("POST /v1/reservations/{reservation_id}/release", a.tenant(a.release))
	a.mux.Handle("POST /v1/adjustments", a.tenant(a.adjust))
	a.mux.Handle("PUT /v1/auto-reload", a.tenant(a.configureAutoReload))
	a.mux.Handle("PUT /v1/credit-lines/{credit_type}", a.tenant(a.configureLine))

}

// ServeHTTP routes the request; an unknown route is a 404 problem and a
// known route with another method a 405 problem with Allow, instead of the
// mux's plain-text answers.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
