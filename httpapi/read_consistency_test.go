package httpapi_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/stack"
)

// TestReadYourWrites checks that a read given a write's position, as
// min_position or X-Min-Position, includes that write, and how the wait
// fails.
func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(readEpoch)
	m := newTenant(t, s, "ryw", "USD")

	// xPosition checks the header a waited read answers with.
	xPosition := func(t *testing.T, r response, atLeast uint64) {
		t.Helper()
		p, err := strconv.ParseUint(r.Header.Get("X-Position"), 10, 64)
		if err != nil || p < atLeast {
			t.Errorf("X-Position %q, want at least %d", r.Header.Get("X-Position"), atLeast)
		}
	}

	t.Run("a balance read with min_position includes the write that returned it", func(t *testing.T) {
		p := m.grant("g1", "", "100", nil)
		r := fetch(t, s, http.MethodGet, fmt.Sprintf("/v1/balance?min_position=%d", p), m.key, nil)
		checkBalance(t, r.want(t, http.StatusOK), m.id, "USD", m.snapshot())
		xPosition(t, r, p)
	})

	t.Run("a balance read with X-Min-Position includes the write that returned it", func(t *testing.T) {
		p := m.grant("g2", "", "50.5", nil)
		r := fetch(t, s, http.MethodGet, "/v1/balance", m.key, nil, "X-Min-Position", strconv.FormatUint(p, 10))
		checkBalance(t, r.want(t, http.StatusOK), m.id, "USD", m.snapshot())
		xPosition(t, r, p)
	})

	t.Run("every read sees each write right after it", func(t *testing.T) {
		for i := range 8 {
			s.Clock.Advance(time.Second)
			p := m.use(usageEv{id: fmt.Sprintf("u%d", i), amount: "1.25", quantity: "1", module: "m", user: "u"})
			position := strconv.FormatUint(p, 10)
			var headers []string
			query := "?min_position=" + position
			if i%2 == 1 { // alternate the query parameter and the header
				headers, query = []string{"X-Min-Position", position}, ""
			}
			checkBalance(t, read(t, s, "/v1/balance"+query, m.key, headers...), m.id, "USD", m.snapshot())
			ledger := read(t, s, "/v1/ledger"+query, m.key, headers...)
			wantInt(t, ledger, "total", int64(len(m.ledger)))
			checkLedgerEntry(t, list(t, ledger["entries"], "entries")[0], m.ledger[len(m.ledger)-1])
			totals, _ := expectUsage(m.usage, usageQuery{from: readEpoch.Truncate(24 * time.Hour), to: readEpoch.Truncate(24 * time.Hour)})
			checkTotals(t, obj(t, read(t, s, "/v1/usage"+query, m.key, headers...)["totals"], "totals"), totals, "totals")
			wantDec(t, read(t, s, "/v1/stats"+query, m.key, headers...), "spent", totals.credits)
			checkTotals(t, obj(t, read(t, s, "/v1/summary"+query, m.key, headers...)["lifetime"], "lifetime"), totals, "lifetime")
		}
	})

	t.Run("min_position zero or already reached answers at once", func(t *testing.T) {
		read(t, s, "/v1/balance?min_position=0", m.key)
		read(t, s, "/v1/ledger", m.key, "X-Min-Position", "1")
	})

	t.Run("a malformed min_position is a 400 naming where it came from", func(t *testing.T) {
		badRead(t, s, "/v1/balance?min_position=abc", m.key, "query.min_position")
		badRead(t, s, "/v1/usage?min_position=-1", m.key, "query.min_position")
		fetch(t, s, http.MethodGet, "/v1/ledger", m.key, nil, "X-Min-Position", "abc").
			problem(t, http.StatusBadRequest, "header.X-Min-Position")
	})

	t.Run("a position the log has not reached is a 503 after about 5 s", func(t *testing.T) {
		start := time.Now()
		r := fetch(t, s, http.MethodGet, fmt.Sprintf("/v1/balance?min_position=%d", m.lastPos+1_000_000), m.key, nil)
		elapsed := time.Since(start)
		p := r.problem(t, http.StatusServiceUnavailable)
		if p.Type != "urn:creditd:problem:not-yet-projected" {
			t.Errorf("problem type %q", p.Type)
		}
		if r.Header.Get("Retry-After") == "" {
			t.Error("no Retry-After")
		}
		if elapsed < 4900*time.Millisecond || elapsed > 9*time.Second {
			t.Errorf("answered after %s, want about 5 s", elapsed)
		}
	})
}

