package domain

import (
	"testing"
	"time"
)

// fingerprintCase is a named change to a command.
type fingerprintCase[C any] struct {
	name   string
	change func(*C)
}

// checkFingerprints asserts that the base command fingerprints the same every
// time and that every change gives a different, non-zero fingerprint.
func checkFingerprints[C any](t *testing.T, base func() C, fp func(C) uint64, changes []fingerprintCase[C]) {
	t.Helper()
	want := fp(base())
	if want == 0 {
		t.Fatal("fingerprint is zero, which means no fingerprint")
	}
	if again := fp(base()); again != want {
		t.Fatalf("the same command fingerprints %x then %x", want, again)
	}
	seen := map[uint64]string{want: "base"}
	for _, ch := range changes {
		t.Run(ch.name+"_changes_the_fingerprint", func(t *testing.T) {
			c := base()
			ch.change(&c)
			got := fp(c)
			if got == want {
				t.Fatalf("fingerprint unchanged")
			}
			if got == 0 {
				t.Fatal("fingerprint is zero")
			}
			if other, dup := seen[got]; dup {
				t.Fatalf("fingerprint equals that of %s", other)
			}
			seen[got] = ch.name
		})
	}
}

func TestRecordUsageFingerprint(t *testing.T) {
	t.Parallel()
	base := func() RecordUsage {
		return RecordUsage{UsageID: "u1", Amount: d("1.5"), OccurredAt: t0, Description: "tokens",
			Dimensions: Dimensions{Module: "m", Service: "s", UserID: "user", WorkflowID: "wf", WorkflowRunID: "run",
				Endpoint: "/x", Success: true, Quantity: d("3"), Custom: map[string]string{"region": "eu", "tier": "pro"}}}
	}
	checkFingerprints(t, base, RecordUsage.Fingerprint, []fingerprintCase[RecordUsage]{
		{"id", func(c *RecordUsage) { c.UsageID = "u2" }},
		{"amount", func(c *RecordUsage) { c.Amount = d("1.500001") }},
		{"occurred_at_set_to_zero", func(c *RecordUsage) { c.OccurredAt = time.Time{} }},
		{"occurred_at_moved_a_nanosecond", func(c *RecordUsage) { c.OccurredAt = t0.Add(time.Nanosecond) }},
		{"module", func(c *RecordUsage) { c.Dimensions.Module = "m2" }},
		{"service", func(c *RecordUsage) { c.Dimensions.Service = "s2" }},
		{"user_id", func(c *RecordUsage) { c.Dimensions.UserID = "user2" }},
		{"workflow_id", func(c *RecordUsage) { c.Dimensions.WorkflowID = "wf2" }},
		{"workflow_run_id", func(c *RecordUsage) { c.Dimensions.WorkflowRunID = "run2" }},
		{"endpoint", func(c *RecordUsage) { c.Dimensions.Endpoint = "/y" }},
		{"success", func(c *RecordUsage) { c.Dimensions.Success = false }},
		{"quantity", func(c *RecordUsage) { c.Dimensions.Quantity = d("4") }},
		{"a_custom_value", func(c *RecordUsage) { c.Dimensions.Custom = map[string]string{"region": "us", "tier": "pro"} }},
		{"a_custom_key", func(c *RecordUsage) { c.Dimensions.Custom = map[string]string{"zone": "eu", "tier": "pro"} }},
		{"an_added_custom_key", func(c *RecordUsage) {
			c.Dimensions.Custom = map[string]string{"region": "eu", "tier": "pro", "x": ""}
		}},
		{"no_custom_keys", func(c *RecordUsage) { c.Dimensions.Custom = nil }},
		{"description", func(c *RecordUsage) { c.Description = "tokens!" }},
		{"a_value_moved_between_fields", func(c *RecordUsage) { c.Dimensions.Module, c.Dimensions.Service = "s", "m" }},
	})
	t.Run("occurred_at_zero_and_set_differ_even_when_set_to_now", func(t *testing.T) {
		a, b := base(), base()
		a.OccurredAt = time.Time{}
		if a.Fingerprint() == b.Fingerprint() {
			t.Fatal("zero and t0 occurred_at fingerprint the same")
		}
	})
	t.Run("the_same_instant_in_another_zone_is_the_same_request", func(t *testing.T) {
		a := base()
		a.OccurredAt = t0.In(time.FixedZone("PST", -8*3600))
		if a.Fingerprint() != base().Fingerprint() {
			t.Fatal("the zone of occurred_at changed the fingerprint")
		}
	})
	t.Run("custom_keys_are_hashed_in_a_stable_order", func(t *testing.T) {
		a := base()
		custom := map[string]string{}
		for _, k := range []string{"tier", "region"} {
			custom[k] = base().Dimensions.Custom[k]
		}
		a.Dimensions.Custom = custom
		for range 20 {
			if a.Fingerprint() != base().Fingerprint() {
				t.Fatal("the fingerprint depends on map order")
			}
		}
	})
	t.Run("the_fingerprint_is_on_the_debit_and_the_rejection", func(t *testing.T) {
		c := base()
		c.Dimensions.Custom = nil
		l := lineWith(t, granted("g", "100"))
		ok := must(t)(DecideUsage(l, c, t0))[0].(UsageDebited)
		c2 := c
		c2.Amount = d("1000")
		rej := must(t)(DecideUsage(l, c2, t0))[0].(DebitRejected)
		if ok.Fingerprint != c.Fingerprint() || rej.Fingerprint != c2.Fingerprint() {
			t.Fatalf("event fingerprints %x %x, want %x %x", ok.Fingerprint, rej.Fingerprint, c.Fingerprint(), c2.Fingerprint())
		}
	})
	t.Run("a_retry_without_occurred_at_matches_its_first_try_decided_later", func(t *testing.T) {
		c := base()
		c.OccurredAt = time.Time{}
		l := lineWith(t, granted("g", "100"))
		first := must(t)(DecideUsage(l, c, t0))[0].(UsageDebited)
		retry := must(t)(DecideUsage(l, c, t0.Add(time.Minute)))[0].(UsageDebited)
		if first.Fingerprint != retry.Fingerprint {
			t.Fatal("the decision time leaked into the fingerprint")
		}
	})
}

