package commands

import (
	"context"
	"errors"
	"testing"

	"github.com/creditd/creditd/domain"
)

func TestIdempotency(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tenant := h.tenant()
	h.grant(tenant, "g1", "100", nil)

	first := h.use(tenant, "u1", "10")
	if first.Status != StatusAccepted || first.Duplicate {
		t.Fatalf("first usage: %+v", first)
	}

	t.Run("same_id_twice_appends_once", func(t *testing.T) {
		again := h.use(tenant, "u1", "10")
		if again.Status != StatusDuplicate || !again.Duplicate || again.Position != first.Position {
			t.Fatalf("repeat: %+v, want duplicate at %d", again, first.Position)
		}
		wantDecimal(t, "used", h.line(tenant).Used, "10")
	})

	t.Run("same_id_in_one_batch_counts_once", func(t *testing.T) {
		results, err := h.engine.RecordUsage(context.Background(), tenant, []UsageEvent{usage("u2", "1"), usage("u2", "1")})
		if err != nil {
			t.Fatal(err)
		}
		if results[0].Status != StatusAccepted || results[1].Status != StatusDuplicate || results[0].Position != results[1].Position {
			t.Fatalf("batch: %+v", results)
		}
		wantDecimal(t, "used", h.line(tenant).Used, "11")
	})

	t.Run("same_id_different_body_is_a_conflict", func(t *testing.T) {
		results, err := h.engine.RecordUsage(context.Background(), tenant, []UsageEvent{usage("u1", "11")})
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(results[0].Err, domain.ErrIdempotencyConflict) {
			t.Fatalf("got %+v, want ErrIdempotencyConflict", results[0])
		}
		if _, err := h.engine.Grant(context.Background(), tenant, domain.DefaultCreditType, domain.Grant{GrantID: "g1", Amount: dec("99"), Source: domain.SourcePurchase}); !errors.Is(err, domain.ErrIdempotencyConflict) {
			t.Fatalf("grant with reused id: %v", err)
		}
	})

	t.Run("same_id_on_another_credit_type_is_a_conflict", func(t *testing.T) {
		ev := usage("u1", "10")
		ev.CreditType = "gpu"
		results, err := h.engine.RecordUsage(context.Background(), tenant, []UsageEvent{ev})
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(results[0].Err, domain.ErrIdempotencyConflict) {
			t.Fatalf("got %+v", results[0])
		}
	})

	t.Run("duplicate_grant_returns_the_original_events", func(t *testing.T) {
		res := h.grant(tenant, "g1", "100", nil)
		if !res.Duplicate || len(res.Events) != 1 {
			t.Fatalf("repeat grant: %+v", res)
		}
		if g := res.Events[0].(domain.CreditsGranted); g.GrantID != "g1" || !g.Amount.Equal(dec("100")) {
			t.Fatalf("original event: %+v", g)
		}
	})

	t.Run("ids_are_remembered_after_a_restart", func(t *testing.T) {
		rejected := h.use(tenant, "too-big", "1000")
		if rejected.Status != StatusRejected || rejected.Reason != domain.RejectInsufficientCredits {
			t.Fatalf("over-balance usage: %+v", rejected)
		}
		h.restart()
		again := h.use(tenant, "u1", "10")
		if again.Status != StatusDuplicate || again.Position != first.Position {
			t.Fatalf("after restart: %+v, want duplicate at %d", again, first.Position)
		}
		againRejected := h.use(tenant, "too-big", "1000")
		if againRejected.Status != StatusRejected || !againRejected.Duplicate || againRejected.Reason != domain.RejectInsufficientCredits {
			t.Fatalf("rejected after restart: %+v", againRejected)
		}
		wantDecimal(t, "used", h.line(tenant).Used, "11")
		rejections := 0
		for _, env := range h.events() {
			if _, ok := env.Event.(domain.DebitRejected); ok {
				rejections++
			}
		}
		if rejections != 1 {
			t.Fatalf("DebitRejected events = %d, want 1", rejections)
		}
	})

	t.Run("tenant_creation_is_idempotent_by_request_key", func(t *testing.T) {
		ctx := context.Background()
		a, err := h.engine.CreateTenant(ctx, CreateTenant{Name: "beta", RequestKey: "k1"})
		if err != nil || a.APIKey == "" {
			t.Fatalf("create: %+v %v", a, err)
		}
		b, err := h.engine.CreateTenant(ctx, CreateTenant{Name: "beta", RequestKey: "k1"})
		if err != nil || !b.Duplicate || b.Tenant.ID != a.Tenant.ID || b.APIKey != "" {
			t.Fatalf("repeat: %+v %v", b, err)
		}
		if _, err := h.engine.CreateTenant(ctx, CreateTenant{Name: "gamma", RequestKey: "k1"}); !errors.Is(err, domain.ErrIdempotencyConflict) {
			t.Fatalf("reuse with another name: %v", err)
		}
		if id, ok := h.engine.Authenticate(a.APIKey); !ok || id != a.Tenant.ID {
			t.Fatalf("authenticate: %d %v", id, ok)
		}
	})
}
