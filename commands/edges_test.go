package commands

// Regression tests for issue 12, one per numbered failure, against the rules
// of domain/README.md. Each drives the real Engine on a real embedded
// JetStream with a fake clock and decides at an instant the sweeper has not
// reached: the answer must not depend on whether it ran. Where the failure
// shows only after a sweep (items 3 and 10), a second test lets the sweeper
// run at the due instant first.

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/internal/testnats"
)

// newHarnessNoSweep is a harness whose sweeper does not run during a test
// (an hour is far beyond any test's duration), so only the writes decide
// what is due.
func newHarnessNoSweep(t testing.TB) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), clock: newFakeClock()}
	h.server = testnats.Start(t, h.dir)
	e, err := New(context.Background(), h.server.Store, Options{Clock: h.clock.Now, CheckInvariants: true, SweepInterval: time.Hour})
	if err != nil {
		t.Fatalf("new engine: %v", err)
	}
	t.Cleanup(e.Close)
	h.engine = e
	return h
}

// edgeAdvanceTo moves the clock to at, which must not be in its past.
func edgeAdvanceTo(t testing.TB, h *harness, at time.Time) {
	t.Helper()
	d := at.Sub(h.clock.Now())
	if d < 0 {
		t.Fatalf("clock is at %s, past %s", h.clock.Now(), at)
	}
	h.clock.Advance(d)
}

// The helpers below fail the test they are given, so subtests may use them.

func edgeGrant(t testing.TB, h *harness, tenantID int64, creditType, id, amount string, mod func(*domain.Grant)) Result {
	t.Helper()
	g := domain.Grant{GrantID: id, Amount: dec(amount), Source: domain.SourcePurchase}
	if mod != nil {
		mod(&g)
	}
	res, err := h.engine.Grant(context.Background(), tenantID, creditType, g)
	if err != nil {
		t.Fatalf("grant %s: %v", id, err)
	}
	return res
}

func edgeUse(t testing.TB, h *harness, tenantID int64, id, amount string) Result {
	t.Helper()
	results, err := h.engine.RecordUsage(context.Background(), tenantID, []UsageEvent{usage(id, amount)})
	if err != nil {
		t.Fatalf("usage %s: %v", id, err)
	}
	return results[0]
}

func edgeReserve(h *harness, tenantID int64, creditType, id, amount string, ttl time.Duration) (Result, error) {
	return h.engine.Reserve(context.Background(), tenantID, creditType, domain.Reserve{ReservationID: id, Amount: dec(amount), TTL: ttl})
}

func edgeAutoReload(t testing.TB, h *harness, tenantID int64, threshold, amount string) {
	t.Helper()
	c := domain.ConfigureAutoReload{Enabled: true, Threshold: dec(threshold), Amount: dec(amount)}
	if _, err := h.engine.ConfigureAutoReload(context.Background(), tenantID, domain.DefaultCreditType, c); err != nil {
		t.Fatalf("configure auto-reload: %v", err)
	}
}

func edgeLine(t testing.TB, h *harness, tenantID int64, creditType string) *domain.Line {
	t.Helper()
	l, _, err := h.engine.Line(context.Background(), tenantID, creditType)
	if err != nil {
		t.Fatalf("line: %v", err)
	}
	return l
}

// edgeTotals are a line's quantities as decimal strings; an empty one is not
// checked.
type edgeTotals struct {
	granted, used, expired, adjusted, reserved, balance, available string
}

func edgeWant(t testing.TB, l *domain.Line, want edgeTotals) {
	t.Helper()
	for _, q := range []struct {
		name string
		got  decimal.Decimal
		want string
	}{
		{"granted", l.Granted, want.granted}, {"used", l.Used, want.used}, {"expired", l.Expired, want.expired},
		{"adjusted", l.Adjusted, want.adjusted}, {"reserved", l.Reserved, want.reserved},
		{"balance", l.Balance(), want.balance}, {"available", l.Available(), want.available},
	} {
		if q.want != "" && !q.got.Equal(dec(q.want)) {
			t.Errorf("%s = %s, want %s", q.name, q.got, q.want)
		}
	}
}

// edgeReloads lists the auto-reload grants in the log for a tenant's line.
func edgeReloads(t testing.TB, h *harness, tenantID int64) []string {
	t.Helper()
	var ids []string
	for _, env := range h.events() {
		if g, ok := env.Event.(domain.CreditsGranted); ok && env.TenantID == tenantID && g.Source == domain.SourceAutoReload {
			ids = append(ids, g.GrantID)
		}
	}
	return ids
}

func edgeWantReloads(t testing.TB, h *harness, tenantID int64, want ...string) {
	t.Helper()
	if got := edgeReloads(t, h, tenantID); !slices.Equal(got, want) {
		t.Errorf("auto-reload grants %v, want %v", got, want)
	}
}

