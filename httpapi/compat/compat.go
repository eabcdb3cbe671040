// Package compat serves creditd's compatibility profiles: five existing
// credit APIs (seeds 000 to 004) answered from creditd's read models, each
// under /compat/<profile>. One file per profile holds its routes, its answer
// shapes and its handlers: lantern.go, account.go, tamtam.go, lasso.go,
// openrouter.go.
//
// The native API (package httpapi) owns everything around a handler: it
// mounts the routes Routes returns, authenticates the tenant's key, checks
// the query parameters against Route.Query, waits for min_position,
// describes each route in its OpenAPI document (the success body by
// reflection of Route.Response) and maps errors to problems, written in
// the profile's shape (Route.Errors). Like
// httpapi, compat reaches the engine only through queries.
package compat

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/queries"
)

// Reader is what the profiles need of the read models; *queries.Reader
// satisfies it.
type Reader interface {
	Balance(ctx context.Context, tenantID int64, creditType string, asOf *time.Time) (queries.BalanceReport, error)
	Ledger(ctx context.Context, tenantID int64, f queries.LedgerFilter) (queries.LedgerPage, error)
	OccurrenceLedger(ctx context.Context, tenantID int64, f queries.LedgerFilter) (queries.LedgerPage, error)
	Usage(ctx context.Context, tenantID int64, q queries.UsageQuery) (queries.UsageReport, error)
	Stats(ctx context.Context, tenantID int64, r queries.Range) (queries.StatsReport, error)
	Summary(ctx context.Context, tenantID int64, now time.Time) (queries.Summary, error)
	Tenant(ctx context.Context, tenantID int64) (queries.Tenant, error)
	ActiveGrants(ctx context.Context, tenantID int64, now time.Time) ([]queries.GrantTotals, error)
	Subscriptions(ctx context.Context, tenantID int64, now time.Time) ([]queries.Subscription, error)
	LatestGrantCost(ctx context.Context, tenantID int64) (*queries.Cost, error)
	Breakdown(ctx context.Context, tenantID int64, rng queries.Range, dimension string) ([]queries.Ranked, error)
	UsedBetween(ctx context.Context, tenantID int64, from, to time.Time, f queries.UsedFilter) (decimal.Decimal, error)
	SpendableNow(ctx context.Context, tenantID int64, now time.Time) ([]queries.LineSpendable, error)
	UsedByLine(ctx context.Context, tenantID int64, from, to time.Time) (map[string]decimal.Decimal, error)
}

// Deps is what the profiles' handlers are given by the API that mounts
// them.
type Deps struct {
	Reader Reader
	// Clock is "now" for reads with default ranges.
	Clock func() time.Time
	// WriteReadError answers a failed read: a 400 naming each bad query
	// parameter (*queries.ParamError), else the API's problem for err.
	WriteReadError func(w http.ResponseWriter, r *http.Request, err error)
	// WriteSummaryError answers a failed read of the tenant's profile, where
	// queries.ErrTenantNotFound means "not projected yet".
	WriteSummaryError func(w http.ResponseWriter, r *http.Request, err error)
	// PreviousUse is when the tenant's key was last used before r (since
	// the process started), nil for a first use.
	PreviousUse func(r *http.Request) *time.Time
}

// Route is one compat endpoint, a tenant read.
type Route struct {
	Method, Path string
	// Summary is the route's line in the OpenAPI document.
	Summary string
	// Query lists the accepted query parameters, RequiredQuery those of
	// them the document marks required.
	Query, RequiredQuery []string
	// BareKey also accepts the API key alone in Authorization.
	BareKey bool
	// Errors is how the profile answers errors. Every route of a profile
	// has the same: they hold for any request under /compat/<profile>/.
	Errors Errors
	// Handler answers for the tenant whose key authenticated the request.
	Handler func(w http.ResponseWriter, r *http.Request, tenantID int64)
	// Response is a value of the success body's type, from which the
	// OpenAPI document derives its schema.
	Response any
	// ISOTimes reads the time parameters in the ISO 8601 forms of
	// isotime.go, where the native API reads RFC 3339 or a date.
	ISOTimes bool
	// LimitCapped reads a limit over queries.PageLimitMax as that maximum,
	// where the native API refuses it.
	LimitCapped bool
}

// RouteAt is the compat route with method and path, for what the API that
// mounts the routes describes of them; its handler must not be called.
func RouteAt(method, path string) (Route, bool) {
	for _, rt := range Routes(Deps{}) {
		if rt.Method == method && rt.Path == path {
			return rt, true
		}
	}
	return Route{}, false
}

// ErrorShape is how a profile writes an error, as its seed documents it.
type ErrorShape int

const (
	// ErrorShapeProblem is creditd's own problem document: RFC 7807 with
	// the request id.
	ErrorShapeProblem ErrorShape = iota
	// ErrorShapeErrorModel is an RFC 7807 problem with exactly the
	// members of an ErrorModel that allows no others (tamtam): no
	// request_id member; the X-Request-Id header still carries it.
	ErrorShapeErrorModel
	// ErrorShapeErrorObject is application/json
	// {"error": {"code": <status>, "message": "…"}} (openrouter): the one
	// shape the seed API's SDK maps to its typed errors by code.
	ErrorShapeErrorObject
)

// Errors are a profile's error conventions. They hold for its routes and
// for every other request under its path prefix, so that an unknown path
// or another method answers in the shape the profile's clients parse.
type Errors struct {
	Shape ErrorShape
	// Statuses, when set, are the error statuses the seed documents. A
	// server-side error (5xx) of another status is answered with 500, the
	// seed's status for it; a client error keeps its status (the only
	// ones outside such a table are a 404 for an unknown path and a 405
	// for another method, which answer no documented endpoint).
	Statuses []int
}

// Status is the status the profile answers for an error of status.
func (e Errors) Status(status int) int {
	if len(e.Statuses) == 0 || status < http.StatusInternalServerError || slices.Contains(e.Statuses, status) {
		return status
	}
	return http.StatusInternalServerError
}

// api holds what every profile's handlers use.
type api struct{ Deps }

// Routes are every profile's routes, served with d.
func Routes(d Deps) []Route {
	a := &api{d}
	return slices.Concat(a.lanternRoutes(), a.accountRoutes(), a.tamtamRoutes(), a.lassoRoutes(), a.openrouterRoutes())
}