func TestGrantFingerprint(t *testing.T) {
	t.Parallel()
	base := func() Grant {
		return Grant{GrantID: "g1", Amount: d("100"), Source: SourcePurchase, Priority: 1, EffectiveAt: t0,
			ExpiresAt: tp(t0.Add(time.Hour)), CostPerCredit: dp("0.01"), Currency: "USD", Description: "pack",
			Reference: "inv", Metadata: map[string]string{"plan": "pro"}}
	}
	checkFingerprints(t, base, Grant.Fingerprint, []fingerprintCase[Grant]{
		{"grant_id", func(c *Grant) { c.GrantID = "g2" }},
		{"amount", func(c *Grant) { c.Amount = d("101") }},
		{"source", func(c *Grant) { c.Source = SourcePromotional }},
		{"priority", func(c *Grant) { c.Priority = 2 }},
		{"effective_at_zero", func(c *Grant) { c.EffectiveAt = time.Time{} }},
		{"effective_at", func(c *Grant) { c.EffectiveAt = t0.Add(time.Second) }},
		{"no_expiry", func(c *Grant) { c.ExpiresAt = nil }},
		{"expires_at", func(c *Grant) { c.ExpiresAt = tp(t0.Add(2 * time.Hour)) }},
		{"no_cost_per_credit", func(c *Grant) { c.CostPerCredit = nil }},
		{"cost_per_credit", func(c *Grant) { c.CostPerCredit = dp("0.02") }},
		{"currency", func(c *Grant) { c.Currency = "EUR" }},
		{"description", func(c *Grant) { c.Description = "pack2" }},
		{"reference", func(c *Grant) { c.Reference = "inv2" }},
		{"metadata_value", func(c *Grant) { c.Metadata = map[string]string{"plan": "team"} }},
		{"no_metadata", func(c *Grant) { c.Metadata = nil }},
	})
	t.Run("the_fingerprint_is_on_the_event", func(t *testing.T) {
		g := must(t)(DecideGrant(NewLine(DefaultCreditType), base(), t0))[0].(CreditsGranted)
		if g.Fingerprint != base().Fingerprint() {
			t.Fatalf("event fingerprint %x, want %x", g.Fingerprint, base().Fingerprint())
		}
	})
}

