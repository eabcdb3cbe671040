package httpapi

import (
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/creditd/creditd/httpapi/compat"
)

// route is one endpoint. The table is the single source of the mux, the
// allowed query parameters and the OpenAPI document.
type route struct {
	method, path string
	summary      string
	auth         authKind
	// query lists the accepted query parameters; others are a 400 on a
	// native route and ignored on a compat one. requiredQuery are those
	// of them the document marks required.
	query, requiredQuery []string
	// lists are the query parameters that may be given more than once;
	// every other one takes one value.
	lists []string
	// dimensionFilters lets any usage dimension be a query parameter, each
	// a list (module=a&module=b is either).
	dimensionFilters bool
	// pathID names the wildcard that is a POST's write id, which an
	// Idempotency-Key header must equal.
	pathID string
	// body names the request body's schema, "" for none.
	body string
	// bareKey also accepts the API key alone in Authorization (the tamtam
	// profile).
	bareKey bool
	// compat marks a route of a compat profile (package compat), and
	// errors are its profile's error conventions.
	compat bool
	errors compat.Errors
	public http.HandlerFunc
	tenant func(w http.ResponseWriter, r *http.Request, tenantID int64)
	// response is a value of the success body's type, for the document;
	// nil looks the route up in responseSchemas.
	response any
}

type authKind int

const (
	authNone authKind = iota
	authAdmin
	authTenant
)

// minPositionParam asks a read to wait until the read models include a
// write's position (read-your-writes). Every tenant read accepts it.
const minPositionParam = "min_position"

func (a *API) routeTable() []route {
	table := []route{
		{method: "GET", path: "/healthz", summary: "Liveness", public: a.healthz},
		{method: "GET", path: "/readyz", summary: "Readiness of writes and reads: the read models' catch-up after a start, their position and lag", query: []string{"scope"}, public: a.readyz},
		{method: "GET", path: "/openapi.json", summary: "This API as an OpenAPI 3.1 document", public: a.openapi},
		{method: "GET", path: "/dashboard", summary: "The built-in dashboard (log in with a tenant API key)", public: a.dashboard},
		{method: "GET", path: "/dashboard/{file}", summary: "The dashboard's assets", public: a.dashboardAsset},

		{method: "POST", path: "/v1/tenants", summary: "Create a tenant and its first API key", auth: authAdmin, body: "CreateTenant", public: a.createTenant},
		{method: "POST", path: "/v1/tenants/{tenant_id}/api-keys", summary: "Issue an API key", auth: authAdmin, public: a.issueAPIKey},
		{method: "POST", path: "/v1/checkpoints", summary: "Append a checkpoint now: every subject's head and the balances digest", auth: authAdmin, public: a.checkpoint},
		{method: "DELETE", path: "/v1/tenants/{tenant_id}/api-keys/{key_id}", summary: "Revoke an API key", auth: authAdmin, public: a.revokeAPIKey},

		{method: "POST", path: "/v1/grants", summary: "Grant credits", auth: authTenant, body: "Grant", tenant: a.grant},
		{method: "POST", path: "/v1/grants/{grant_id}/void", summary: "Void a grant: its remaining credits leave the balance", auth: authTenant, body: "VoidGrant", pathID: "grant_id", tenant: a.voidGrant},
		{method: "PATCH", path: "/v1/grants/{grant_id}", summary: "Change a grant's expiry", auth: authTenant, body: "GrantExpiry", tenant: a.changeGrantExpiry},
		{method: "POST", path: "/v1/usage", summary: "Record a batch of usage events", auth: authTenant, body: "UsageBatch", tenant: a.recordUsage},
		{method: "POST", path: "/v1/usage/{usage_id}/reverse", summary: "Reverse a usage debit: its credits return to the grants that paid", auth: authTenant, body: "ReverseUsage", pathID: "usage_id", tenant: a.reverseUsage},
		{method: "POST", path: "/v1/reservations", summary: "Hold credits", auth: authTenant, body: "Reservation", tenant: a.reserve},
		{method: "POST", path: "/v1/reservations/{reservation_id}/capture", summary: "Capture a hold (the rest is released)", auth: authTenant, body: "Capture", pathID: "reservation_id", tenant: a.capture},
		{method: "POST", path: "/v1/reservations/{reservation_id}/release", summary: "Release a hold", auth: authTenant, query: []string{"credit_type"}, pathID: "reservation_id", tenant: a.release},
		{method: "POST", path: "/v1/adjustments", summary: "Adjust a line by a signed amount", auth: authTenant, body: "Adjustment", tenant: a.adjust},
		{method: "PUT", path: "/v1/auto-reload", summary: "Configure auto-reload", auth: authTenant, body: "AutoReload", tenant: a.configureAutoReload},
		{method: "PUT", path: "/v1/credit-lines/{credit_type}", summary: "Configure a line's overdraft limit", auth: authTenant, body: "CreditLine", tenant: a.configureLine},
		{method: "POST", path: "/v1/subscriptions", summary: "Start a subscription: an allocation grant at each period start", auth: authTenant, body: "Subscription", tenant: a.startSubscription},
		{method: "DELETE", path: "/v1/subscriptions/{subscription_id}", summary: "Cancel a subscription at the end of its current period", auth: authTenant, query: []string{"credit_type"}, tenant: a.cancelSubscription},
		{method: "PUT", path: "/v1/notices", summary: "Configure low-balance notices: thresholds and webhook", auth: authTenant, body: "Notices", tenant: a.configureNotices},
		{method: "GET", path: "/v1/notices", summary: "Notice settings and the webhook's signing secret", auth: authTenant, tenant: a.notices},
		{method: "PUT", path: "/v1/settings", summary: "Set the display currency and currency_config", auth: authTenant, body: "Settings", tenant: a.configureSettings},

		{method: "GET", path: "/v1/balance", summary: "Balances per credit line and summed, now or as of an instant", auth: authTenant, query: []string{"credit_type", "as_of"}, tenant: a.balance},
		{method: "GET", path: "/v1/ledger", summary: "Credit movements, newest first", auth: authTenant, query: []string{"type", "from", "to", "credit_type", "limit", "offset", "cursor"}, lists: []string{"type"}, tenant: a.ledger},
		{method: "GET", path: "/v1/usage", summary: "Usage totals and rows per period and group", auth: authTenant, query: []string{"from", "to", "granularity", "group_by"}, dimensionFilters: true, tenant: a.usage},
		{method: "GET", path: "/v1/stats", summary: "Spend over a range against the period before, daily splits and top lists", auth: authTenant, query: []string{"from", "to"}, tenant: a.stats},
		{method: "GET", path: "/v1/audit/verify", summary: "Recompute the tenant from the event log and compare the read models", auth: authTenant, tenant: a.auditVerify},
		{method: "GET", path: "/v1/summary", summary: "Tenant profile and headline numbers", auth: authTenant, tenant: a.summary},
	}
	// The compat profiles are tenant reads, mounted like the native ones.
	profiles := compat.Deps{Reader: a.reader, Clock: a.cfg.Clock, WriteReadError: a.writeReadError, WriteSummaryError: a.writeSummaryError, PreviousUse: previousUse}
	for _, c := range compat.Routes(profiles) {
		table = append(table, route{method: c.Method, path: c.Path, summary: c.Summary, auth: authTenant, query: c.Query, requiredQuery: c.RequiredQuery,
			bareKey: c.BareKey, compat: true, errors: c.Errors, tenant: c.Handler, response: c.Response})
	}
	return table
}

