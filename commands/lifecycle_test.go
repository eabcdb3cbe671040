package commands

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/domain"
)

func TestBurnDownOrderAndExpiry(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tenant := h.tenant()
	now := h.clock.Now()
	soon, later := now.Add(time.Hour), now.Add(48*time.Hour)
	h.grant(tenant, "no-expiry", "10", nil)
	h.grant(tenant, "late-expiry", "10", func(g *domain.Grant) { g.ExpiresAt = &later })
	h.grant(tenant, "soon-expiry", "10", func(g *domain.Grant) { g.ExpiresAt = &soon })
	h.grant(tenant, "high-priority", "5", func(g *domain.Grant) { g.Priority = -1 })
	h.grant(tenant, "future", "100", func(g *domain.Grant) { g.EffectiveAt = now.Add(24 * time.Hour) })

	res := h.use(tenant, "u1", "17")
	burned := res.Events[0].(domain.UsageDebited).Burned
	want := []domain.Burn{{GrantID: "high-priority", Amount: dec("5")}, {GrantID: "soon-expiry", Amount: dec("10")}, {GrantID: "late-expiry", Amount: dec("2")}}
	if len(burned) != len(want) {
		t.Fatalf("burned %+v, want %+v", burned, want)
	}
	for i := range want {
		if burned[i].GrantID != want[i].GrantID || !burned[i].Amount.Equal(want[i].Amount) {
			t.Fatalf("burned %+v, want %+v", burned, want)
		}
	}

	t.Run("grant_not_yet_effective_does_not_pay", func(t *testing.T) {
		// 18 left in effective grants (8 + 10); the future grant's 100 counts
		// in balance but cannot pay yet.
		if r := h.use(tenant, "u-too-much", "19"); r.Status != StatusRejected {
			t.Fatalf("got %+v, want rejected", r)
		}
		wantDecimal(t, "balance", h.line(tenant).Balance(), "118")
	})

	t.Run("sweeper_expires_the_remainder", func(t *testing.T) {
		h.clock.Advance(49 * time.Hour)
		eventually(t, 2*time.Second, func() bool { return h.line(tenant).Expired.Equal(dec("8")) })
		line := h.line(tenant)
		wantDecimal(t, "balance", line.Balance(), "110")
		var expired []string
		for _, env := range h.events() {
			if e, ok := env.Event.(domain.GrantExpired); ok {
				expired = append(expired, fmt.Sprintf("%s=%s", e.GrantID, e.Amount))
			}
		}
		if len(expired) != 1 || expired[0] != "late-expiry=8" {
			t.Fatalf("expired %v, want [late-expiry=8] (soon-expiry was burned whole)", expired)
		}
		// Now the future grant pays.
		r := h.use(tenant, "u-after", "50")
		if r.Status != StatusAccepted {
			t.Fatalf("usage after expiry: %+v", r)
		}
	})
}

func TestReservationLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tenant := h.tenant()
	ctx := context.Background()
	h.grant(tenant, "g1", "100", nil)
	reserve := func(id, amount string, ttl time.Duration) (Result, error) {
		return h.engine.Reserve(ctx, tenant, domain.DefaultCreditType, domain.Reserve{ReservationID: id, Amount: dec(amount), TTL: ttl})
	}

	t.Run("hold_reduces_available_and_refuses_beyond_it", func(t *testing.T) {
		if _, err := reserve("r1", "60", time.Minute); err != nil {
			t.Fatal(err)
		}
		line := h.line(tenant)
		wantDecimal(t, "reserved", line.Reserved, "60")
		wantDecimal(t, "available", line.Available(), "40")
		if _, err := reserve("r2", "41", time.Minute); !errors.Is(err, domain.ErrInsufficientCredits) {
			t.Fatalf("over-reserve: %v", err)
		}
		if r := h.use(tenant, "u1", "41"); r.Status != StatusRejected {
			t.Fatalf("usage beyond available: %+v", r)
		}
	})

	t.Run("partial_capture_releases_the_rest", func(t *testing.T) {
		amount := dec("25")
		res, err := h.engine.Capture(ctx, tenant, domain.DefaultCreditType, domain.Capture{ReservationID: "r1", Amount: &amount})
		if err != nil {
			t.Fatal(err)
		}
		captured := res.Events[0].(domain.ReservationCaptured)
		wantDecimal(t, "released", captured.Released, "35")
		line := h.line(tenant)
		wantDecimal(t, "reserved", line.Reserved, "0")
		wantDecimal(t, "used", line.Used, "25")
		wantDecimal(t, "available", line.Available(), "75")
		again, err := h.engine.Capture(ctx, tenant, domain.DefaultCreditType, domain.Capture{ReservationID: "r1", Amount: &amount})
		if err != nil || !again.Duplicate {
			t.Fatalf("repeat capture: %+v %v", again, err)
		}
		other := dec("1")
		if _, err := h.engine.Capture(ctx, tenant, domain.DefaultCreditType, domain.Capture{ReservationID: "r1", Amount: &other}); !errors.Is(err, domain.ErrReservationClosed) {
			t.Fatalf("capture again with another amount: %v", err)
		}
		if _, err := h.engine.Release(ctx, tenant, domain.DefaultCreditType, "r1"); !errors.Is(err, domain.ErrReservationClosed) {
			t.Fatalf("release after capture: %v", err)
		}
	})

	t.Run("release_returns_the_hold", func(t *testing.T) {
		if _, err := reserve("r3", "10", time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := h.engine.Release(ctx, tenant, domain.DefaultCreditType, "r3"); err != nil {
			t.Fatal(err)
		}
		if again, err := h.engine.Release(ctx, tenant, domain.DefaultCreditType, "r3"); err != nil || !again.Duplicate {
			t.Fatalf("repeat release: %+v %v", again, err)
		}
		wantDecimal(t, "available", h.line(tenant).Available(), "75")
		if _, err := h.engine.Release(ctx, tenant, domain.DefaultCreditType, "nope"); !errors.Is(err, domain.ErrReservationNotFound) {
			t.Fatalf("release unknown: %v", err)
		}
	})

	t.Run("hold_expires_after_its_ttl", func(t *testing.T) {
		if _, err := reserve("r4", "30", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		wantDecimal(t, "available", h.line(tenant).Available(), "45")
		h.clock.Advance(11 * time.Second)
		eventually(t, 2*time.Second, func() bool { return h.line(tenant).Reserved.IsZero() })
		wantDecimal(t, "available", h.line(tenant).Available(), "75")
		if _, err := h.engine.Capture(ctx, tenant, domain.DefaultCreditType, domain.Capture{ReservationID: "r4"}); !errors.Is(err, domain.ErrReservationClosed) {
			t.Fatalf("capture after expiry: %v", err)
		}
		found := false
		for _, env := range h.events() {
			if r, ok := env.Event.(domain.ReservationReleased); ok && r.ReservationID == "r4" && r.Reason == domain.ReleaseExpired {
				found = true
			}
		}
		if !found {
			t.Fatal("no ReservationReleased{expired} for r4 in the log")
		}
	})
}

func TestAutoReloadFiresOncePerCrossing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tenant := h.tenant()
	ctx := context.Background()
	h.grant(tenant, "g1", "100", nil)
	if _, err := h.engine.ConfigureAutoReload(ctx, tenant, domain.DefaultCreditType, domain.ConfigureAutoReload{Enabled: true, Threshold: dec("50"), Amount: dec("30")}); err != nil {
		t.Fatal(err)
	}
	reloads := func() int {
		n := 0
		for _, env := range h.events() {
			if g, ok := env.Event.(domain.CreditsGranted); ok && g.Source == domain.SourceAutoReload {
				n++
			}
		}
		return n
	}
	// 100 → 60: above the threshold, no reload.
	h.use(tenant, "u1", "40")
	if n := reloads(); n != 0 {
		t.Fatalf("reloads = %d before crossing", n)
	}
	// 60 → 45: crosses; reload of 30 → 75.
	h.use(tenant, "u2", "15")
	if n := reloads(); n != 1 {
		t.Fatalf("reloads = %d after first crossing", n)
	}
	wantDecimal(t, "available", h.line(tenant).Available(), "75")
	// 75 → 40: crosses again → 70.
	h.use(tenant, "u3", "35")
	// 70 → 55, above: nothing.
	h.use(tenant, "u4", "15")
	if n := reloads(); n != 2 {
		t.Fatalf("reloads = %d after second crossing", n)
	}
	// Reload too small to climb back: 55 → 5 → reload 30 → 35 (still below);
	// the next debits stay below and must not reload again.
	h.use(tenant, "u5", "50")
	h.use(tenant, "u6", "1")
	h.use(tenant, "u7", "1")
	if n := reloads(); n != 3 {
		t.Fatalf("reloads = %d, want 3 (once per crossing, not per debit)", n)
	}
	wantDecimal(t, "available", h.line(tenant).Available(), "33")
	// Back above with a purchase, then below again: fires again.
	h.grant(tenant, "g2", "20", nil)
	h.use(tenant, "u8", "10")
	if n := reloads(); n != 4 {
		t.Fatalf("reloads = %d after re-arming", n)
	}
	// Repeating a usage that caused a reload reloads nothing.
	h.use(tenant, "u8", "10")
	if n := reloads(); n != 4 {
		t.Fatalf("reloads = %d after a duplicate", n)
	}
}

// Every write the engine acknowledged is in the log and in the state after a
// restart, and the state rebuilt from the log equals the state before it.
func TestRestartKeepsEveryAcknowledgedEvent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const tenants, perTenant = 5, 200
	ids := make([]int64, tenants)
	for i := range ids {
		ids[i] = h.tenant()
		h.grant(ids[i], "g", "1000", nil)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	acknowledged := map[string]bool{}
	for _, tenant := range ids {
		wg.Go(func() {
			for i := 0; i < perTenant; i += 10 {
				var batch []UsageEvent
				for j := i; j < i+10; j++ {
					batch = append(batch, usage(fmt.Sprintf("t%d-u%d", tenant, j), "1.25"))
				}
				results, err := h.engine.RecordUsage(context.Background(), tenant, batch)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for k, r := range results {
					if r.Status == StatusAccepted {
						acknowledged[batch[k].UsageID] = true
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(acknowledged) != tenants*perTenant {
		t.Fatalf("acknowledged %d, want %d", len(acknowledged), tenants*perTenant)
	}
	before := map[int64]*domain.Line{}
	for _, id := range ids {
		before[id] = h.line(id)
	}

	h.restart()

	inLog := map[string]int{}
	for _, env := range h.events() {
		if u, ok := env.Event.(domain.UsageDebited); ok {
			inLog[u.UsageID]++
		}
	}
	for id := range acknowledged {
		if inLog[id] != 1 {
			t.Fatalf("usage %s appears %d times in the log", id, inLog[id])
		}
	}
	for _, id := range ids {
		after := h.line(id)
		wantDecimal(t, "used", after.Used, "250")
		if !after.Balance().Equal(before[id].Balance()) || !after.Used.Equal(before[id].Used) || len(after.Grants) != len(before[id].Grants) {
			t.Fatalf("tenant %d: state after restart differs", id)
		}
	}
}