// TestReadyzAndOpenAPI checks /readyz against the log, and that
// /openapi.json documents every route and that every documented operation
// answers.
func TestReadyzAndOpenAPI(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(readEpoch)
	m := newTenant(t, s, "doc", "USD")
	m.grant("g", "", "1000", nil)
	m.reserve(usageEv{id: "r-capture", amount: "5"})
	m.reserve(usageEv{id: "r-release", amount: "5"})
	issued := fetch(t, s, http.MethodPost, fmt.Sprintf("/v1/tenants/%d/api-keys", m.id), stack.AdminToken, nil).want(t, http.StatusCreated)
	m.lastPos = num(t, issued, "position")
	s.Sync()

	t.Run("readyz reports the projection at the log's last position", func(t *testing.T) {
		got := fetch(t, s, http.MethodGet, "/readyz", "", nil).want(t, http.StatusOK)
		wantString(t, got, "status", "ready")
		wantInt(t, got, "log_position", int64(m.lastPos))
		wantInt(t, got, "projection_position", int64(m.lastPos))
		wantInt(t, got, "projection_lag", 0)
	})

	// The route table of routes.go, method and path.
	routes := []string{
		"GET /healthz", "GET /readyz", "GET /openapi.json",
		"POST /v1/tenants", "POST /v1/tenants/{tenant_id}/api-keys", "DELETE /v1/tenants/{tenant_id}/api-keys/{key_id}",
		"POST /v1/grants", "POST /v1/usage", "POST /v1/reservations",
		"POST /v1/reservations/{reservation_id}/capture", "POST /v1/reservations/{reservation_id}/release",
		"POST /v1/adjustments", "PUT /v1/auto-reload", "PUT /v1/credit-lines/{credit_type}",
		"POST /v1/subscriptions", "DELETE /v1/subscriptions/{subscription_id}", "PUT /v1/settings",
		"POST /v1/grants/{grant_id}/void", "PATCH /v1/grants/{grant_id}", "PUT /v1/notices", "GET /v1/notices", "GET /v1/audit/verify", "POST /v1/checkpoints", "POST /v1/usage/{usage_id}/reverse", "GET /dashboard", "GET /dashboard/{file}",
		"GET /compat/lantern/v1/credits/usage", "GET /compat/lantern/v1/credits/remaining",
		"GET /compat/account/auth/account/usage", "GET /compat/account/auth/account/credits",
		"GET /compat/account/auth/account/ledger", "GET /compat/account/auth/account/summary",
		"GET /compat/tamtam/api/v2/credits", "GET /compat/lasso/credits/stats", "GET /compat/openrouter/api/v1/credits",
		"GET /v1/balance", "GET /v1/ledger", "GET /v1/usage", "GET /v1/stats", "GET /v1/summary",
	}
	doc := fetch(t, s, http.MethodGet, "/openapi.json", "", nil)

	t.Run("the document is OpenAPI 3.1.0 JSON", func(t *testing.T) {
		got := doc.want(t, http.StatusOK)
		wantString(t, got, "openapi", "3.1.0")
		obj(t, got["info"], "info")
		schemes := obj(t, obj(t, got["components"], "components")["securitySchemes"], "securitySchemes")
		for _, name := range []string{"apiKey", "adminToken"} {
			obj(t, schemes[name], name)
		}
	})

	// operations lists the document's "METHOD path" pairs.
	operations := func(t *testing.T) map[string]map[string]any {
		t.Helper()
		out := map[string]map[string]any{}
		for path, item := range obj(t, doc.want(t, http.StatusOK)["paths"], "paths") {
			for method, op := range obj(t, item, path) {
				out[strings.ToUpper(method)+" "+path] = obj(t, op, method+" "+path)
			}
		}
		return out
	}

	t.Run("every route has an operation and every operation is a route", func(t *testing.T) {
		ops := operations(t)
		ids := map[any]string{}
		for _, rt := range routes {
			op, ok := ops[rt]
			if !ok {
				t.Errorf("%s is not documented", rt)
				continue
			}
			if op["summary"] == "" || op["operationId"] == "" {
				t.Errorf("%s lacks a summary or operationId: %v", rt, op)
			}
			if other, taken := ids[op["operationId"]]; taken {
				t.Errorf("%s and %s share the operationId %v", rt, other, op["operationId"])
			}
			ids[op["operationId"]] = rt
			obj(t, op["responses"], rt+" responses")
		}
		if len(ops) != len(routes) {
			var extra []string
			for op := range ops {
				if !slices.Contains(routes, op) {
					extra = append(extra, op)
				}
			}
			t.Errorf("%d operations for %d routes; not in the table: %v", len(ops), len(routes), extra)
		}
	})

	t.Run("tenant reads document their query parameters and min_position", func(t *testing.T) {
		ops := operations(t)
		for op, params := range map[string][]string{
			"GET /v1/balance": {"credit_type", "as_of", "min_position"},
			"GET /v1/ledger":  {"type", "from", "to", "credit_type", "limit", "offset", "cursor", "min_position"},
			"GET /v1/usage":   {"from", "to", "granularity", "group_by", "min_position"},
			"GET /v1/stats":   {"from", "to", "min_position"},
			"GET /v1/summary": {"min_position"},
		} {
			documented := map[string]bool{}
			if list, ok := ops[op]["parameters"].([]any); ok {
				for _, p := range list {
					documented[obj(t, p, op+" parameter")["name"].(string)] = true
				}
			}
			for _, p := range params {
				if !documented[p] {
					t.Errorf("%s does not document %s", op, p)
				}
			}
			if _, ok := ops[op]["security"]; !ok {
				t.Errorf("%s has no security", op)
			}
		}
	})

	t.Run("every documented operation answers when called with its method and auth", func(t *testing.T) {
		tenant := strconv.FormatInt(m.id, 10)
		fetch(t, s, http.MethodPost, "/v1/subscriptions", m.key, map[string]any{"subscription_id": "sub-cancel", "credits_per_period": "10"})
		fetch(t, s, http.MethodPost, "/v1/grants", m.key, map[string]any{"grant_id": "g-void", "amount": "3"})
		fetch(t, s, http.MethodPost, "/v1/usage", m.key, map[string]any{"events": []any{map[string]any{"id": "u-reverse", "amount": "1"}}})
		fetch(t, s, http.MethodPost, "/v1/grants", m.key, map[string]any{"grant_id": "g-patch", "amount": "3", "expires_at": "2027-01-01T00:00:00Z"})
		calls := map[string]struct {
			path, token string
			body        any
		}{
			"GET /healthz":                          {"/healthz", "", nil},
			"GET /readyz":                           {"/readyz", "", nil},
			"GET /openapi.json":                     {"/openapi.json", "", nil},
			"GET /dashboard":                        {"/dashboard", "", nil},
			"GET /dashboard/{file}":                 {"/dashboard/app.js", "", nil},
			"POST /v1/tenants":                      {"/v1/tenants", stack.AdminToken, map[string]any{"name": "another"}},
			"POST /v1/tenants/{tenant_id}/api-keys": {"/v1/tenants/" + tenant + "/api-keys", stack.AdminToken, nil},
			"DELETE /v1/tenants/{tenant_id}/api-keys/{key_id}": {"/v1/tenants/" + tenant + "/api-keys/" + issued["key_id"].(string), stack.AdminToken, nil},
			"POST /v1/grants":       {"/v1/grants", m.key, map[string]any{"grant_id": "g-doc", "amount": "1"}},
			"POST /v1/usage":        {"/v1/usage", m.key, map[string]any{"events": []any{map[string]any{"id": "u-doc", "amount": "1"}}}},
			"POST /v1/reservations": {"/v1/reservations", m.key, map[string]any{"reservation_id": "r-doc", "amount": "1"}},
			"POST /v1/reservations/{reservation_id}/capture": {"/v1/reservations/r-capture/capture", m.key, map[string]any{"amount": "2"}},
			"POST /v1/reservations/{reservation_id}/release": {"/v1/reservations/r-release/release", m.key, nil},
			"POST /v1/adjustments":                           {"/v1/adjustments", m.key, map[string]any{"adjustment_id": "a-doc", "amount": "1", "reason": "doc"}},
			"PUT /v1/auto-reload":                            {"/v1/auto-reload", m.key, map[string]any{"enabled": false}},
			"PUT /v1/credit-lines/{credit_type}":             {"/v1/credit-lines/default", m.key, map[string]any{"overdraft_limit": "0"}},
			"POST /v1/subscriptions":                         {"/v1/subscriptions", m.key, map[string]any{"subscription_id": "sub-doc", "credits_per_period": "10"}},
			"DELETE /v1/subscriptions/{subscription_id}":     {"/v1/subscriptions/sub-cancel", m.key, nil},
			"PUT /v1/settings":                               {"/v1/settings", m.key, map[string]any{"currency": "EUR"}},
			"POST /v1/grants/{grant_id}/void":                {"/v1/grants/g-void/void", m.key, map[string]any{"reason": "refund"}},
			"PATCH /v1/grants/{grant_id}":                    {"/v1/grants/g-patch", m.key, map[string]any{"expires_at": nil}},
			"PUT /v1/notices":                                {"/v1/notices", m.key, map[string]any{"thresholds": []any{"10"}}},
			"GET /v1/notices":                                {"/v1/notices", m.key, nil},
			"GET /v1/audit/verify":                           {"/v1/audit/verify", m.key, nil},
			"POST /v1/checkpoints":                           {"/v1/checkpoints", stack.AdminToken, nil},
			"POST /v1/usage/{usage_id}/reverse":              {"/v1/usage/u-reverse/reverse", m.key, map[string]any{"reason": "refund"}},
			"GET /v1/balance":                                {"/v1/balance", m.key, nil},
			"GET /compat/lantern/v1/credits/usage":           {"/compat/lantern/v1/credits/usage?start_date=2026-03-01&end_date=2026-03-31", m.key, nil},
			"GET /compat/lantern/v1/credits/remaining":       {"/compat/lantern/v1/credits/remaining", m.key, nil},
			"GET /compat/account/auth/account/usage":         {"/compat/account/auth/account/usage", m.key, nil},
			"GET /compat/account/auth/account/credits":       {"/compat/account/auth/account/credits", m.key, nil},
			"GET /compat/account/auth/account/ledger":        {"/compat/account/auth/account/ledger", m.key, nil},
			"GET /compat/account/auth/account/summary":       {"/compat/account/auth/account/summary", m.key, nil},
			"GET /compat/tamtam/api/v2/credits":              {"/compat/tamtam/api/v2/credits", m.key, nil},
			"GET /compat/lasso/credits/stats":                {"/compat/lasso/credits/stats?from=2026-03-01&to=2026-03-31", m.key, nil},
			"GET /compat/openrouter/api/v1/credits":          {"/compat/openrouter/api/v1/credits", m.key, nil},
			"GET /v1/ledger":                                 {"/v1/ledger", m.key, nil},
			"GET /v1/usage":                                  {"/v1/usage", m.key, nil},
			"GET /v1/stats":                                  {"/v1/stats", m.key, nil},
			"GET /v1/summary":                                {"/v1/summary", m.key, nil},
		}
		for op := range operations(t) {
			c, ok := calls[op]
			if !ok {
				t.Errorf("no call for the documented %s", op)
				continue
			}
			method, _, _ := strings.Cut(op, " ")
			r := fetch(t, s, method, c.path, c.token, c.body)
			if r.Status == http.StatusNotFound || r.Status >= 300 {
				t.Errorf("%s %s: status %d: %s", method, c.path, r.Status, r.Body)
			}
		}
		// The check can tell: a path that is not a route is a 404.
		fetch(t, s, http.MethodGet, "/v1/balances", m.key, nil).problem(t, http.StatusNotFound)
	})
}
