package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestGrants(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenantID, key := e.tenant(t, "acme")

	first := e.call(t, "POST", "/v1/grants", key, map[string]any{
		"grant_id": "g1", "amount": "100", "source": "promotional", "priority": 2,
		"expires_at": "2026-04-01T00:00:00Z", "cost_per_credit": "0.01", "currency": "USD",
		"description": "welcome", "metadata": map[string]string{"campaign": "spring"},
	}).want(t, http.StatusCreated)
	position := e.position(t, first)

	t.Run("a_grant_answers_201_with_what_was_granted", func(t *testing.T) {
		wantString(t, first, "grant_id", "g1")
		wantString(t, first, "credit_type", "default")
		wantNumber(t, first, "amount", "100")
		wantString(t, first, "source", "promotional")
		wantNumber(t, first, "priority", "2")
		wantString(t, first, "effective_at", "2026-03-01T12:00:00Z")
		wantString(t, first, "expires_at", "2026-04-01T00:00:00Z")
		wantNumber(t, first, "cost_per_credit", "0.01")
		wantString(t, first, "status", "accepted")
		if l := e.line(t, tenantID, "default"); l.Granted.String() != "100" {
			t.Errorf("granted %s, want 100", l.Granted)
		}
	})

	t.Run("repeating_the_same_grant_answers_200_duplicate_with_the_same_position_and_fields", func(t *testing.T) {
		again := e.call(t, "POST", "/v1/grants", key, map[string]any{
			"grant_id": "g1", "amount": 100, "source": "promotional", "priority": 2,
			"expires_at": "2026-04-01T00:00:00Z", "cost_per_credit": 0.01, "currency": "USD",
			"description": "welcome", "metadata": map[string]string{"campaign": "spring"},
		}).want(t, http.StatusOK)
		wantString(t, again, "status", "duplicate")
		if p := uintOf(t, again, "position"); p != position {
			t.Errorf("position %d, want the original %d", p, position)
		}
		for name, want := range first {
			if name == "status" {
				continue
			}
			if got := again[name]; !jsonEqual(got, want) {
				t.Errorf("%s = %v, want %v as first answered", name, got, want)
			}
		}
		if l := e.line(t, tenantID, "default"); l.Granted.String() != "100" {
			t.Errorf("granted %s, want 100 (the repeat appended nothing)", l.Granted)
		}
	})

	t.Run("the_same_grant_id_with_another_amount_is_a_409", func(t *testing.T) {
		r := e.call(t, "POST", "/v1/grants", key, map[string]any{"grant_id": "g1", "amount": "101"})
		if p := r.problem(t, http.StatusConflict); p.Type != "urn:creditd:problem:idempotency-conflict" {
			t.Errorf("type %q", p.Type)
		}
		if l := e.line(t, tenantID, "default"); l.Granted.String() != "100" {
			t.Errorf("granted %s, want 100", l.Granted)
		}
	})

	t.Run("an_idempotency_key_names_a_grant_sent_without_an_id", func(t *testing.T) {
		body := map[string]any{"amount": "5"}
		made := e.call(t, "POST", "/v1/grants", key, body, "Idempotency-Key", "grant-key-1").want(t, http.StatusCreated)
		p := e.position(t, made)
		wantString(t, made, "grant_id", "grant-key-1")
		again := e.call(t, "POST", "/v1/grants", key, body, "Idempotency-Key", "grant-key-1").want(t, http.StatusOK)
		wantString(t, again, "status", "duplicate")
		if uintOf(t, again, "position") != p {
			t.Errorf("position %v, want %d", again["position"], p)
		}
	})

	t.Run("a_grant_on_another_credit_type_lands_on_that_line", func(t *testing.T) {
		made := e.call(t, "POST", "/v1/grants", key, map[string]any{"grant_id": "g-gpu", "credit_type": "gpu", "amount": 7}).want(t, http.StatusCreated)
		e.position(t, made)
		wantString(t, made, "credit_type", "gpu")
		if l := e.line(t, tenantID, "gpu"); l.Granted.String() != "7" {
			t.Errorf("gpu granted %s, want 7", l.Granted)
		}
	})
}

