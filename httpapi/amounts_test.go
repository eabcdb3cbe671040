package httpapi_test

import (
	"bytes"
	"net/http"
	"testing"
)

func TestAmounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenantID, key := e.tenant(t, "acme")

	t.Run("a_json_number_and_a_decimal_string_are_both_accepted", func(t *testing.T) {
		cases := []struct {
			name, body, want string
		}{
			{"json_number", `{"grant_id":"num","amount":12.5}`, `"amount":12.5`},
			{"decimal_string", `{"grant_id":"str","amount":"12.5"}`, `"amount":12.5`},
			{"string_with_spaces", `{"grant_id":"spaced","amount":" 12.5 "}`, `"amount":12.5`},
			{"exponent_number", `{"grant_id":"exp","amount":1.25e1}`, `"amount":12.5`},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := e.call(t, "POST", "/v1/grants", key, raw(c.body))
				e.position(t, r.want(t, http.StatusCreated))
				if !bytes.Contains(r.Body, []byte(c.want)) {
					t.Errorf("body %s does not contain %s", r.Body, c.want)
				}
			})
		}
		if l := e.line(t, tenantID, "default"); l.Granted.String() != "50" {
			t.Errorf("granted %s, want 50", l.Granted)
		}
	})

	t.Run("output_amounts_are_json_numbers_with_the_exact_decimal_text", func(t *testing.T) {
		cases := []struct {
			name, path, body, want string
		}{
			{"a_micro_credit_grant", "/v1/grants", `{"grant_id":"micro","amount":"0.000001"}`, `"amount":0.000001`},
			{"a_grant_with_a_trailing_zero", "/v1/grants", `{"grant_id":"trailing","amount":"100.50"}`, `"amount":100.5`},
			{"a_large_grant", "/v1/grants", `{"grant_id":"large","credit_type":"large","amount":"999999999999.999999"}`, `"amount":999999999999.999999`},
			{"a_micro_credit_reservation", "/v1/reservations", `{"reservation_id":"r-micro","amount":"0.000001"}`, `"amount":0.000001`},
			{"a_negative_micro_adjustment", "/v1/adjustments", `{"adjustment_id":"adj-micro","amount":"-0.000001","reason":"rounding"}`, `"amount":-0.000001`},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := e.call(t, "POST", c.path, key, raw(c.body))
				e.position(t, r.want(t, http.StatusCreated))
				if !bytes.Contains(r.Body, []byte(c.want)) {
					t.Errorf("body %s does not contain %s", r.Body, c.want)
				}
			})
		}
		r := e.call(t, "POST", "/v1/reservations/r-micro/capture", key, raw(`{"amount":"0.0000010"}`))
		e.position(t, r.want(t, http.StatusOK))
		if !bytes.Contains(r.Body, []byte(`"captured":0.000001`)) || !bytes.Contains(r.Body, []byte(`"released":0`)) {
			t.Errorf("capture body %s", r.Body)
		}
	})

	granted := e.line(t, tenantID, "default").Granted

	t.Run("malformed_or_out_of_range_amounts_are_a_400_at_body_amount", func(t *testing.T) {
		cases := []struct {
			name, amount string
		}{
			{"seven_decimal_places", `"0.1234567"`},
			{"seven_decimal_places_as_a_number", `0.1234567`},
			{"ten_to_the_twelve", `1e12`},
			{"ten_to_the_twelve_as_a_string", `"1000000000000"`},
			{"not_a_number", `"abc"`},
			{"negative", `"-5"`},
			{"zero", `0`},
			{"a_boolean", `true`},
			{"an_object", `{}`},
			{"null", `null`},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := e.call(t, "POST", "/v1/grants", key, raw(`{"grant_id":"bad-`+c.name+`","amount":`+c.amount+`}`))
				p := r.problem(t, http.StatusBadRequest, "body.amount")
				if p.Type != "urn:creditd:problem:invalid-request" {
					t.Errorf("type %q", p.Type)
				}
			})
		}
		t.Run("a_missing_amount", func(t *testing.T) {
			e.call(t, "POST", "/v1/grants", key, raw(`{"grant_id":"bad-missing"}`)).problem(t, http.StatusBadRequest, "body.amount")
		})
		if l := e.line(t, tenantID, "default"); !l.Granted.Equal(granted) {
			t.Errorf("granted %s, want %s: a refused grant was stored", l.Granted, granted)
		}
	})

	t.Run("bad_amounts_are_located_on_every_write", func(t *testing.T) {
		cases := []struct {
			name, method, path, body, location string
		}{
			{"usage_with_seven_places", "POST", "/v1/usage", `{"events":[{"id":"u1","amount":"0.0000001"}]}`, "body.events[0].amount"},
			{"usage_with_text", "POST", "/v1/usage", `{"events":[{"id":"u1","amount":"abc"}]}`, "body.events[0].amount"},
			{"usage_negative", "POST", "/v1/usage", `{"events":[{"id":"u1","amount":-1}]}`, "body.events[0].amount"},
			{"usage_quantity_with_text", "POST", "/v1/usage", `{"events":[{"id":"u1","amount":1,"quantity":"many"}]}`, "body.events[0].quantity"},
			{"reservation_with_text", "POST", "/v1/reservations", `{"reservation_id":"r1","amount":"abc"}`, "body.amount"},
			{"reservation_too_large", "POST", "/v1/reservations", `{"reservation_id":"r1","amount":1e12}`, "body.amount"},
			{"capture_with_text", "POST", "/v1/reservations/r1/capture", `{"amount":"abc"}`, "body.amount"},
			{"adjustment_with_seven_places", "POST", "/v1/adjustments", `{"adjustment_id":"a1","amount":"1.0000001","reason":"x"}`, "body.amount"},
			{"cost_per_credit_with_text", "POST", "/v1/grants", `{"grant_id":"g1","amount":1,"cost_per_credit":"cheap"}`, "body.cost_per_credit"},
			{"auto_reload_threshold_with_text", "PUT", "/v1/auto-reload", `{"enabled":true,"threshold":"low","amount":1}`, "body.threshold"},
			{"overdraft_limit_negative", "PUT", "/v1/credit-lines/default", `{"overdraft_limit":"-1"}`, "body.overdraft_limit"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e.call(t, c.method, c.path, key, raw(c.body)).problem(t, http.StatusBadRequest, c.location)
			})
		}
	})
}