func TestReserveFingerprint(t *testing.T) {
	t.Parallel()
	base := func() Reserve {
		return Reserve{ReservationID: "r1", Amount: d("5"), TTL: time.Minute, Dimensions: Dimensions{Module: "m", Quantity: d("1")}}
	}
	checkFingerprints(t, base, Reserve.Fingerprint, []fingerprintCase[Reserve]{
		{"reservation_id", func(c *Reserve) { c.ReservationID = "r2" }},
		{"amount", func(c *Reserve) { c.Amount = d("6") }},
		{"ttl", func(c *Reserve) { c.TTL = 2 * time.Minute }},
		{"default_ttl", func(c *Reserve) { c.TTL = 0 }},
		{"a_dimension", func(c *Reserve) { c.Dimensions.Module = "n" }},
		{"quantity", func(c *Reserve) { c.Dimensions.Quantity = d("2") }},
	})
	t.Run("the_fingerprint_is_on_the_event", func(t *testing.T) {
		r := must(t)(DecideReserve(lineWith(t, granted("g", "10")), base(), t0))[0].(CreditsReserved)
		if r.Fingerprint != base().Fingerprint() {
			t.Fatal("event fingerprint differs from the command's")
		}
	})
}

func TestCaptureFingerprint(t *testing.T) {
	t.Parallel()
	base := func() Capture { return Capture{ReservationID: "r1", Amount: dp("2")} }
	checkFingerprints(t, base, Capture.Fingerprint, []fingerprintCase[Capture]{
		{"reservation_id", func(c *Capture) { c.ReservationID = "r2" }},
		{"amount", func(c *Capture) { c.Amount = dp("3") }},
		{"capture_all", func(c *Capture) { c.Amount = nil }},
	})
	t.Run("the_fingerprint_is_on_the_event", func(t *testing.T) {
		l := lineWith(t, granted("g", "10"), CreditsReserved{ReservationID: "r1", Amount: d("5"), ExpiresAt: t0.Add(time.Hour)})
		c := must(t)(DecideCapture(l, base(), t0))[0].(ReservationCaptured)
		if c.Fingerprint != base().Fingerprint() {
			t.Fatal("event fingerprint differs from the command's")
		}
	})
}

func TestAdjustFingerprint(t *testing.T) {
	t.Parallel()
	base := func() Adjust { return Adjust{AdjustmentID: "a1", Amount: d("-5"), Reason: "fix", Reference: "t-1"} }
	checkFingerprints(t, base, Adjust.Fingerprint, []fingerprintCase[Adjust]{
		{"adjustment_id", func(c *Adjust) { c.AdjustmentID = "a2" }},
		{"amount", func(c *Adjust) { c.Amount = d("5") }},
		{"reason", func(c *Adjust) { c.Reason = "fix2" }},
		{"reference", func(c *Adjust) { c.Reference = "" }},
		{"reason_and_reference_swapped", func(c *Adjust) { c.Reason, c.Reference = "t-1", "fix" }},
	})
	t.Run("the_fingerprint_is_on_the_event", func(t *testing.T) {
		a := must(t)(DecideAdjust(NewLine(DefaultCreditType), base(), t0))[0].(CreditsAdjusted)
		if a.Fingerprint != base().Fingerprint() {
			t.Fatal("event fingerprint differs from the command's")
		}
	})
}

func TestFingerprintsDifferAcrossCommandKinds(t *testing.T) {
	t.Parallel()
	// The same id and amount under different commands must not match.
	fps := map[uint64]string{}
	for name, fp := range map[string]uint64{
		"usage":   RecordUsage{UsageID: "x", Amount: d("1")}.Fingerprint(),
		"grant":   Grant{GrantID: "x", Amount: d("1")}.Fingerprint(),
		"reserve": Reserve{ReservationID: "x", Amount: d("1")}.Fingerprint(),
		"capture": Capture{ReservationID: "x", Amount: dp("1")}.Fingerprint(),
		"adjust":  Adjust{AdjustmentID: "x", Amount: d("1")}.Fingerprint(),
	} {
		if other, dup := fps[fp]; dup {
			t.Fatalf("%s and %s fingerprint the same", name, other)
		}
		fps[fp] = name
	}
}
