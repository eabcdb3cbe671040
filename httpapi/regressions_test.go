package httpapi_test

import (
	"net/http"
	"testing"
)

func TestRegressions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, key := e.tenant(t, "acme")
	e.grant(t, key, "g1", "100")

	t.Run("an_empty_string_amount_is_a_400_not_zero", func(t *testing.T) {
		e.call(t, http.MethodPost, "/v1/reservations", key, map[string]any{"reservation_id": "r0", "amount": 10}).want(t, http.StatusCreated)
		e.call(t, http.MethodPost, "/v1/reservations/r0/capture", key, raw(`{"amount":""}`)).problem(t, http.StatusBadRequest, "body.amount")
		e.call(t, http.MethodPut, "/v1/credit-lines/default", key, raw(`{"overdraft_limit":"  "}`)).problem(t, http.StatusBadRequest, "body.overdraft_limit")
	})

	t.Run("retrying_a_capture_on_another_line_without_credit_type_is_a_duplicate", func(t *testing.T) {
		e.call(t, http.MethodPost, "/v1/grants", key, map[string]any{"grant_id": "gpu-g", "credit_type": "gpu", "amount": 50}).want(t, http.StatusCreated)
		e.call(t, http.MethodPost, "/v1/reservations", key, map[string]any{"reservation_id": "r1", "credit_type": "gpu", "amount": 10}).want(t, http.StatusCreated)
		first := e.call(t, http.MethodPost, "/v1/reservations/r1/capture", key, map[string]any{"amount": 4}).want(t, http.StatusOK)
		again := e.call(t, http.MethodPost, "/v1/reservations/r1/capture", key, map[string]any{"amount": 4}).want(t, http.StatusOK)
		wantString(t, again, "status", "duplicate")
		if uintOf(t, again, "position") != uintOf(t, first, "position") {
			t.Fatalf("duplicate capture at %v, original at %v", again["position"], first["position"])
		}
		e.call(t, http.MethodPost, "/v1/reservations", key, map[string]any{"reservation_id": "r2", "credit_type": "gpu", "amount": 10}).want(t, http.StatusCreated)
		e.call(t, http.MethodPost, "/v1/reservations/r2/release", key, nil).want(t, http.StatusOK)
		wantString(t, e.call(t, http.MethodPost, "/v1/reservations/r2/release", key, nil).want(t, http.StatusOK), "status", "duplicate")
	})

	t.Run("data_after_the_json_value_is_a_400", func(t *testing.T) {
		e.call(t, http.MethodPost, "/v1/grants", key, raw(`{"grant_id":"g3","amount":1}}`)).problem(t, http.StatusBadRequest)
		e.call(t, http.MethodPost, "/v1/grants", key, raw(`{"grant_id":"g3","amount":1}]`)).problem(t, http.StatusBadRequest)
		// Nothing was stored: the id is still free.
		e.call(t, http.MethodPost, "/v1/grants", key, map[string]any{"grant_id": "g3", "amount": 2}).want(t, http.StatusCreated)
	})

	t.Run("credit_types_outside_the_body_are_located_where_they_were_sent", func(t *testing.T) {
		e.call(t, http.MethodPut, "/v1/credit-lines/bad%20type", key, map[string]any{"overdraft_limit": 1}).problem(t, http.StatusBadRequest, "path.credit_type")
		e.call(t, http.MethodPost, "/v1/reservations/x/release?credit_type=bad%20type", key, nil).problem(t, http.StatusBadRequest, "query.credit_type")
	})

	t.Run("a_bad_credit_type_is_listed_with_the_other_bad_fields", func(t *testing.T) {
		e.call(t, http.MethodPost, "/v1/grants", key, map[string]any{"credit_type": "no spaces", "amount": -1}).
			problem(t, http.StatusBadRequest, "body.credit_type", "body.amount")
	})

	t.Run("a_known_route_with_another_method_is_a_405_problem", func(t *testing.T) {
		resp := e.call(t, http.MethodGet, "/v1/grants", key, nil)
		resp.problem(t, http.StatusMethodNotAllowed)
		if resp.Header.Get("Allow") == "" {
			t.Fatal("405 without Allow")
		}
	})
}
