package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestProblems(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, key := e.tenant(t, "acme")
	e.position(t, e.grant(t, key, "g1", 10))
	e.position(t, e.call(t, "POST", "/v1/reservations", key, map[string]any{"reservation_id": "r1", "amount": 1}).want(t, http.StatusCreated))

	events := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`{"id":"e%d","amount":0}`, i)
		}
		return `{"events":[` + strings.Join(parts, ",") + `]}`
	}

	cases := []struct {
		name         string
		method, path string
		token        string
		body         any
		status       int
		typ          string
		locations    []string
	}{
		{"a_missing_api_key_is_a_401", "POST", "/v1/grants", "", map[string]any{"amount": 1}, 401, "unauthorized", nil},
		{"a_wrong_api_key_is_a_401", "POST", "/v1/usage", "cdk_nope", map[string]any{"events": []any{}}, 401, "unauthorized", nil},
		{"the_admin_token_is_no_api_key", "POST", "/v1/grants", adminToken, map[string]any{"amount": 1}, 401, "unauthorized", nil},
		{"an_unknown_route_is_a_404", "GET", "/v1/nothing-here", key, nil, 404, "not-found", nil},
		{"an_unknown_version_is_a_404", "POST", "/v2/grants", key, map[string]any{"amount": 1}, 404, "not-found", nil},
		{"malformed_json_is_a_400", "POST", "/v1/grants", key, raw(`{"amount": 1,`), 400, "invalid-json", nil},
		{"a_json_array_body_is_a_400", "POST", "/v1/grants", key, raw(`[1,2]`), 400, "invalid-json", nil},
		{"two_json_values_are_a_400", "POST", "/v1/grants", key, raw(`{"amount":1} {"amount":2}`), 400, "invalid-json", nil},
		{"an_empty_body_is_a_400", "POST", "/v1/adjustments", key, raw(``), 400, "invalid-json", nil},
		{"an_unknown_field_is_a_400_naming_it", "POST", "/v1/grants", key, raw(`{"amount":1,"amout":2}`), 400, "invalid-json", []string{"body.amout"}},
		{"an_unknown_reservation_field_is_a_400_naming_it", "POST", "/v1/reservations", key, raw(`{"amount":1,"ttl":5}`), 400, "invalid-json", []string{"body.ttl"}},
		{"a_field_of_the_wrong_type_is_a_400_naming_it", "POST", "/v1/grants", key, raw(`{"amount":1,"priority":"high"}`), 400, "invalid-json", []string{"body.priority"}},
		{"a_bad_timestamp_is_a_400_naming_it", "POST", "/v1/grants", key, raw(`{"amount":1,"expires_at":"tomorrow"}`), 400, "invalid-request", []string{"body.expires_at"}},
		{"a_batch_of_0_events_is_a_400", "POST", "/v1/usage", key, raw(`{"events":[]}`), 400, "invalid-request", []string{"body.events"}},
		{"a_batch_without_events_is_a_400", "POST", "/v1/usage", key, raw(`{}`), 400, "invalid-request", []string{"body.events"}},
		{"a_batch_of_1001_events_is_a_400", "POST", "/v1/usage", key, raw(events(1001)), 400, "invalid-request", []string{"body.events"}},
		{"two_bad_events_are_both_listed", "POST", "/v1/usage", key, raw(`{"events":[{"id":"ok-0","amount":"x"},{"amount":1},{"id":"ok-2","amount":1}]}`), 400, "invalid-request", []string{"body.events[0].amount", "body.events[1].id"}},
		{"every_bad_field_of_a_grant_is_listed", "POST", "/v1/grants", key, raw(`{"amount":"-1","source":"gift","currency":"far-too-long"}`), 400, "invalid-request", []string{"body.amount", "body.source", "body.currency"}},
		{"a_bad_credit_type_is_a_400_naming_it", "POST", "/v1/grants", key, raw(`{"amount":1,"credit_type":"no spaces"}`), 400, "invalid-request", []string{"body.credit_type"}},
		{"a_usage_body_over_4_mib_is_a_413", "POST", "/v1/usage", key, raw(`{"events":[{"id":"` + strings.Repeat("a", 4<<20) + `","amount":1}]}`), 413, "request-too-large", nil},
		{"a_grant_body_over_64_kib_is_a_413", "POST", "/v1/grants", key, raw(`{"amount":1,"description":"` + strings.Repeat("a", 64<<10) + `"}`), 413, "request-too-large", nil},
		{"insufficient_credits_is_a_402", "POST", "/v1/reservations", key, map[string]any{"amount": 100}, 402, "insufficient-credits", nil},
		{"an_unknown_reservation_is_a_404", "POST", "/v1/reservations/nope/release", key, nil, 404, "reservation-not-found", nil},
		{"a_reused_grant_id_is_a_409", "POST", "/v1/grants", key, map[string]any{"grant_id": "g1", "amount": 11}, 409, "idempotency-conflict", nil},
		{"a_bad_tenant_id_is_a_400", "POST", "/v1/tenants/x/api-keys", adminToken, nil, 400, "invalid-request", []string{"path.tenant_id"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.call(t, c.method, c.path, c.token, c.body)
			p := r.problem(t, c.status, c.locations...)
			if want := "urn:creditd:problem:" + c.typ; p.Type != want {
				t.Errorf("type %q, want %q", p.Type, want)
			}
			if p.Instance != c.path && !strings.HasPrefix(c.path, p.Instance+"?") {
				t.Errorf("instance %q, want %q", p.Instance, c.path)
			}
			if c.locations != nil && len(p.Errors) != len(c.locations) {
				t.Errorf("errors at %v, want exactly %v", p.locations(), c.locations)
			}
		})
	}

	t.Run("a_refused_batch_names_where_the_problem_is", func(t *testing.T) {
		r := e.call(t, "POST", "/v1/usage", key, raw(`{"events":[{"id":"a","amount":1},{"id":"b","amount":1,"credit_type":"bad type","custom":{"":"x"}}]}`))
		p := r.problem(t, http.StatusBadRequest, "body.events[1].credit_type", "body.events[1].custom")
		for _, fe := range p.Errors {
			if !strings.HasPrefix(fe.Location, "body.events[1].") {
				t.Errorf("error at %s, want only event 1", fe.Location)
			}
		}
	})

	t.Run("malformed_json_says_where", func(t *testing.T) {
		p := e.call(t, "POST", "/v1/grants", key, raw(`{"amount": 1,}`)).problem(t, http.StatusBadRequest)
		if !strings.Contains(p.Detail, "byte") {
			t.Errorf("detail %q does not locate the error", p.Detail)
		}
	})
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, key := e.tenant(t, "acme")

	t.Run("a_client_request_id_is_echoed_in_the_header_and_the_problem", func(t *testing.T) {
		r := e.call(t, "POST", "/v1/grants", key, raw(`{"amount":"abc"}`), "X-Request-Id", "client-req-42")
		if got := r.Header.Get("X-Request-Id"); got != "client-req-42" {
			t.Errorf("X-Request-Id %q, want client-req-42", got)
		}
		if p := r.problem(t, http.StatusBadRequest, "body.amount"); p.RequestID != "client-req-42" {
			t.Errorf("request_id %q, want client-req-42", p.RequestID)
		}
	})

	t.Run("a_client_request_id_is_echoed_on_success", func(t *testing.T) {
		r := e.call(t, "POST", "/v1/grants", key, map[string]any{"amount": 1}, "X-Request-Id", "client-req-43")
		e.position(t, r.want(t, http.StatusCreated))
		if got := r.Header.Get("X-Request-Id"); got != "client-req-43" {
			t.Errorf("X-Request-Id %q, want client-req-43", got)
		}
	})

	t.Run("the_server_makes_an_id_when_the_client_sends_none_or_an_unusable_one", func(t *testing.T) {
		seen := map[string]bool{}
		for _, sent := range []string{"", "has space", strings.Repeat("x", 129)} {
			var headers []string
			if sent != "" {
				headers = []string{"X-Request-Id", sent}
			}
			r := e.call(t, "GET", "/v1/nope", "", nil, headers...)
			p := r.problem(t, http.StatusNotFound)
			if p.RequestID == "" || p.RequestID == sent || seen[p.RequestID] {
				t.Errorf("sent %q, got request id %q (seen before: %v)", sent, p.RequestID, seen[p.RequestID])
			}
			seen[p.RequestID] = true
		}
	})

	t.Run("a_request_id_of_128_printable_bytes_is_kept", func(t *testing.T) {
		id := strings.Repeat("y", 128)
		r := e.call(t, "GET", "/v1/nope", "", nil, "X-Request-Id", id)
		if p := r.problem(t, http.StatusNotFound); p.RequestID != id {
			t.Errorf("request_id %q, want the 128-byte id", p.RequestID)
		}
	})
}