// jsonEqual compares two decoded JSON values.
func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestUsage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenantID, key := e.tenant(t, "acme")
	e.position(t, e.grant(t, key, "g1", 100))

	used := func(t *testing.T, want string) {
		t.Helper()
		if l := e.line(t, tenantID, "default"); l.Used.String() != want {
			t.Errorf("used %s, want %s", l.Used, want)
		}
	}

	var firstPosition uint64
	t.Run("a_batch_answers_counts_and_a_result_per_event", func(t *testing.T) {
		body := e.usage(t, key, event("u1", 10), event("u2", "5.5"))
		firstPosition = e.position(t, body)
		wantCounts(t, body, 2, 0, 0)
		res := results(t, body)
		if len(res) != 2 {
			t.Fatalf("results %v", res)
		}
		for i, id := range []string{"u1", "u2"} {
			wantString(t, res[i], "id", id)
			wantString(t, res[i], "status", "accepted")
			if uintOf(t, res[i], "position") != firstPosition {
				t.Errorf("result %d position %v, want the batch's %d", i, res[i]["position"], firstPosition)
			}
		}
		used(t, "15.5")
	})

	t.Run("a_repeated_event_is_a_duplicate_at_its_original_position", func(t *testing.T) {
		body := e.usage(t, key, event("u1", 10))
		wantCounts(t, body, 0, 1, 0)
		r := results(t, body)[0]
		wantString(t, r, "status", "duplicate")
		if r["duplicate"] != true || uintOf(t, r, "position") != firstPosition {
			t.Errorf("result %v, want duplicate at %d", r, firstPosition)
		}
		used(t, "15.5")
	})

	t.Run("a_duplicate_id_in_one_batch_counts_once", func(t *testing.T) {
		body := e.usage(t, key, event("u3", 1), event("u3", 1))
		p := e.position(t, body)
		wantCounts(t, body, 1, 1, 0)
		res := results(t, body)
		wantString(t, res[0], "status", "accepted")
		wantString(t, res[1], "status", "duplicate")
		if res[1]["duplicate"] != true || uintOf(t, res[1], "position") != p {
			t.Errorf("second result %v, want a duplicate at %d", res[1], p)
		}
		used(t, "16.5")
	})

	t.Run("usage_beyond_the_balance_is_rejected_for_insufficient_credits", func(t *testing.T) {
		body := e.usage(t, key, event("u-big", 1000), event("u4", 1))
		e.position(t, body)
		wantCounts(t, body, 1, 0, 1)
		res := results(t, body)
		wantString(t, res[0], "status", "rejected")
		wantString(t, res[0], "reason", "insufficient_credits")
		wantString(t, res[1], "status", "accepted")
		used(t, "17.5")
	})

	t.Run("the_timestamp_decides_whether_an_event_is_from_the_future", func(t *testing.T) {
		now := e.clock.Now()
		cases := []struct {
			name, id   string
			at         time.Time
			wantStatus string
			wantReason string
		}{
			{"ten_minutes_ahead_is_rejected_as_occurred_in_future", "u-future", now.Add(10 * time.Minute), "rejected", "occurred_in_future"},
			{"four_minutes_ahead_is_within_the_allowed_skew", "u-skew", now.Add(4 * time.Minute), "accepted", ""},
			{"an_hour_ago_is_accepted", "u-past", now.Add(-time.Hour), "accepted", ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ev := event(c.id, 1)
				ev["timestamp"] = c.at.Format(time.RFC3339)
				body := e.usage(t, key, ev)
				e.position(t, body)
				r := results(t, body)[0]
				wantString(t, r, "status", c.wantStatus)
				if got, _ := r["reason"].(string); got != c.wantReason {
					t.Errorf("reason %q, want %q", got, c.wantReason)
				}
			})
		}
		used(t, "19.5")
	})

	// Issue 13: a reused id is reported as a conflict everywhere (409 on a
	// single write), so in a batch it is status "conflict", counted apart
	// from refused debits, no longer "rejected".
	t.Run("an_id_reused_with_another_body_is_a_conflict", func(t *testing.T) {
		body := e.usage(t, key, event("u1", 11), event("u5", 1))
		wantCounts(t, body, 1, 0, 0)
		res := results(t, body)
		wantString(t, res[0], "status", "conflict")
		wantString(t, res[0], "reason", "id_conflict")
		wantString(t, res[1], "status", "accepted")
		e.position(t, body)
		used(t, "20.5")
	})

	t.Run("a_repeat_of_a_rejected_event_keeps_its_rejection", func(t *testing.T) {
		body := e.usage(t, key, event("u-big", 1000))
		wantCounts(t, body, 0, 1, 0)
		r := results(t, body)[0]
		wantString(t, r, "status", "rejected")
		wantString(t, r, "reason", "insufficient_credits")
		if r["duplicate"] != true {
			t.Errorf("result %v, want marked duplicate", r)
		}
	})

	t.Run("a_batch_of_1000_events_is_accepted", func(t *testing.T) {
		events := make([]map[string]any, 1000)
		for i := range events {
			events[i] = event("bulk-"+strconv.Itoa(i), "0.01")
		}
		body := e.usage(t, key, events...)
		e.position(t, body)
		wantCounts(t, body, 1000, 0, 0)
		used(t, "30.5")
	})
}

