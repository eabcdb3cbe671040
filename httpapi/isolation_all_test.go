package httpapi_test

import (
	"encoding/json"

	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/stack"
)

// TestEveryTenantRouteIsIsolated walks every route the OpenAPI document
// lists as tenant-authenticated (native and compat) with tenant B's key,
// aimed at tenant A's resources: no answer carries anything of A's, and
// A's balance is untouched.
func TestEveryTenantRouteIsIsolated(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC))
	_, keyA := s.Tenant("secret-tenant-a")
	_, keyB := s.Tenant("tenant-b")
	for _, w := range []struct {
		path string
		body any
	}{
		{"/v1/grants", map[string]any{"grant_id": "secret-a-grant", "amount": "777.123", "expires_at": "2026-04-01T00:00:00Z"}},
		{"/v1/usage", map[string]any{"events": []any{map[string]any{"id": "secret-a-usage", "amount": "1.001", "module": "secret-a-module",
			"user_id": "secret-a-user", "workflow_id": "secret-a-wf", "custom": map[string]string{"table_id": "secret-a-table"}, "timestamp": "2026-03-15T10:00:00Z"}}}},
		{"/v1/reservations", map[string]any{"reservation_id": "secret-a-hold", "amount": "2"}},
		{"/v1/reservations", map[string]any{"reservation_id": "secret-a-hold2", "amount": "2"}},
		{"/v1/subscriptions", map[string]any{"subscription_id": "secret-a-sub", "credits_per_period": "5", "credit_type": "secret-a-plan"}},
	} {
		if r := s.Do(http.MethodPost, w.path, keyA, w.body); r.Status >= 300 {
			t.Fatalf("A's write %s: %d %s", w.path, r.Status, r.Body)
		}
	}
	s.Sync()
	before := string(s.Do(http.MethodGet, "/v1/balance", keyA, nil).Body)

	var doc struct {
		Paths map[string]map[string]struct {
			Security   []map[string]any `json:"security"`
			Parameters []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(s.Do(http.MethodGet, "/openapi.json", "", nil).Body, &doc); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{"reservation_id": "secret-a-hold", "grant_id": "secret-a-grant", "usage_id": "secret-a-usage",
		"subscription_id": "secret-a-sub", "credit_type": "default"}
	queries := map[string]string{"from": "2026-03-01", "to": "2026-03-31", "start_date": "2026-03-01", "end_date": "2026-03-31",
		"credit_type": "default", "workflow_id": "secret-a-wf"}
	// Bodies that are valid for each route, so the route's action is what
	// is tested, not its decoding.
	bodies := map[string]any{
		"POST /v1/grants/{grant_id}/void": map[string]any{"reason": "x"}, "POST /v1/usage/{usage_id}/reverse": map[string]any{"reason": "x"},
		"POST /v1/reservations/{reservation_id}/capture": map[string]any{"amount": "1"}, "POST /v1/reservations/{reservation_id}/release": nil, "PATCH /v1/grants/{grant_id}": map[string]any{"expires_at": nil},
		"POST /v1/usage":  map[string]any{"events": []any{map[string]any{"id": "b-usage", "amount": "0"}}},
		"POST /v1/grants": map[string]any{"amount": "1"}, "POST /v1/reservations": map[string]any{"amount": "1"},
		"POST /v1/adjustments": map[string]any{"amount": "1", "reason": "x"}, "PUT /v1/auto-reload": map[string]any{"enabled": false},
		"PUT /v1/credit-lines/{credit_type}": map[string]any{"overdraft_limit": "0"}, "POST /v1/subscriptions": map[string]any{"credits_per_period": "1"},
		"PUT /v1/notices": map[string]any{"thresholds": []any{"1"}}, "PUT /v1/settings": map[string]any{"currency": "EUR"},
	}
	// What only A knows: B may see the ids it typed itself echoed back.
	markers := []string{"secret-tenant-a", "777.123", "1.001", "secret-a-module", "secret-a-user", "secret-a-table", "secret-a-hold2", "secret-a-plan", "secret-a-wf"}
	routes := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			tenantRoute := false
			for _, sec := range op.Security {
				_, tenantRoute = sec["apiKey"]
			}
			if !tenantRoute {
				continue
			}
			routes++
			url := path
			for name, id := range ids {
				url = strings.ReplaceAll(url, "{"+name+"}", id)
			}
			var q []string
			for _, p := range op.Parameters {
				if v, ok := queries[p.Name]; ok && p.In == "query" {
					q = append(q, p.Name+"="+v)
				}
			}
			if len(q) > 0 {
				url += "?" + strings.Join(q, "&")
			}
			m := strings.ToUpper(method)
			var body any
			if m != http.MethodGet && m != http.MethodDelete {
				var ok bool
				if body, ok = bodies[m+" "+path]; !ok {
					t.Errorf("no body for %s %s: add one", m, path)
					continue
				}
			}
			r := s.Do(m, url, keyB, body)
			if r.Status == http.StatusBadRequest && strings.Contains(path, "_id}") {
				t.Errorf("%s %s as B: the body was refused (%s); the test must reach the action", m, url, r.Body)
			}
			if r.Status >= 500 {
				t.Errorf("%s %s as B: %d %s", m, url, r.Status, r.Body)
			}
			for _, marker := range markers {
				if strings.Contains(string(r.Body), marker) {
					t.Errorf("%s %s as B shows %q: %s", m, url, marker, r.Body)
				}
			}
			// A path naming one of A's resources must not act for B; a
			// credit type in a path is B's own line of that name.
			if strings.Contains(path, "_id}") && m != http.MethodGet && r.Status < 300 {
				t.Errorf("%s %s as B acted on A's resource: %d %s", m, url, r.Status, r.Body)
			}
		}
	}
	if routes < 25 {
		t.Fatalf("walked %d tenant routes: the document lists too few", routes)
	}
	s.Sync()
	if after := string(s.Do(http.MethodGet, "/v1/balance", keyA, nil).Body); after != before {
		t.Fatalf("A's balance changed while B walked the API:\n%s\n%s", before, after)
	}
}
