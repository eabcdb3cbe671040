package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/creditd/creditd/internal/stack"
)

// Issue 13, section 3: input that does not say exactly one thing is a 400
// problem naming where, never a silent change of the answer.

func TestQueryStringsAreStrict(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	_, key := s.Tenant("acme")
	many := strings.Repeat("type=debit&", 10001)
	cases := []struct {
		name, path string
		locations  []string
	}{
		{"a_semicolon_is_a_400", "/v1/usage?module=x;y", []string{"query.module"}},
		{"a_bad_escape_in_a_value_is_a_400", "/v1/usage?module=%zz", []string{"query.module"}},
		{"a_bad_escape_in_a_name_is_a_400", "/v1/ledger?%zz=1", []string{"query.%zz"}},
		{"invalid_utf8_is_a_400", "/v1/usage?module=%ff", []string{"query.module"}},
		{"an_escaped_name_that_is_not_utf8_is_located_as_written", "/v1/usage?%9d%9d=1", []string{"query.%9d%9d"}},
		{"more_parameters_than_the_limit_is_a_400", "/v1/ledger?" + many, []string{"query.type"}},
		{"limit_twice_is_a_400", "/v1/ledger?limit=2&limit=100", []string{"query.limit"}},
		{"group_by_twice_is_a_400", "/v1/usage?group_by=module&group_by=user_id", []string{"query.group_by"}},
		{"from_twice_is_a_400", "/v1/stats?from=2026-01-01&from=2026-02-01", []string{"query.from"}},
		{"min_position_twice_is_a_400", "/v1/balance?min_position=1&min_position=2", []string{"query.min_position"}},
		{"cursor_with_offset_is_a_400", "/v1/ledger?cursor=abc&offset=1", []string{"query.offset"}},
		{"limit_abc_is_one_error", "/v1/ledger?limit=abc", []string{"query.limit"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := fetch(t, s, http.MethodGet, c.path, key, nil).problem(t, http.StatusBadRequest, c.locations...)
			if len(p.Errors) != len(c.locations) {
				t.Errorf("errors at %v, want exactly %v", p.locations(), c.locations)
			}
		})
	}
	t.Run("list_parameters_may_repeat", func(t *testing.T) {
		read(t, s, "/v1/ledger?type=debit&type=credit", key)
		read(t, s, "/v1/usage?module=a&module=b", key)
	})
}

func TestJSONBodiesAreStrict(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, key := e.tenant(t, "acme")
	e.grant(t, key, "g0", 100)
	cases := []struct {
		name, path, body string
		locations        []string
	}{
		{"invalid_utf8_in_an_id_is_a_400", "/v1/grants", "{\"grant_id\":\"g\xff\",\"amount\":1}", []string{"body.grant_id"}},
		{"invalid_utf8_in_a_usage_id_is_a_400", "/v1/usage", "{\"events\":[{\"id\":\"u\xfe\",\"amount\":1}]}", []string{"body.events[0].id"}},
		{"a_duplicate_key_is_a_400", "/v1/grants", `{"amount":1,"amount":2}`, []string{"body.amount"}},
		{"a_duplicate_key_in_an_event_is_a_400", "/v1/usage", `{"events":[{"id":"a","amount":1,"id":"b"}]}`, []string{"body.events[0].id"}},
		{"names_match_case_sensitively", "/v1/grants", `{"AMOUNT":1}`, []string{"body.AMOUNT"}},
		{"an_unknown_field_of_an_event_is_located_in_its_event", "/v1/usage", `{"events":[{"id":"a","amount":1},{"id":"b","amount":1,"bogus":1}]}`, []string{"body.events[1].bogus"}},
		{"a_wrong_type_in_custom_is_located_at_its_key", "/v1/usage", `{"events":[{"id":"a","amount":1,"custom":{"a":1}}]}`, []string{"body.events[0].custom.a"}},
		{"a_wrong_type_in_metadata_is_located_at_its_key", "/v1/grants", `{"amount":1,"metadata":{"k":1}}`, []string{"body.metadata.k"}},
		{"an_array_body_is_located_at_the_body", "/v1/usage", `[1]`, []string{"body"}},
		{"a_negative_amount_is_said_once", "/v1/usage", `{"events":[{"id":"n","amount":-1}]}`, []string{"body.events[0].amount"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := e.call(t, "POST", c.path, key, raw(c.body)).problem(t, http.StatusBadRequest, c.locations...)
			if len(p.Errors) != len(c.locations) {
				t.Errorf("errors at %v, want exactly %v", p.locations(), c.locations)
			}
			for _, fe := range p.Errors {
				for _, goName := range []string{"Request", "map[", "struct", "httpapi.", "dimensions"} {
					if strings.Contains(fe.Location+fe.Message, goName) {
						t.Errorf("error %q: %q names a Go type", fe.Location, fe.Message)
					}
				}
				if strings.HasSuffix(fe.Location, ".") {
					t.Errorf("location %q ends in a dot", fe.Location)
				}
				if first, rest, found := strings.Cut(fe.Message, ": "); found && strings.Contains(rest, first) || found && strings.Contains(first, rest) {
					t.Errorf("message %q says the same thing twice", fe.Message)
				}
			}
		})
	}
	t.Run("g_ff_and_g_fe_do_not_collide", func(t *testing.T) {
		e.call(t, "POST", "/v1/grants", key, raw("{\"grant_id\":\"g\xff\",\"amount\":1}")).problem(t, http.StatusBadRequest)
		e.call(t, "POST", "/v1/grants", key, raw("{\"grant_id\":\"g\xfe\",\"amount\":2}")).problem(t, http.StatusBadRequest)
	})
	t.Run("a_huge_value_is_cut_in_the_problem", func(t *testing.T) {
		huge := strings.Repeat("x", 1<<20)
		r := e.call(t, "POST", "/v1/usage", key, raw(`{"events":[{"id":"a","amount":"`+huge+`","`+huge+`":1}]}`))
		r.problem(t, http.StatusBadRequest)
		if len(r.Body) > 4096 {
			t.Errorf("problem of %d bytes, want at most 4096", len(r.Body))
		}
		r = e.call(t, "POST", "/v1/usage", key, raw(`{"events":[{"id":"a","amount":"`+huge+`"}]}`))
		r.problem(t, http.StatusBadRequest, "body.events[0].amount")
		if len(r.Body) > 4096 {
			t.Errorf("problem of %d bytes, want at most 4096", len(r.Body))
		}
	})
}