func TestReservations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenantID, key := e.tenant(t, "acme")
	e.position(t, e.grant(t, key, "g1", 100))

	reserve := func(t *testing.T, body map[string]any) map[string]any {
		t.Helper()
		made := e.call(t, "POST", "/v1/reservations", key, body).want(t, http.StatusCreated)
		e.position(t, made)
		return made
	}

	t.Run("a_reservation_answers_201_and_holds_the_amount", func(t *testing.T) {
		made := reserve(t, map[string]any{"reservation_id": "r1", "amount": 10, "ttl_seconds": 60})
		wantString(t, made, "reservation_id", "r1")
		wantString(t, made, "credit_type", "default")
		wantString(t, made, "state", "held")
		wantNumber(t, made, "amount", "10")
		wantString(t, made, "expires_at", "2026-03-01T12:01:00Z")
		wantString(t, made, "status", "accepted")
		if l := e.line(t, tenantID, "default"); l.Reserved.String() != "10" {
			t.Errorf("reserved %s, want 10", l.Reserved)
		}
	})

	t.Run("reserving_more_than_is_available_is_a_402", func(t *testing.T) {
		r := e.call(t, "POST", "/v1/reservations", key, map[string]any{"reservation_id": "r-big", "amount": 91})
		if p := r.problem(t, http.StatusPaymentRequired); p.Type != "urn:creditd:problem:insufficient-credits" {
			t.Errorf("type %q", p.Type)
		}
	})

	t.Run("a_partial_capture_debits_part_and_releases_the_rest", func(t *testing.T) {
		captured := e.call(t, "POST", "/v1/reservations/r1/capture", key, map[string]any{"amount": "4"}).want(t, http.StatusOK)
		p := e.position(t, captured)
		wantString(t, captured, "state", "captured")
		wantNumber(t, captured, "amount", "10")
		wantNumber(t, captured, "captured", "4")
		wantNumber(t, captured, "released", "6")
		wantString(t, captured, "status", "accepted")
		l := e.line(t, tenantID, "default")
		if l.Used.String() != "4" || !l.Reserved.IsZero() {
			t.Errorf("used %s reserved %s, want 4 and 0", l.Used, l.Reserved)
		}

		again := e.call(t, "POST", "/v1/reservations/r1/capture", key, map[string]any{"amount": "4"}).want(t, http.StatusOK)
		wantString(t, again, "status", "duplicate")
		wantNumber(t, again, "captured", "4")
		if uintOf(t, again, "position") != p {
			t.Errorf("repeat position %v, want %d", again["position"], p)
		}
	})

	t.Run("a_capture_without_a_body_takes_the_whole_hold", func(t *testing.T) {
		reserve(t, map[string]any{"reservation_id": "r-all", "amount": 3})
		captured := e.call(t, "POST", "/v1/reservations/r-all/capture", key, nil).want(t, http.StatusOK)
		e.position(t, captured)
		wantNumber(t, captured, "captured", "3")
		wantNumber(t, captured, "released", "0")
	})

	t.Run("a_release_gives_the_hold_back", func(t *testing.T) {
		reserve(t, map[string]any{"reservation_id": "r2", "amount": 20})
		released := e.call(t, "POST", "/v1/reservations/r2/release", key, nil).want(t, http.StatusOK)
		e.position(t, released)
		wantString(t, released, "state", "released")
		wantNumber(t, released, "released", "20")
		if l := e.line(t, tenantID, "default"); !l.Reserved.IsZero() || l.Used.String() != "7" {
			t.Errorf("reserved %s used %s, want 0 and 7", l.Reserved, l.Used)
		}
	})

	t.Run("capturing_a_released_reservation_is_a_409", func(t *testing.T) {
		r := e.call(t, "POST", "/v1/reservations/r2/capture", key, map[string]any{"amount": 1})
		if p := r.problem(t, http.StatusConflict); p.Type != "urn:creditd:problem:reservation-closed" {
			t.Errorf("type %q", p.Type)
		}
	})

	t.Run("releasing_a_captured_reservation_is_a_409", func(t *testing.T) {
		r := e.call(t, "POST", "/v1/reservations/r1/release", key, nil)
		if p := r.problem(t, http.StatusConflict); p.Type != "urn:creditd:problem:reservation-closed" {
			t.Errorf("type %q", p.Type)
		}
	})

	t.Run("capturing_more_than_is_held_is_a_409", func(t *testing.T) {
		reserve(t, map[string]any{"reservation_id": "r3", "amount": 2})
		r := e.call(t, "POST", "/v1/reservations/r3/capture", key, map[string]any{"amount": 3})
		if p := r.problem(t, http.StatusConflict); p.Type != "urn:creditd:problem:capture-exceeds-hold" {
			t.Errorf("type %q", p.Type)
		}
	})

	t.Run("an_unknown_reservation_is_a_404", func(t *testing.T) {
		for _, action := range []string{"capture", "release"} {
			t.Run(action+"_of_an_unknown_reservation_is_a_404", func(t *testing.T) {
				r := e.call(t, "POST", "/v1/reservations/r-nope/"+action, key, nil)
				if p := r.problem(t, http.StatusNotFound); p.Type != "urn:creditd:problem:reservation-not-found" {
					t.Errorf("type %q", p.Type)
				}
			})
		}
	})

	t.Run("a_reservation_on_another_credit_type_is_captured_without_naming_it", func(t *testing.T) {
		e.position(t, e.call(t, "POST", "/v1/grants", key, map[string]any{"grant_id": "g-gpu", "credit_type": "gpu", "amount": 50}).want(t, http.StatusCreated))
		made := reserve(t, map[string]any{"reservation_id": "r-gpu", "credit_type": "gpu", "amount": 20})
		wantString(t, made, "credit_type", "gpu")
		before := e.line(t, tenantID, "default")

		captured := e.call(t, "POST", "/v1/reservations/r-gpu/capture", key, map[string]any{"amount": 5}).want(t, http.StatusOK)
		e.position(t, captured)
		wantNumber(t, captured, "captured", "5")
		wantNumber(t, captured, "released", "15")
		gpu := e.line(t, tenantID, "gpu")
		if gpu.Used.String() != "5" || !gpu.Reserved.IsZero() {
			t.Errorf("gpu used %s reserved %s, want 5 and 0", gpu.Used, gpu.Reserved)
		}
		if after := e.line(t, tenantID, "default"); !after.Used.Equal(before.Used) || !after.Reserved.Equal(before.Reserved) {
			t.Errorf("default line moved: used %s→%s reserved %s→%s", before.Used, after.Used, before.Reserved, after.Reserved)
		}
	})

	t.Run("a_reservation_on_another_credit_type_is_released_without_naming_it", func(t *testing.T) {
		reserve(t, map[string]any{"reservation_id": "r-gpu-2", "credit_type": "gpu", "amount": 8})
		released := e.call(t, "POST", "/v1/reservations/r-gpu-2/release", key, nil).want(t, http.StatusOK)
		e.position(t, released)
		wantNumber(t, released, "released", "8")
		if gpu := e.line(t, tenantID, "gpu"); !gpu.Reserved.IsZero() {
			t.Errorf("gpu reserved %s, want 0", gpu.Reserved)
		}
	})
}

