package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestUsageBatchIdempotencyKey: on POST /v1/usage the Idempotency-Key
// header keys the whole batch.
func TestUsageBatchIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tenantID, key := e.tenant(t, "acme")
	e.grant(t, key, "g0", 10)
	batch := map[string]any{"events": []map[string]any{event("k1", 4), event("k2", 100)}}
	first := e.call(t, "POST", "/v1/usage", key, batch, "Idempotency-Key", "batch-1").want(t, http.StatusOK)
	wantCounts(t, first, 1, 0, 1)

	t.Run("a_repeated_batch_answers_its_original_result", func(t *testing.T) {
		again := e.call(t, "POST", "/v1/usage", key, batch, "Idempotency-Key", "batch-1").want(t, http.StatusOK)
		wantCounts(t, again, 0, 2, 0)
		was, is := results(t, first), results(t, again)
		wantString(t, is[0], "status", "duplicate")
		wantString(t, is[1], "status", "rejected")
		wantString(t, is[1], "reason", "insufficient_credits")
		for i := range is {
			if is[i]["duplicate"] != true || uintOf(t, is[i], "position") != uintOf(t, was[i], "position") {
				t.Errorf("result %d = %v, want a duplicate at the original position of %v", i, is[i], was[i])
			}
		}
	})
	t.Run("the_same_key_with_another_batch_is_a_409_and_stores_nothing", func(t *testing.T) {
		other := map[string]any{"events": []map[string]any{event("k3", 1)}}
		p := e.call(t, "POST", "/v1/usage", key, other, "Idempotency-Key", "batch-1").problem(t, http.StatusConflict)
		if p.Type != "urn:creditd:problem:idempotency-conflict" {
			t.Errorf("problem type %q", p.Type)
		}
		if used := e.line(t, tenantID, "default").Used.String(); used != "4" {
			t.Errorf("used %s, want 4: the conflicting batch was stored", used)
		}
	})
	t.Run("the_same_events_in_another_order_are_another_batch", func(t *testing.T) {
		swapped := map[string]any{"events": []map[string]any{event("k2", 100), event("k1", 4)}}
		e.call(t, "POST", "/v1/usage", key, swapped, "Idempotency-Key", "batch-1").problem(t, http.StatusConflict)
	})
	t.Run("a_key_that_is_not_a_valid_id_is_a_400", func(t *testing.T) {
		e.call(t, "POST", "/v1/usage", key, batch, "Idempotency-Key", strings.Repeat("k", 300)).problem(t, http.StatusBadRequest, "header.Idempotency-Key")
	})
}