func TestTimesAreNeverUnset(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, key := e.tenant(t, "acme")
	e.grant(t, key, "g0", 100)
	cases := []struct {
		name, path, body, location string
	}{
		{"a_zero_usage_timestamp_is_a_400", "/v1/usage", `{"events":[{"id":"a","amount":1,"timestamp":"0001-01-01T00:00:00Z"}]}`, "body.events[0].timestamp"},
		{"a_usage_timestamp_before_1970_is_a_400", "/v1/usage", `{"events":[{"id":"a","amount":1,"timestamp":"1969-12-31T23:59:59Z"}]}`, "body.events[0].timestamp"},
		{"a_usage_timestamp_over_24h_ahead_is_a_400", "/v1/usage", `{"events":[{"id":"a","amount":1,"timestamp":"2026-03-02T12:00:01Z"}]}`, "body.events[0].timestamp"},
		{"a_zero_effective_at_is_a_400", "/v1/grants", `{"amount":1,"effective_at":"0001-01-01T00:00:00Z"}`, "body.effective_at"},
		{"a_starts_at_before_1970_is_a_400", "/v1/subscriptions", `{"credits_per_period":1,"starts_at":"1900-01-01T00:00:00Z"}`, "body.starts_at"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.call(t, "POST", c.path, key, raw(c.body)).problem(t, http.StatusBadRequest, c.location)
		})
	}
	t.Run("a_usage_timestamp_within_24h_ahead_is_recorded_as_a_rejected_debit", func(t *testing.T) {
		body := e.usage(t, key, map[string]any{"id": "soon", "amount": 1, "timestamp": "2026-03-02T11:00:00Z"})
		wantString(t, results(t, body)[0], "reason", "occurred_in_future")
	})
}

func TestIdempotencyKeyRule(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, key := e.tenant(t, "acme")
	e.grant(t, key, "g0", 100)
	mismatches := []struct{ path, body string }{
		{"/v1/grants", `{"grant_id":"g1","amount":1}`},
		{"/v1/reservations", `{"reservation_id":"r1","amount":1}`},
		{"/v1/adjustments", `{"adjustment_id":"a1","amount":1}`},
		{"/v1/subscriptions", `{"subscription_id":"s1","credits_per_period":1}`},
	}
	for _, c := range mismatches {
		t.Run("a_header_unlike_the_body_id_is_a_400"+strings.ReplaceAll(c.path, "/", "_"), func(t *testing.T) {
			e.call(t, "POST", c.path, key, raw(c.body), "Idempotency-Key", "other").problem(t, http.StatusBadRequest, "header.Idempotency-Key")
		})
	}
	t.Run("the_header_alone_is_the_id", func(t *testing.T) {
		body := e.call(t, "POST", "/v1/grants", key, raw(`{"amount":1}`), "Idempotency-Key", "g-key").want(t, http.StatusCreated)
		wantString(t, body, "grant_id", "g-key")
		e.call(t, "POST", "/v1/grants", key, raw(`{"amount":1}`), "Idempotency-Key", "g-key").want(t, http.StatusOK)
		e.call(t, "POST", "/v1/grants", key, raw(`{"amount":2}`), "Idempotency-Key", "g-key").problem(t, http.StatusConflict)
	})
	t.Run("a_header_equal_to_the_body_id_is_accepted", func(t *testing.T) {
		e.call(t, "POST", "/v1/grants", key, raw(`{"grant_id":"same","amount":1}`), "Idempotency-Key", "same").want(t, http.StatusCreated)
	})
	t.Run("a_header_unlike_the_path_id_is_a_400", func(t *testing.T) {
		e.call(t, "POST", "/v1/reservations", key, raw(`{"reservation_id":"r9","amount":1}`)).want(t, http.StatusCreated)
		e.call(t, "POST", "/v1/reservations/r9/release", key, nil, "Idempotency-Key", "other").problem(t, http.StatusBadRequest, "header.Idempotency-Key")
	})
	t.Run("an_id_reused_in_a_batch_is_a_conflict", func(t *testing.T) {
		e.usage(t, key, event("c1", 1))
		body := e.usage(t, key, event("c1", 2))
		wantString(t, results(t, body)[0], "status", "conflict")
	})
}