func TestAdjustments(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenantID, key := e.tenant(t, "acme")
	e.position(t, e.grant(t, key, "g1", 100))

	t.Run("a_negative_adjustment_with_a_reason_is_applied", func(t *testing.T) {
		made := e.call(t, "POST", "/v1/adjustments", key, map[string]any{
			"adjustment_id": "adj1", "amount": "-5", "reason": "refund clawback", "reference": "TICKET-1",
		}).want(t, http.StatusCreated)
		p := e.position(t, made)
		wantString(t, made, "adjustment_id", "adj1")
		wantString(t, made, "credit_type", "default")
		wantNumber(t, made, "amount", "-5")
		wantString(t, made, "reason", "refund clawback")
		wantString(t, made, "status", "accepted")
		l := e.line(t, tenantID, "default")
		if l.Adjusted.String() != "-5" || l.Balance().String() != "95" {
			t.Errorf("adjusted %s balance %s, want -5 and 95", l.Adjusted, l.Balance())
		}

		again := e.call(t, "POST", "/v1/adjustments", key, map[string]any{
			"adjustment_id": "adj1", "amount": -5, "reason": "refund clawback", "reference": "TICKET-1",
		}).want(t, http.StatusOK)
		wantString(t, again, "status", "duplicate")
		if uintOf(t, again, "position") != p {
			t.Errorf("repeat position %v, want %d", again["position"], p)
		}
	})

	t.Run("invalid_adjustments_are_a_400_naming_the_field", func(t *testing.T) {
		cases := []struct {
			name     string
			body     map[string]any
			location string
		}{
			{"a_missing_reason", map[string]any{"adjustment_id": "adj2", "amount": -1}, "body.reason"},
			{"a_zero_amount", map[string]any{"adjustment_id": "adj3", "amount": 0, "reason": "x"}, "body.amount"},
			{"a_missing_amount", map[string]any{"adjustment_id": "adj4", "reason": "x"}, "body.amount"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e.call(t, "POST", "/v1/adjustments", key, c.body).problem(t, http.StatusBadRequest, c.location)
			})
		}
		if l := e.line(t, tenantID, "default"); l.Adjusted.String() != "-5" {
			t.Errorf("adjusted %s, want -5", l.Adjusted)
		}
	})
}

