package httpapi_test

import (
	"context"
	"net/http"
	"testing"
)

// TestRefusedBatchStoresNothing: a usage batch refused for one invalid
// event stores none of its valid events, so a following valid batch with
// the same ids is accepted, not answered as duplicates.
func TestRefusedBatchStoresNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenantID, key := e.tenant(t, "acme")
	e.position(t, e.grant(t, key, "g1", 100))

	cases := []struct {
		name     string
		bad      map[string]any
		location string
	}{
		{"an_amount_that_is_not_a_number", map[string]any{"id": "x", "amount": "abc"}, "body.events[1].amount"},
		{"a_negative_amount", map[string]any{"id": "x", "amount": -1}, "body.events[1].amount"},
		{"a_missing_id", map[string]any{"amount": 1}, "body.events[1].id"},
		{"a_bad_timestamp", map[string]any{"id": "x", "amount": 1, "timestamp": "yesterday"}, "body.events[1].timestamp"},
		{"an_unknown_field", map[string]any{"id": "x", "amount": 1, "colour": "red"}, ""},
	}
	for _, c := range cases {
		t.Run("a_batch_refused_for_"+c.name+"_stores_none_of_its_events", func(t *testing.T) {
			before := e.line(t, tenantID, "default")
			first, second := "a-"+c.name, "b-"+c.name
			r := e.call(t, "POST", "/v1/usage", key, map[string]any{"events": []map[string]any{event(first, 1), c.bad, event(second, 2)}})
			if c.location != "" {
				r.problem(t, http.StatusBadRequest, c.location)
			} else {
				r.problem(t, http.StatusBadRequest)
			}
			if after := e.line(t, tenantID, "default"); !after.Used.Equal(before.Used) {
				t.Fatalf("used %s → %s after a refused batch", before.Used, after.Used)
			}

			body := e.usage(t, key, event(first, 1), event(second, 2))
			e.position(t, body)
			wantCounts(t, body, 2, 0, 0)
			for _, res := range results(t, body) {
				wantString(t, res, "status", "accepted")
				if res["duplicate"] != nil {
					t.Errorf("result %v is marked duplicate", res)
				}
			}
			if after := e.line(t, tenantID, "default"); !after.Used.Sub(before.Used).Equal(decimalOf(t, "3")) {
				t.Errorf("used %s → %s, want 3 more", before.Used, after.Used)
			}
		})
	}
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenantA, keyA := e.tenant(t, "alpha")
	tenantB, keyB := e.tenant(t, "beta")
	e.position(t, e.grant(t, keyA, "g1", 100))
	e.position(t, e.call(t, "POST", "/v1/reservations", keyA, map[string]any{"reservation_id": "shared-r", "amount": 30}).want(t, http.StatusCreated))
	e.position(t, e.usage(t, keyA, event("shared-u", 10)))

	lineA := func(t *testing.T) (used, reserved string) {
		t.Helper()
		l, _, err := e.engine.Line(context.Background(), tenantA, "default")
		if err != nil {
			t.Fatal(err)
		}
		return l.Used.String(), l.Reserved.String()
	}

	t.Run("another_tenant_cannot_capture_or_release_the_reservation", func(t *testing.T) {
		for _, action := range []string{"capture", "release"} {
			t.Run(action+"_by_tenant_b_is_a_404", func(t *testing.T) {
				r := e.call(t, "POST", "/v1/reservations/shared-r/"+action, keyB, nil)
				if p := r.problem(t, http.StatusNotFound); p.Type != "urn:creditd:problem:reservation-not-found" {
					t.Errorf("type %q", p.Type)
				}
			})
		}
		if used, reserved := lineA(t); used != "10" || reserved != "30" {
			t.Errorf("tenant A used %s reserved %s, want 10 and 30", used, reserved)
		}
	})

	t.Run("another_tenants_ids_and_usage_are_its_own", func(t *testing.T) {
		// B has no credits: its usage under A's id is its own, and rejected.
		body := e.usage(t, keyB, event("shared-u", 10))
		e.position(t, body)
		wantCounts(t, body, 0, 0, 1)
		wantString(t, results(t, body)[0], "reason", "insufficient_credits")

		// B's grant under A's grant id is no conflict; B's reservation
		// under A's reservation id is a new one.
		e.position(t, e.grant(t, keyB, "g1", 5))
		r := e.call(t, "POST", "/v1/reservations", keyB, map[string]any{"reservation_id": "shared-r", "amount": 5}).want(t, http.StatusCreated)
		e.position(t, r)
		wantString(t, r, "status", "accepted")
		captured := e.call(t, "POST", "/v1/reservations/shared-r/capture", keyB, nil).want(t, http.StatusOK)
		e.position(t, captured)
		wantNumber(t, captured, "captured", "5")

		if used, reserved := lineA(t); used != "10" || reserved != "30" {
			t.Errorf("tenant A used %s reserved %s, want 10 and 30", used, reserved)
		}
		if l := e.line(t, tenantB, "default"); l.Used.String() != "5" || l.Granted.String() != "5" {
			t.Errorf("tenant B used %s granted %s, want 5 and 5", l.Used, l.Granted)
		}

		// A's own repeat of its usage is still a duplicate, and A's
		// reservation still captures.
		again := e.usage(t, keyA, event("shared-u", 10))
		wantCounts(t, again, 0, 1, 0)
		capturedA := e.call(t, "POST", "/v1/reservations/shared-r/capture", keyA, map[string]any{"amount": 30}).want(t, http.StatusOK)
		e.position(t, capturedA)
		wantNumber(t, capturedA, "captured", "30")
		if used, reserved := lineA(t); used != "40" || reserved != "0" {
			t.Errorf("tenant A used %s reserved %s, want 40 and 0", used, reserved)
		}
	})

	t.Run("a_key_only_reaches_its_own_tenant", func(t *testing.T) {
		if id, ok := e.engine.Authenticate(keyB); !ok || id != tenantB {
			t.Errorf("key B authenticates as %d, %v; want %d", id, ok, tenantB)
		}
		e.position(t, e.grant(t, keyB, "g-only-b", 1))
		if l := e.line(t, tenantA, "default"); l.Granted.String() != "100" {
			t.Errorf("tenant A granted %s, want 100", l.Granted)
		}
	})
}