// Rule: an armed auto-reload fires before a debit or reservation that would
// otherwise be refused; the operation is then decided against the reloaded line.
func TestEdge01AutoReloadFiresOnEmptyLine(t *testing.T) {
	t.Parallel()
	h := newHarnessNoSweep(t)

	t.Run("usage_after_the_only_grant_expired_unswept", func(t *testing.T) {
		tenant := h.tenant()
		expires := h.clock.Now().Add(time.Hour)
		edgeGrant(t, h, tenant, domain.DefaultCreditType, "g", "100", func(g *domain.Grant) { g.ExpiresAt = &expires })
		edgeAutoReload(t, h, tenant, "10", "50") // armed: the line is full
		edgeAdvanceTo(t, h, expires.Add(time.Microsecond))
		if r := edgeUse(t, h, tenant, "u1", "5"); r.Status != StatusAccepted {
			t.Fatalf("usage of 5 on a line whose grant expired: %+v, want accepted after the reload", r)
		}
		edgeWantReloads(t, h, tenant, "auto_reload:usage:u1")
		edgeWant(t, edgeLine(t, h, tenant, domain.DefaultCreditType), edgeTotals{granted: "150", used: "5", expired: "100", balance: "45", available: "45"})
	})

	t.Run("reservation_after_a_void_took_the_line_to_zero", func(t *testing.T) {
		tenant := h.tenant()
		edgeGrant(t, h, tenant, domain.DefaultCreditType, "g", "100", nil)
		edgeAutoReload(t, h, tenant, "10", "50")
		if _, err := h.engine.VoidGrant(context.Background(), tenant, domain.DefaultCreditType, domain.VoidGrant{GrantID: "g", Reason: "refund"}); err != nil {
			t.Fatal(err)
		}
		if _, err := edgeReserve(h, tenant, domain.DefaultCreditType, "r1", "5", time.Minute); err != nil {
			t.Fatalf("reservation of 5 on a voided line: %v, want accepted after the reload", err)
		}
		edgeWantReloads(t, h, tenant, "auto_reload:reservation:r1")
		edgeWant(t, edgeLine(t, h, tenant, domain.DefaultCreditType), edgeTotals{granted: "150", adjusted: "-100", reserved: "5", balance: "50", available: "45"})
	})

	t.Run("reservation_after_a_negative_adjustment_took_the_line_to_zero", func(t *testing.T) {
		tenant := h.tenant()
		edgeGrant(t, h, tenant, domain.DefaultCreditType, "g", "100", nil)
		edgeAutoReload(t, h, tenant, "10", "50")
		if _, err := h.engine.Adjust(context.Background(), tenant, domain.DefaultCreditType, domain.Adjust{AdjustmentID: "a1", Amount: dec("-100"), Reason: "correction"}); err != nil {
			t.Fatal(err)
		}
		if _, err := edgeReserve(h, tenant, domain.DefaultCreditType, "r1", "5", time.Minute); err != nil {
			t.Fatalf("reservation of 5 on a line adjusted to 0: %v, want accepted after the reload", err)
		}
		edgeWantReloads(t, h, tenant, "auto_reload:reservation:r1")
		edgeWant(t, edgeLine(t, h, tenant, domain.DefaultCreditType), edgeTotals{granted: "150", adjusted: "-100", reserved: "5", balance: "50", available: "45"})
	})
}

// Rule: only the engine writes source auto_reload: a client grant with source
// "auto_reload" is refused, 400 naming body.source.
func TestEdge02ClientGrantCannotUseTheAutoReloadSource(t *testing.T) {
	t.Parallel()
	h := newHarnessNoSweep(t)
	tenant := h.tenant()
	_, err := h.engine.Grant(context.Background(), tenant, domain.DefaultCreditType,
		domain.Grant{GrantID: "g", Amount: dec("10"), Source: domain.SourceAutoReload})
	var fe *domain.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("client grant with source auto_reload: %v, want a *domain.FieldError", err)
	}
	located := false
	for _, f := range domain.FieldErrors(err) {
		located = located || f.Location == "source"
	}
	if !located {
		t.Errorf("field errors %v do not name source", err)
	}
	edgeWant(t, edgeLine(t, h, tenant, domain.DefaultCreditType), edgeTotals{granted: "0"})
}