func TestSettings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenantID, key := e.tenant(t, "acme")
	e.position(t, e.grant(t, key, "g1", 20))

	t.Run("auto_reload_set_by_put_reloads_when_usage_crosses_the_threshold", func(t *testing.T) {
		set := e.call(t, "PUT", "/v1/auto-reload", key, map[string]any{"enabled": true, "threshold": "10", "amount": 50}).want(t, http.StatusOK)
		p := e.position(t, set)
		wantString(t, set, "credit_type", "default")
		if set["enabled"] != true {
			t.Errorf("enabled = %v", set["enabled"])
		}
		wantNumber(t, set, "threshold", "10")
		wantNumber(t, set, "amount", "50")

		// Setting what is set appends nothing; the answer is still current.
		again := e.call(t, "PUT", "/v1/auto-reload", key, map[string]any{"enabled": true, "threshold": 10, "amount": "50"}).want(t, http.StatusOK)
		if uintOf(t, again, "position") < p {
			t.Errorf("repeat position %v, want ≥ %d", again["position"], p)
		}

		e.position(t, e.usage(t, key, event("u1", 15)))
		if l := e.line(t, tenantID, "default"); l.Granted.String() != "70" || l.Balance().String() != "55" {
			t.Errorf("granted %s balance %s, want 70 and 55 after the reload", l.Granted, l.Balance())
		}
	})

	t.Run("enabling_auto_reload_without_its_amounts_is_a_400_naming_both", func(t *testing.T) {
		e.call(t, "PUT", "/v1/auto-reload", key, map[string]any{"enabled": true}).problem(t, http.StatusBadRequest, "body.threshold", "body.amount")
	})

	t.Run("an_overdraft_limit_lets_usage_beyond_the_balance_through", func(t *testing.T) {
		e.position(t, e.call(t, "PUT", "/v1/auto-reload", key, map[string]any{"enabled": false}).want(t, http.StatusOK))
		balance := e.line(t, tenantID, "default").Balance()
		over := balance.Add(balance).String() // twice the balance

		body := e.usage(t, key, event("u-over-1", over))
		e.position(t, body)
		wantString(t, results(t, body)[0], "reason", "insufficient_credits")

		set := e.call(t, "PUT", "/v1/credit-lines/default", key, map[string]any{"overdraft_limit": balance.String()}).want(t, http.StatusOK)
		e.position(t, set)
		wantString(t, set, "credit_type", "default")
		wantNumber(t, set, "overdraft_limit", balance.String())

		body = e.usage(t, key, event("u-over-2", over))
		e.position(t, body)
		wantCounts(t, body, 1, 0, 0)
		l := e.line(t, tenantID, "default")
		if !l.Balance().Equal(balance.Neg()) {
			t.Errorf("balance %s, want %s", l.Balance(), balance.Neg())
		}
	})

	t.Run("a_credit_line_without_an_overdraft_limit_is_a_400", func(t *testing.T) {
		e.call(t, "PUT", "/v1/credit-lines/default", key, map[string]any{}).problem(t, http.StatusBadRequest, "body.overdraft_limit")
	})
}