// handler wraps a route with its authentication, query check and, for
// tenant reads, the read-your-writes wait.
func (a *API) handler(rt route) http.Handler {
	allowed := slices.Clone(rt.query)
	if rt.method == http.MethodGet && rt.auth == authTenant {
		allowed = append(allowed, minPositionParam)
	}
	sort.Strings(allowed)
	repeatable := func(name string) bool {
		if slices.Contains(rt.lists, name) {
			return true
		}
		return rt.dimensionFilters && name != minPositionParam && !slices.Contains(rt.query, name)
	}
	checkQuery := func(w http.ResponseWriter, r *http.Request) bool {
		// The compat profiles answer their seed's clients, whose documents
		// say nothing of malformed or repeated parameters: their queries are
		// read as before (issue 17 decides them).
		if !rt.compat {
			if p := queryStringProblem(r.URL.RawQuery, repeatable); p != nil {
				writeProblem(w, r, a.log, p)
				return false
			}
		}
		if rt.dimensionFilters {
			return true // the handler parses every parameter itself
		}
		if rt.compat {
			// The seeds' clients add parameters of their own (cache
			// busters, tracking) that the seeds' APIs ignore; a 400 for
			// them would break those clients. The native API stays strict.
			return true
		}
		for name := range r.URL.Query() {
			if _, found := slices.BinarySearch(allowed, name); !found {
				p := newProblem(http.StatusBadRequest, "invalid-request", "unknown query parameter "+name)
				p.Errors = []ProblemError{{Location: "query." + name, Message: "is not a parameter of this route"}}
				writeProblem(w, r, a.log, p)
				return false
			}
		}
		return true
	}
	switch rt.auth {
	case authAdmin:
		return a.admin(func(w http.ResponseWriter, r *http.Request) {
			if checkQuery(w, r) {
				rt.public(w, r)
			}
		})
	case authTenant:
		return a.tenantAuth(rt.bareKey, func(w http.ResponseWriter, r *http.Request, tenantID int64) {
			if !checkQuery(w, r) {
				return
			}
			if rt.pathID != "" && !a.pathIDMatchesKey(w, r, rt.pathID) {
				return
			}
			if rt.method == http.MethodGet && (!a.awaitCatchUp(w, r) || !a.awaitPosition(w, r)) {
				return
			}
			rt.tenant(w, r, tenantID)
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if checkQuery(w, r) {
			rt.public(w, r)
		}
	})
}

// compatPrefix starts the path of every compat profile's routes:
// /compat/<profile>/….
const compatPrefix = "/compat/"

// profileOf names the compat profile whose prefix path is under, "" for
// none.
func profileOf(path string) string {
	rest, ok := strings.CutPrefix(path, compatPrefix)
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}

// profileErrors maps each compat profile to its error conventions, taken
// from its routes, which must agree.
func profileErrors(routes []route) map[string]compat.Errors {
	out := map[string]compat.Errors{}
	for _, rt := range routes {
		if !rt.compat {
			continue
		}
		name := profileOf(rt.path)
		if name == "" {
			panic("compat route " + rt.path + " is not under " + compatPrefix + "<profile>/")
		}
		if seen, ok := out[name]; ok && !reflect.DeepEqual(seen, rt.errors) {
			panic("the routes of the compat profile " + name + " disagree on their errors")
		}
		out[name] = rt.errors
	}
	return out
}