// Rule: a hold pins the credits it holds; a pinned part neither expires nor is
// voided while held, and what it later releases from an expired or voided
// grant goes at once. available never goes below −overdraft.
func TestEdge03HeldCreditsNeitherExpireNorAreChargedTwice(t *testing.T) {
	t.Parallel()
	h := newHarnessNoSweep(t)

	// Each case: grant 100 expiring in 10 minutes, hold 80 for an hour.
	setup := func(t *testing.T) (int64, time.Time) {
		tenant := h.tenant()
		expires := h.clock.Now().Add(10 * time.Minute)
		edgeGrant(t, h, tenant, domain.DefaultCreditType, "g", "100", func(g *domain.Grant) { g.ExpiresAt = &expires })
		if _, err := edgeReserve(h, tenant, domain.DefaultCreditType, "r", "80", time.Hour); err != nil {
			t.Fatal(err)
		}
		return tenant, expires
	}

	t.Run("capture_after_expiry_spends_the_pinned_credits", func(t *testing.T) {
		tenant, expires := setup(t)
		edgeAdvanceTo(t, h, expires)
		// A write at the expiry instant applies what is due then.
		if r := edgeUse(t, h, tenant, "tick", "0"); r.Status != StatusAccepted {
			t.Fatalf("zero usage: %+v", r)
		}
		h.clock.Advance(time.Minute)
		if _, err := h.engine.Capture(context.Background(), tenant, domain.DefaultCreditType, domain.Capture{ReservationID: "r"}); err != nil {
			t.Fatalf("capture: %v", err)
		}
		edgeWant(t, edgeLine(t, h, tenant, domain.DefaultCreditType), edgeTotals{used: "80", expired: "20", reserved: "0", balance: "0", available: "0"})
	})

	t.Run("release_after_expiry_expires_the_released_credits", func(t *testing.T) {
		tenant, expires := setup(t)
		edgeAdvanceTo(t, h, expires.Add(time.Microsecond))
		if _, err := h.engine.Release(context.Background(), tenant, domain.DefaultCreditType, "r"); err != nil {
			t.Fatalf("release: %v", err)
		}
		edgeWant(t, edgeLine(t, h, tenant, domain.DefaultCreditType), edgeTotals{used: "0", expired: "100", reserved: "0", balance: "0", available: "0"})
	})

	t.Run("partial_capture_after_expiry_expires_the_rest", func(t *testing.T) {
		tenant, expires := setup(t)
		edgeAdvanceTo(t, h, expires.Add(time.Microsecond))
		amount := dec("50")
		if _, err := h.engine.Capture(context.Background(), tenant, domain.DefaultCreditType, domain.Capture{ReservationID: "r", Amount: &amount}); err != nil {
			t.Fatalf("capture: %v", err)
		}
		edgeWant(t, edgeLine(t, h, tenant, domain.DefaultCreditType), edgeTotals{used: "50", expired: "50", reserved: "0", balance: "0", available: "0"})
	})

	t.Run("void_while_held_voids_only_the_unpinned_part", func(t *testing.T) {
		tenant := h.tenant()
		edgeGrant(t, h, tenant, domain.DefaultCreditType, "g", "100", nil)
		if _, err := edgeReserve(h, tenant, domain.DefaultCreditType, "r", "80", time.Hour); err != nil {
			t.Fatal(err)
		}
		res, err := h.engine.VoidGrant(context.Background(), tenant, domain.DefaultCreditType, domain.VoidGrant{GrantID: "g", Reason: "refund"})
		if err != nil {
			t.Fatalf("void: %v", err)
		}
		for _, e := range res.Events {
			if v, ok := e.(domain.GrantVoided); ok && !v.Amount.Equal(dec("20")) {
				t.Errorf("voided %s, want 20 (80 are held)", v.Amount)
			}
		}
		edgeWant(t, edgeLine(t, h, tenant, domain.DefaultCreditType), edgeTotals{adjusted: "-20", reserved: "80", balance: "80", available: "0"})
		if _, err := h.engine.Capture(context.Background(), tenant, domain.DefaultCreditType, domain.Capture{ReservationID: "r"}); err != nil {
			t.Fatalf("capture after the void: %v", err)
		}
		edgeWant(t, edgeLine(t, h, tenant, domain.DefaultCreditType), edgeTotals{used: "80", adjusted: "-20", reserved: "0", balance: "0", available: "0"})
	})
}

// Rule: at a grant's expiry only the unpinned remainder goes; what the hold
// later captures is spent from it. (The exact sequence: the sweeper
// runs at the expiry, then the capture.)
func TestEdge03HeldCreditsSurviveTheSweepAtExpiry(t *testing.T) {
	t.Parallel()
	h := newHarness(t) // the sweeper runs every 20 ms
	tenant := h.tenant()
	expires := h.clock.Now().Add(10 * time.Minute)
	edgeGrant(t, h, tenant, domain.DefaultCreditType, "g", "100", func(g *domain.Grant) { g.ExpiresAt = &expires })
	if _, err := edgeReserve(h, tenant, domain.DefaultCreditType, "r", "80", time.Hour); err != nil {
		t.Fatal(err)
	}
	edgeAdvanceTo(t, h, expires)
	eventually(t, 2*time.Second, func() bool { return edgeLine(t, h, tenant, domain.DefaultCreditType).Expired.IsPositive() })
	h.clock.Advance(time.Minute)
	if _, err := h.engine.Capture(context.Background(), tenant, domain.DefaultCreditType, domain.Capture{ReservationID: "r"}); err != nil {
		t.Fatalf("capture: %v", err)
	}
	// Today: used 80, expired 100, balance −80: 180 paid for 100.
	edgeWant(t, edgeLine(t, h, tenant, domain.DefaultCreditType), edgeTotals{used: "80", expired: "20", reserved: "0", balance: "0", available: "0"})
}

// Rule: a grant whose expiry has passed at the decision instant is expired,
// and changing its expiry is a 409 (ErrGrantExpired).
func TestEdge04ExpiredGrantCannotBeBroughtBack(t *testing.T) {
	t.Parallel()
	h := newHarnessNoSweep(t)
	for _, tc := range []struct {
		name string
		to   func(expired time.Time) *time.Time
	}{
		{"to_never", func(time.Time) *time.Time { return nil }},
		{"to_later", func(expired time.Time) *time.Time { later := expired.Add(24 * time.Hour); return &later }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tenant := h.tenant()
			expires := h.clock.Now().Add(time.Hour)
			edgeGrant(t, h, tenant, domain.DefaultCreditType, "g", "100", func(g *domain.Grant) { g.ExpiresAt = &expires })
			edgeAdvanceTo(t, h, expires.Add(time.Microsecond))
			_, err := h.engine.ChangeGrantExpiry(context.Background(), tenant, domain.DefaultCreditType,
				domain.ChangeGrantExpiry{GrantID: "g", ExpiresAt: tc.to(expires)})
			if !edgeIsGrantExpired(err) {
				t.Errorf("expiry change of an expired grant: %v, want domain.ErrGrantExpired", err)
			}
			// The expired credits stay expired: they cannot pay.
			if r := edgeUse(t, h, tenant, "u1", "10"); r.Status != StatusRejected {
				t.Errorf("usage after the refused change: %+v, want rejected", r)
			}
			edgeWant(t, edgeLine(t, h, tenant, domain.DefaultCreditType), edgeTotals{granted: "100", used: "0", expired: "100", balance: "0"})
		})
	}
}

