package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/creditd/creditd/internal/stack"
)

// TestEveryLimitIsA4xx crosses each bound creditd puts on input: each is a
// 4xx problem naming the offending location, never a 500.
func TestEveryLimitIsA4xx(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	_, key := s.Tenant("acme")
	s.Must(http.StatusCreated, http.MethodPost, "/v1/grants", key, map[string]any{"amount": "100"})
	long := func(n int) string { return strings.Repeat("x", n) }
	custom := map[string]string{}
	for i := range 17 {
		custom[fmt.Sprintf("k%d", i)] = "v"
	}
	metadata := map[string]string{}
	for i := range 33 {
		metadata[fmt.Sprintf("k%d", i)] = "v"
	}
	events := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = map[string]any{"id": fmt.Sprintf("e%d", i), "amount": "0"}
		}
		return out
	}
	thresholds := make([]any, 11)
	for i := range thresholds {
		thresholds[i] = fmt.Sprint(i + 1)
	}
	cases := []struct {
		name, method, path string
		body               any
		status             int
		location           string
	}{
		{"body_over_64_KiB", "POST", "/v1/grants", map[string]any{"amount": "1", "description": long(70 << 10)}, 413, ""},
		{"usage_body_over_4_MiB", "POST", "/v1/usage", `{"events":[{"id":"a","amount":"1","description":"` + long(5<<20) + `"}]}`, 413, ""},
		{"more_than_1000_events", "POST", "/v1/usage", map[string]any{"events": events(1001)}, 400, "body.events"},
		{"an_id_over_128_bytes", "POST", "/v1/grants", map[string]any{"grant_id": long(129), "amount": "1"}, 400, "body.grant_id"},
		{"a_usage_id_over_128_bytes", "POST", "/v1/usage", map[string]any{"events": []any{map[string]any{"id": long(129), "amount": "1"}}}, 400, "body.events[0].id"},
		{"a_dimension_over_256_bytes", "POST", "/v1/usage", map[string]any{"events": []any{map[string]any{"id": "d", "amount": "1", "module": long(257)}}}, 400, "body.events[0].module"},
		{"a_description_over_1024_bytes", "POST", "/v1/usage", map[string]any{"events": []any{map[string]any{"id": "d", "amount": "1", "description": long(1025)}}}, 400, "body.events[0].description"},
		{"a_credit_type_over_64_bytes", "POST", "/v1/grants", map[string]any{"amount": "1", "credit_type": long(65)}, 400, "body.credit_type"},
		{"more_than_16_custom_keys", "POST", "/v1/usage", map[string]any{"events": []any{map[string]any{"id": "c", "amount": "1", "custom": custom}}}, 400, "body.events[0].custom"},
		{"a_custom_value_over_256_bytes", "POST", "/v1/usage", map[string]any{"events": []any{map[string]any{"id": "c", "amount": "1", "custom": map[string]string{"k": long(257)}}}}, 400, "body.events[0].custom.k"},
		{"more_than_32_metadata_keys", "POST", "/v1/grants", map[string]any{"amount": "1", "metadata": metadata}, 400, "body.metadata"},
		{"seven_decimal_places", "POST", "/v1/grants", map[string]any{"amount": "0.0000001"}, 400, "body.amount"},
		{"an_amount_of_10_to_the_12", "POST", "/v1/grants", map[string]any{"amount": "1000000000000"}, 400, "body.amount"},
		{"a_quantity_of_10_to_the_12", "POST", "/v1/usage", map[string]any{"events": []any{map[string]any{"id": "q", "amount": "1", "quantity": "1e12"}}}, 400, "body.events[0].quantity"},
		{"a_ttl_over_7_days", "POST", "/v1/reservations", map[string]any{"amount": "1", "ttl_seconds": 604801}, 400, "body.ttl_seconds"},
		{"a_page_over_100", "GET", "/v1/ledger?limit=101", nil, 400, "query.limit"},
		{"a_timestamp_in_year_10000_utc", "POST", "/v1/usage", map[string]any{"events": []any{map[string]any{"id": "far", "amount": "1", "timestamp": "9999-12-31T23:30:00-01:00"}}}, 400, "body.events[0].timestamp"},
		{"an_expiry_in_year_10000_utc", "POST", "/v1/grants", map[string]any{"amount": "1", "expires_at": "9999-12-31T23:30:00-01:00"}, 400, "body.expires_at"},
		{"an_offset_over_100000", "GET", "/v1/ledger?offset=100001", nil, 400, "query.offset"},
		{"a_range_over_1830_days", "GET", "/v1/usage?from=2020-01-01&to=2025-01-05", nil, 400, "query.to"},
		{"group_by_over_4_dimensions", "GET", "/v1/usage?group_by=module,service,user_id,endpoint,success", nil, 400, "query.group_by"},
		{"more_than_10_notice_thresholds", "PUT", "/v1/notices", map[string]any{"thresholds": thresholds}, 400, "body.thresholds"},
		{"currency_config_over_16_KiB", "PUT", "/v1/settings", `{"currency_config":{"x":"` + long(17<<10) + `"}}`, 400, "body.currency_config"},
		{"a_compat_span_over_1830_days", "GET", "/compat/lasso/credits/stats?from=2020-01-01&to=2025-01-05", nil, 400, "query.from"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.Do(c.method, c.path, key, c.body)
			if r.Status != c.status {
				t.Fatalf("status %d, want %d: %.300s", r.Status, c.status, r.Body)
			}
			if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
				t.Fatalf("not a problem: %s", r.Header.Get("Content-Type"))
			}
			if c.location != "" && !strings.Contains(string(r.Body), `"location":"`+c.location+`"`) {
				t.Fatalf("no error at %s: %.400s", c.location, r.Body)
			}
		})
	}
}

// A reversal and a capture are refused, as a 4xx naming what is wrong,
// where they would take a line's balance or used total past
// domain.LineTotalMax; below it they are taken.
func TestReversalAndCapturePastTheLineTotalsAre4xx(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	_, key := s.Tenant("acme")
	s.Must(http.StatusCreated, http.MethodPost, "/v1/grants", key, map[string]any{"grant_id": "g", "amount": "999999999999"})
	s.Must(http.StatusOK, http.MethodPost, "/v1/usage", key, map[string]any{"events": []any{map[string]any{"id": "u", "amount": "999999999999"}}})
	s.Must(http.StatusCreated, http.MethodPost, "/v1/adjustments", key, map[string]any{"adjustment_id": "a", "amount": "999999999999", "reason": "top-up"})
	s.Must(http.StatusCreated, http.MethodPost, "/v1/reservations", key, map[string]any{"reservation_id": "r", "amount": "3", "ttl_seconds": 600})
	fetch(t, s, http.MethodPost, "/v1/reservations/r/capture", key, map[string]any{}).problem(t, http.StatusBadRequest, "body.amount")
	fetch(t, s, http.MethodPost, "/v1/usage/u/reverse", key, map[string]any{"reason": "refund"}).problem(t, http.StatusBadRequest, "path.usage_id")
	fetch(t, s, http.MethodPost, "/v1/reservations/r/capture", key, map[string]any{"amount": "1"}).want(t, http.StatusOK)
}
