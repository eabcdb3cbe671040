package commands

import (
	"context"
	"errors"
	"testing"

	"github.com/creditd/creditd/domain"
)

// TestUsageBatchKey: a batch key binds a whole batch for the life of the
// data, so it must survive a rebuild of the write model from the log.
func TestUsageBatchKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tenant := h.tenant()
	h.grant(tenant, "g1", "10", nil)
	ctx := context.Background()
	batch := []UsageEvent{usage("b-u1", "4"), usage("b-u2", "100")}
	first, err := h.engine.RecordUsageBatch(ctx, tenant, "batch-1", batch)
	if err != nil {
		t.Fatal(err)
	}
	if first[0].Status != StatusAccepted || first[1].Status != StatusRejected {
		t.Fatalf("first: %+v", first)
	}

	t.Run("a_repeated_batch_answers_each_original_status_as_a_duplicate", func(t *testing.T) {
		again, err := h.engine.RecordUsageBatch(ctx, tenant, "batch-1", batch)
		if err != nil {
			t.Fatal(err)
		}
		if len(again) != 2 || again[0].Status != StatusDuplicate || !again[1].Duplicate || again[1].Status != StatusRejected ||
			again[0].Position != first[0].Position || again[1].Position != first[1].Position {
			t.Fatalf("repeat: %+v, want duplicates of %+v", again, first)
		}
	})
	t.Run("the_same_key_with_another_batch_is_a_conflict_and_stores_nothing", func(t *testing.T) {
		_, err := h.engine.RecordUsageBatch(ctx, tenant, "batch-1", []UsageEvent{usage("b-u3", "1")})
		if !errors.Is(err, domain.ErrIdempotencyConflict) {
			t.Fatalf("err %v, want ErrIdempotencyConflict", err)
		}
		wantDecimal(t, "used", h.line(tenant).Used, "4")
	})
	t.Run("the_key_survives_a_rebuild_from_the_log", func(t *testing.T) {
		h.restart()
		if _, err := h.engine.RecordUsageBatch(ctx, tenant, "batch-1", []UsageEvent{usage("b-u1", "4")}); !errors.Is(err, domain.ErrIdempotencyConflict) {
			t.Fatalf("after restart: err %v, want ErrIdempotencyConflict", err)
		}
		again, err := h.engine.RecordUsageBatch(ctx, tenant, "batch-1", batch)
		if err != nil || again[0].Position != first[0].Position || again[1].Status != StatusRejected {
			t.Fatalf("repeat after restart: %+v %v", again, err)
		}
		wantDecimal(t, "used", h.line(tenant).Used, "4")
	})
	t.Run("a_batch_whose_events_were_all_seen_still_binds_its_key", func(t *testing.T) {
		if _, err := h.engine.RecordUsageBatch(ctx, tenant, "batch-2", batch); err != nil {
			t.Fatal(err)
		}
		if _, err := h.engine.RecordUsageBatch(ctx, tenant, "batch-2", []UsageEvent{usage("b-u9", "1")}); !errors.Is(err, domain.ErrIdempotencyConflict) {
			t.Fatalf("err %v, want ErrIdempotencyConflict", err)
		}
	})
}