// edgeIsGrantExpired is item 4's answer: the grant has expired.
func edgeIsGrantExpired(err error) bool { return errors.Is(err, domain.ErrGrantExpired) }

// Rule (the principle): the subscription allocation that is due is appended
// before the debit is decided.
func TestEdge05UsageAtPeriodStartIsDecidedAfterTheAllocation(t *testing.T) {
	t.Parallel()
	h := newHarnessNoSweep(t)
	tenant := h.tenant()
	start := h.clock.Now()
	if _, err := h.engine.StartSubscription(context.Background(), tenant, domain.DefaultCreditType, domain.StartSubscription{
		SubscriptionID: "pro", CreditsPerPeriod: dec("100"), Period: domain.PeriodMonthly, StartsAt: start,
	}); err != nil {
		t.Fatal(err)
	}
	if r := edgeUse(t, h, tenant, "u1", "90"); r.Status != StatusAccepted {
		t.Fatalf("usage in period 1: %+v", r)
	}
	edgeAdvanceTo(t, h, start.AddDate(0, 1, 0)) // exactly period 2's start
	if r := edgeUse(t, h, tenant, "u2", "60"); r.Status != StatusAccepted {
		t.Fatalf("usage at period 2's start: %+v, want accepted against the new allocation", r)
	}
	if r := edgeUse(t, h, tenant, "u2", "60"); r.Status != StatusDuplicate {
		t.Errorf("repeat of u2: %+v, want a duplicate of the accepted debit", r)
	}
	edgeWant(t, edgeLine(t, h, tenant, domain.DefaultCreditType), edgeTotals{granted: "200", used: "150", expired: "10", balance: "40", available: "40"})
}

// Rule (the principle): a hold past its TTL is released before the decision.
func TestEdge06ExpiredHoldDoesNotBlockSpending(t *testing.T) {
	t.Parallel()
	h := newHarnessNoSweep(t)
	tenant := h.tenant()
	edgeGrant(t, h, tenant, domain.DefaultCreditType, "g", "60", nil)
	held := h.clock.Now()
	if _, err := edgeReserve(h, tenant, domain.DefaultCreditType, "r", "50", time.Minute); err != nil {
		t.Fatal(err)
	}
	edgeAdvanceTo(t, h, held.Add(time.Minute)) // exactly the hold's expiry
	if r := edgeUse(t, h, tenant, "u1", "40"); r.Status != StatusAccepted {
		t.Fatalf("usage at the hold's expiry: %+v, want accepted", r)
	}
	edgeWant(t, edgeLine(t, h, tenant, domain.DefaultCreditType), edgeTotals{used: "40", reserved: "0", balance: "20", available: "20"})
	if _, err := h.engine.Capture(context.Background(), tenant, domain.DefaultCreditType, domain.Capture{ReservationID: "r"}); !errors.Is(err, domain.ErrReservationClosed) {
		t.Errorf("capture of the expired hold: %v, want domain.ErrReservationClosed", err)
	}
}

// Rule: every write's fingerprint covers every field of its body; void and
// reversal fingerprints cover their reason.
func TestEdge07AmendmentFingerprintsCoverTheReason(t *testing.T) {
	t.Parallel()
	h := newHarnessNoSweep(t)
	ctx := context.Background()
	tenant := h.tenant()
	edgeGrant(t, h, tenant, domain.DefaultCreditType, "g1", "100", nil)
	edgeGrant(t, h, tenant, domain.DefaultCreditType, "g2", "100", nil)
	if r := edgeUse(t, h, tenant, "u1", "30"); r.Status != StatusAccepted {
		t.Fatalf("usage: %+v", r)
	}

	t.Run("reversal", func(t *testing.T) {
		if _, err := h.engine.ReverseUsage(ctx, tenant, domain.ReverseUsage{UsageID: "u1", Reason: "a"}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.engine.ReverseUsage(ctx, tenant, domain.ReverseUsage{UsageID: "u1", Reason: "b"}); !errors.Is(err, domain.ErrIdempotencyConflict) {
			t.Errorf("reversal again with another reason: %v, want domain.ErrIdempotencyConflict", err)
		}
		if again, err := h.engine.ReverseUsage(ctx, tenant, domain.ReverseUsage{UsageID: "u1", Reason: "a"}); err != nil || !again.Duplicate {
			t.Errorf("reversal again with the same reason: %+v %v, want a duplicate", again, err)
		}
	})

	t.Run("void", func(t *testing.T) {
		if _, err := h.engine.VoidGrant(ctx, tenant, domain.DefaultCreditType, domain.VoidGrant{GrantID: "g2", Reason: "a"}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.engine.VoidGrant(ctx, tenant, domain.DefaultCreditType, domain.VoidGrant{GrantID: "g2", Reason: "b"}); !errors.Is(err, domain.ErrIdempotencyConflict) {
			t.Errorf("void again with another reason: %v, want domain.ErrIdempotencyConflict", err)
		}
		if again, err := h.engine.VoidGrant(ctx, tenant, domain.DefaultCreditType, domain.VoidGrant{GrantID: "g2", Reason: "a"}); err != nil || !again.Duplicate {
			t.Errorf("void again with the same reason: %+v %v, want a duplicate", again, err)
		}
	})
}

// Rule: every write's fingerprint covers every field of its body; same id +
// other body → conflict. Already true today for these commands (the issue
// names void and reversal); this guards it while the engine changes.
func TestEdge07EveryFingerprintCoversEveryField(t *testing.T) {
	t.Parallel()
	h := newHarnessNoSweep(t)
	ctx := context.Background()
	tenant := h.tenant()
	now := h.clock.Now()
	edgeGrant(t, h, tenant, domain.DefaultCreditType, "funds", "1000", nil)
	wantConflict := func(t *testing.T, field string, err error) {
		t.Helper()
		if !errors.Is(err, domain.ErrIdempotencyConflict) {
			t.Errorf("same id with another %s: %v, want domain.ErrIdempotencyConflict", field, err)
		}
	}

	t.Run("grant", func(t *testing.T) {
		expires, cost := now.Add(48*time.Hour), dec("0.01")
		base := domain.Grant{GrantID: "fp-grant", Amount: dec("10"), Source: domain.SourcePromotional, Priority: 1,
			EffectiveAt: now, ExpiresAt: &expires, CostPerCredit: &cost, Currency: "USD", Description: "d", Reference: "r",
			Metadata: map[string]string{"k": "v"}}
		if _, err := h.engine.Grant(ctx, tenant, domain.DefaultCreditType, base); err != nil {
			t.Fatal(err)
		}
		laterExpiry, otherCost := now.Add(72*time.Hour), dec("0.02")
		for field, mod := range map[string]func(*domain.Grant){
			"amount":          func(g *domain.Grant) { g.Amount = dec("11") },
			"source":          func(g *domain.Grant) { g.Source = domain.SourceManual },
			"priority":        func(g *domain.Grant) { g.Priority = 2 },
			"effective_at":    func(g *domain.Grant) { g.EffectiveAt = now.Add(time.Hour) },
			"expires_at":      func(g *domain.Grant) { g.ExpiresAt = &laterExpiry },
			"no expires_at":   func(g *domain.Grant) { g.ExpiresAt = nil },
			"cost_per_credit": func(g *domain.Grant) { g.CostPerCredit = &otherCost },
			"currency":        func(g *domain.Grant) { g.Currency = "EUR" },
			"description":     func(g *domain.Grant) { g.Description = "e" },
			"reference":       func(g *domain.Grant) { g.Reference = "s" },
			"metadata":        func(g *domain.Grant) { g.Metadata = map[string]string{"k": "w"} },
		} {
			g := base
			mod(&g)
			_, err := h.engine.Grant(ctx, tenant, domain.DefaultCreditType, g)
			wantConflict(t, field, err)
		}
		_, err := h.engine.Grant(ctx, tenant, "gpu", base)
		wantConflict(t, "credit_type", err)
	})

	t.Run("usage", func(t *testing.T) {
		base := UsageEvent{CreditType: domain.DefaultCreditType, RecordUsage: domain.RecordUsage{
			UsageID: "fp-usage", Amount: dec("1"), OccurredAt: now.Add(-time.Minute), Description: "d",
			Dimensions: domain.Dimensions{Module: "m", Service: "s", UserID: "u", WorkflowID: "w", WorkflowRunID: "wr",
				Endpoint: "e", Success: true, Quantity: dec("1"), Custom: map[string]string{"k": "v"}},
		}}
		if results, err := h.engine.RecordUsage(ctx, tenant, []UsageEvent{base}); err != nil || results[0].Status != StatusAccepted {
			t.Fatalf("usage: %+v %v", results, err)
		}
		for field, mod := range map[string]func(*UsageEvent){
			"amount":          func(u *UsageEvent) { u.Amount = dec("2") },
			"occurred_at":     func(u *UsageEvent) { u.OccurredAt = now.Add(-2 * time.Minute) },
			"description":     func(u *UsageEvent) { u.Description = "e" },
			"module":          func(u *UsageEvent) { u.Dimensions.Module = "n" },
			"service":         func(u *UsageEvent) { u.Dimensions.Service = "t" },
			"user_id":         func(u *UsageEvent) { u.Dimensions.UserID = "v" },
			"workflow_id":     func(u *UsageEvent) { u.Dimensions.WorkflowID = "x" },
			"workflow_run_id": func(u *UsageEvent) { u.Dimensions.WorkflowRunID = "xr" },
			"endpoint":        func(u *UsageEvent) { u.Dimensions.Endpoint = "f" },
			"success":         func(u *UsageEvent) { u.Dimensions.Success = false },
			"quantity":        func(u *UsageEvent) { u.Dimensions.Quantity = dec("2") },
			"custom":          func(u *UsageEvent) { u.Dimensions.Custom = map[string]string{"k": "w"} },
			"credit_type":     func(u *UsageEvent) { u.CreditType = "gpu" },
		} {
			u := base
			mod(&u)
			results, err := h.engine.RecordUsage(ctx, tenant, []UsageEvent{u})
			if err != nil {
				t.Fatalf("%s: %v", field, err)
			}
			wantConflict(t, field, results[0].Err)
		}
	})

	t.Run("reserve", func(t *testing.T) {
		base := domain.Reserve{ReservationID: "fp-hold", Amount: dec("5"), TTL: time.Minute, Dimensions: domain.Dimensions{Module: "m"}}
		if _, err := h.engine.Reserve(ctx, tenant, domain.DefaultCreditType, base); err != nil {
			t.Fatal(err)
		}
		for field, mod := range map[string]func(*domain.Reserve){
			"amount":     func(r *domain.Reserve) { r.Amount = dec("6") },
			"ttl":        func(r *domain.Reserve) { r.TTL = 2 * time.Minute },
			"dimensions": func(r *domain.Reserve) { r.Dimensions.UserID = "u" },
		} {
			r := base
			mod(&r)
			_, err := h.engine.Reserve(ctx, tenant, domain.DefaultCreditType, r)
			wantConflict(t, field, err)
		}
		_, err := h.engine.Reserve(ctx, tenant, "gpu", base)
		wantConflict(t, "credit_type", err)
	})

	t.Run("capture", func(t *testing.T) {
		if _, err := edgeReserve(h, tenant, domain.DefaultCreditType, "fp-capture", "10", time.Minute); err != nil {
			t.Fatal(err)
		}
		four := dec("4")
		if _, err := h.engine.Capture(ctx, tenant, domain.DefaultCreditType, domain.Capture{ReservationID: "fp-capture", Amount: &four}); err != nil {
			t.Fatal(err)
		}
		// A capture's id is its reservation's: today a second capture with
		// another amount answers "closed" (lifecycle_test.go); both are 409s.
		five := dec("5")
		for field, amount := range map[string]*decimal.Decimal{"amount": &five, "amount (all)": nil} {
			_, err := h.engine.Capture(ctx, tenant, domain.DefaultCreditType, domain.Capture{ReservationID: "fp-capture", Amount: amount})
			if !errors.Is(err, domain.ErrIdempotencyConflict) && !errors.Is(err, domain.ErrReservationClosed) {
				t.Errorf("same capture with another %s: %v, want a conflict", field, err)
			}
		}
	})

	t.Run("adjust", func(t *testing.T) {
		base := domain.Adjust{AdjustmentID: "fp-adjust", Amount: dec("5"), Reason: "r", Reference: "ref"}
		if _, err := h.engine.Adjust(ctx, tenant, domain.DefaultCreditType, base); err != nil {
			t.Fatal(err)
		}
		for field, mod := range map[string]func(*domain.Adjust){
			"amount":    func(a *domain.Adjust) { a.Amount = dec("6") },
			"sign":      func(a *domain.Adjust) { a.Amount = dec("-5") },
			"reason":    func(a *domain.Adjust) { a.Reason = "s" },
			"reference": func(a *domain.Adjust) { a.Reference = "other" },
		} {
			a := base
			mod(&a)
			_, err := h.engine.Adjust(ctx, tenant, domain.DefaultCreditType, a)
			wantConflict(t, field, err)
		}
		_, err := h.engine.Adjust(ctx, tenant, "gpu", base)
		wantConflict(t, "credit_type", err)
	})

	t.Run("subscription", func(t *testing.T) {
		price := dec("5")
		base := domain.StartSubscription{SubscriptionID: "fp-sub", CreditsPerPeriod: dec("10"), Period: domain.PeriodMonthly,
			StartsAt: now.Add(24 * time.Hour), PriceAmount: &price, PriceCurrency: "EUR"}
		if _, err := h.engine.StartSubscription(ctx, tenant, domain.DefaultCreditType, base); err != nil {
			t.Fatal(err)
		}
		otherPrice := dec("6")
		for field, mod := range map[string]func(*domain.StartSubscription){
			"credits_per_period": func(s *domain.StartSubscription) { s.CreditsPerPeriod = dec("11") },
			"starts_at":          func(s *domain.StartSubscription) { s.StartsAt = now.Add(48 * time.Hour) },
			"price.amount":       func(s *domain.StartSubscription) { s.PriceAmount = &otherPrice },
			"price.currency":     func(s *domain.StartSubscription) { s.PriceCurrency = "USD" },
			"no price":           func(s *domain.StartSubscription) { s.PriceAmount, s.PriceCurrency = nil, "" },
			"rollover":           func(s *domain.StartSubscription) { s.Rollover = true },
		} {
			s := base
			mod(&s)
			_, err := h.engine.StartSubscription(ctx, tenant, domain.DefaultCreditType, s)
			wantConflict(t, field, err)
		}
		_, err := h.engine.StartSubscription(ctx, tenant, "gpu", base)
		wantConflict(t, "credit_type", err)
	})
}

// Rule: capture or release naming a credit line that does not hold that
// reservation → 404 not found (not 409 "closed").
func TestEdge08CaptureOnTheWrongLineIsNotFound(t *testing.T) {
	t.Parallel()
	h := newHarnessNoSweep(t)
	ctx := context.Background()
	tenant := h.tenant()
	edgeGrant(t, h, tenant, "gpu", "g", "100", nil)
	if _, err := edgeReserve(h, tenant, "gpu", "r", "30", time.Hour); err != nil {
		t.Fatal(err)
	}
	_, err := h.engine.Capture(ctx, tenant, domain.DefaultCreditType, domain.Capture{ReservationID: "r"})
	if !errors.Is(err, domain.ErrReservationNotFound) || errors.Is(err, domain.ErrReservationClosed) {
		t.Errorf("capture naming the wrong line: %v, want domain.ErrReservationNotFound", err)
	}
	_, err = h.engine.Release(ctx, tenant, domain.DefaultCreditType, "r")
	if !errors.Is(err, domain.ErrReservationNotFound) || errors.Is(err, domain.ErrReservationClosed) {
		t.Errorf("release naming the wrong line: %v, want domain.ErrReservationNotFound", err)
	}
	// The hold is still open on its own line.
	edgeWant(t, edgeLine(t, h, tenant, "gpu"), edgeTotals{reserved: "30", available: "70"})
	if _, err := h.engine.Capture(ctx, tenant, "gpu", domain.Capture{ReservationID: "r"}); err != nil {
		t.Errorf("capture on the hold's line: %v", err)
	}
}

// Rule: each of a line's totals stays ≤ 10^12 credits; a client write that
// would take one past it is refused (400 naming the amount field; nothing stored).
func TestEdge09LineTotalsNeverPassTheLimit(t *testing.T) {
	t.Parallel()
	h := newHarnessNoSweep(t)
	ctx := context.Background()
	tenant := h.tenant()
	wantRefused := func(id, amount, granted string) {
		t.Helper()
		_, err := h.engine.Grant(ctx, tenant, domain.DefaultCreditType, grantCommand(id, amount))
		located := false
		for _, f := range domain.FieldErrors(err) {
			located = located || f.Location == "amount"
		}
		if !located {
			t.Errorf("grant %s of %s on a line granted %s: %v, want a *domain.FieldError at amount", id, amount, granted, err)
		}
		edgeWant(t, edgeLine(t, h, tenant, domain.DefaultCreditType), edgeTotals{granted: granted})
	}
	edgeGrant(t, h, tenant, domain.DefaultCreditType, "g1", "999999999999", nil)
	wantRefused("g2", "999999999999", "999999999999")
	// At the limit: exactly 10^12 is allowed, a micro-credit more is not.
	edgeGrant(t, h, tenant, domain.DefaultCreditType, "g3", "1", nil)
	wantRefused("g4", "0.000001", "1000000000000")
	for _, env := range h.events() {
		if g, ok := env.Event.(domain.CreditsGranted); ok && env.TenantID == tenant && (g.GrantID == "g2" || g.GrantID == "g4") {
			t.Errorf("refused grant %s is in the log", g.GrantID)
		}
	}
}

// Rule: reversed credits return to the grants that paid, with those grants'
// expiry; what returns to an already expired grant expires at once.
func TestEdge10ReversalAfterExpiryDoesNotCreatePermanentCredits(t *testing.T) {
	t.Parallel()
	h := newHarnessNoSweep(t)
	tenant := h.tenant()
	expires := h.clock.Now().Add(time.Hour)
	edgeGrant(t, h, tenant, domain.DefaultCreditType, "g", "100", func(g *domain.Grant) { g.ExpiresAt = &expires })
	if r := edgeUse(t, h, tenant, "u1", "30"); r.Status != StatusAccepted {
		t.Fatalf("usage: %+v", r)
	}
	edgeAdvanceTo(t, h, expires)
	if r := edgeUse(t, h, tenant, "tick", "0"); r.Status != StatusAccepted { // due work at T: 70 expire
		t.Fatalf("zero usage: %+v", r)
	}
	h.clock.Advance(time.Minute)
	if _, err := h.engine.ReverseUsage(context.Background(), tenant, domain.ReverseUsage{UsageID: "u1", Reason: "refund"}); err != nil {
		t.Fatalf("reverse: %v", err)
	}
	edgeWant(t, edgeLine(t, h, tenant, domain.DefaultCreditType), edgeTotals{used: "0", expired: "100", balance: "0", available: "0"})
}

// Same rule, in the exact sequence: the sweeper expires the 70 at T,
// then the reversal.
func TestEdge10ReversalAfterTheSweepDoesNotCreatePermanentCredits(t *testing.T) {
	t.Parallel()
	h := newHarness(t) // the sweeper runs every 20 ms
	tenant := h.tenant()
	expires := h.clock.Now().Add(time.Hour)
	edgeGrant(t, h, tenant, domain.DefaultCreditType, "g", "100", func(g *domain.Grant) { g.ExpiresAt = &expires })
	if r := edgeUse(t, h, tenant, "u1", "30"); r.Status != StatusAccepted {
		t.Fatalf("usage: %+v", r)
	}
	edgeAdvanceTo(t, h, expires)
	eventually(t, 2*time.Second, func() bool { return edgeLine(t, h, tenant, domain.DefaultCreditType).Expired.Equal(dec("70")) })
	h.clock.Advance(time.Minute)
	if _, err := h.engine.ReverseUsage(context.Background(), tenant, domain.ReverseUsage{UsageID: "u1", Reason: "refund"}); err != nil {
		t.Fatalf("reverse: %v", err)
	}
	// Today: expired 70, balance 30 of credits that never expire.
	edgeWant(t, edgeLine(t, h, tenant, domain.DefaultCreditType), edgeTotals{used: "0", expired: "100", balance: "0", available: "0"})
}

// Rule: like a refused debit, a refused reservation is recorded, and its id
// answers the same refusal again; a different body → idempotency conflict.
func TestEdge11RefusedReservationIsRecorded(t *testing.T) {
	t.Parallel()
	h := newHarnessNoSweep(t)
	tenant := h.tenant()
	edgeGrant(t, h, tenant, domain.DefaultCreditType, "g1", "10", nil)
	if _, err := edgeReserve(h, tenant, domain.DefaultCreditType, "r", "50", time.Minute); !errors.Is(err, domain.ErrInsufficientCredits) {
		t.Fatalf("reservation beyond spendable: %v, want domain.ErrInsufficientCredits", err)
	}
	edgeGrant(t, h, tenant, domain.DefaultCreditType, "g2", "100", nil)
	if _, err := edgeReserve(h, tenant, domain.DefaultCreditType, "r", "50", time.Minute); !errors.Is(err, domain.ErrInsufficientCredits) {
		t.Errorf("retry of the refused reservation: %v, want the same refusal (domain.ErrInsufficientCredits)", err)
	}
	if _, err := edgeReserve(h, tenant, domain.DefaultCreditType, "r", "60", time.Minute); !errors.Is(err, domain.ErrIdempotencyConflict) {
		t.Errorf("the refused id with another amount: %v, want domain.ErrIdempotencyConflict", err)
	}
	edgeWant(t, edgeLine(t, h, tenant, domain.DefaultCreditType), edgeTotals{reserved: "0", available: "110"})
}

// Rule: at creation, periods that ended before the creation instant are not
// allocated (a past start allocates only the current period and later ones).
func TestEdge12PastStartAllocatesOnlyTheCurrentPeriod(t *testing.T) {
	t.Parallel()
	h := newHarnessNoSweep(t)
	tenant := h.tenant()
	// 2025-11-26: periods 0–2 ended on Feb 26; period 3 runs to Mar 26.
	start := h.clock.Now().AddDate(0, -3, -5)
	if _, err := h.engine.StartSubscription(context.Background(), tenant, domain.DefaultCreditType, domain.StartSubscription{
		SubscriptionID: "pro", CreditsPerPeriod: dec("100"), Period: domain.PeriodMonthly, StartsAt: start,
	}); err != nil {
		t.Fatal(err)
	}
	// A later write applies whatever is due: nothing may expire.
	if r := edgeUse(t, h, tenant, "tick", "0"); r.Status != StatusAccepted {
		t.Fatalf("zero usage: %+v", r)
	}
	line := edgeLine(t, h, tenant, domain.DefaultCreditType)
	edgeWant(t, line, edgeTotals{granted: "100", expired: "0", balance: "100", available: "100"})
	var ids []string
	for _, g := range line.Grants {
		ids = append(ids, g.GrantID)
	}
	if !slices.Equal(ids, []string{"subscription:pro:3"}) {
		t.Errorf("grants %v, want only the current period's [subscription:pro:3]", ids)
	}
}

// Rule: spendable is always computed at the decision instant (auto-reload
// counts neither grants not yet effective nor grants past expiry).
func TestEdge13AutoReloadDecidesOnSpendableNow(t *testing.T) {
	t.Parallel()
	h := newHarnessNoSweep(t)

	t.Run("a_grant_not_yet_effective_does_not_count", func(t *testing.T) {
		tenant := h.tenant()
		nextYear := h.clock.Now().AddDate(1, 0, 0)
		edgeGrant(t, h, tenant, domain.DefaultCreditType, "future", "1000", func(g *domain.Grant) { g.EffectiveAt = nextYear })
		edgeGrant(t, h, tenant, domain.DefaultCreditType, "now", "60", nil)
		edgeAutoReload(t, h, tenant, "50", "100")
		if r := edgeUse(t, h, tenant, "u1", "20"); r.Status != StatusAccepted {
			t.Fatalf("usage: %+v", r)
		}
		// Free now: 60 − 20 = 40 < 50.
		edgeWantReloads(t, h, tenant, "auto_reload:usage:u1")
		edgeWant(t, edgeLine(t, h, tenant, domain.DefaultCreditType), edgeTotals{granted: "1160", used: "20"})
	})

	t.Run("a_grant_past_expiry_unswept_does_not_count", func(t *testing.T) {
		tenant := h.tenant()
		expires := h.clock.Now().Add(time.Hour)
		edgeGrant(t, h, tenant, domain.DefaultCreditType, "a", "100", func(g *domain.Grant) { g.ExpiresAt = &expires })
		edgeGrant(t, h, tenant, domain.DefaultCreditType, "b", "60", nil)
		edgeAutoReload(t, h, tenant, "50", "100")
		edgeAdvanceTo(t, h, expires.Add(time.Microsecond))
		if r := edgeUse(t, h, tenant, "u1", "20"); r.Status != StatusAccepted {
			t.Fatalf("usage: %+v", r)
		}
		edgeWantReloads(t, h, tenant, "auto_reload:usage:u1")
		edgeWant(t, edgeLine(t, h, tenant, domain.DefaultCreditType), edgeTotals{granted: "260", used: "20", expired: "100", balance: "140"})
	})
}
