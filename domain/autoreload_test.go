package domain

import (
	"testing"
	"time"
)

// reloadLine is a line with a purchase of amount and auto-reload configured
// through the decision, as the service would do it.
func reloadLine(t *testing.T, amount, threshold, reload string) *Line {
	t.Helper()
	l := lineWith(t, granted("p1", amount))
	apply(t, l, must(t)(DecideConfigureAutoReload(l, ConfigureAutoReload{Enabled: true, Threshold: d(threshold), Amount: d(reload)}))...)
	return l
}

// reloads returns the auto-reload grants among events.
func reloads(events []Event) []CreditsGranted {
	var out []CreditsGranted
	for _, e := range events {
		if g, ok := e.(CreditsGranted); ok && g.Source == SourceAutoReload {
			out = append(out, g)
		}
	}
	return out
}

func TestAutoReloadFiresWhenADebitCrossesTheThreshold(t *testing.T) {
	t.Parallel()
	paris := time.FixedZone("CET", 3600)
	l := reloadLine(t, "100", "20", "50")
	c := RecordUsage{UsageID: "u1", Amount: d("85")}
	ev := must(t)(DecideUsage(l, c, t0.In(paris)))
	if len(ev) != 2 {
		t.Fatalf("events = %+v, want UsageDebited then the reload", ev)
	}
	if _, ok := ev[0].(UsageDebited); !ok {
		t.Fatalf("first event = %T, want UsageDebited", ev[0])
	}
	want := CreditsGranted{GrantID: "auto_reload:usage:u1", Amount: d("50"), Source: SourceAutoReload,
		EffectiveAt: t0, Description: "auto-reload", Trigger: "usage:u1"}
	if err := sameValue(ev[1], Event(want)); err != nil {
		t.Fatal(err)
	}
	apply(t, l, ev...)
	wantTotals(t, l, "65", "65")
	wantDec(t, "granted", l.Granted, "150")
	wantDec(t, "spendable", l.Spendable(t0), "65")
	wantRemaining(t, l, "auto_reload:usage:u1", "50")
	if !l.ReloadArmed {
		t.Error("back above the threshold, the reload should be armed again")
	}
}

func TestAutoReloadFiresOncePerCrossing(t *testing.T) {
	t.Parallel()
	usage := func(id, amount string) func(*testing.T, *Line) []Event {
		return func(t *testing.T, l *Line) []Event {
			return must(t)(DecideUsage(l, RecordUsage{UsageID: id, Amount: d(amount)}, t0))
		}
	}
	reserve := func(id, amount string) func(*testing.T, *Line) []Event {
		return func(t *testing.T, l *Line) []Event {
			return must(t)(DecideReserve(l, Reserve{ReservationID: id, Amount: d(amount)}, t0))
		}
	}
	purchase := func(id, amount string) func(*testing.T, *Line) []Event {
		return func(t *testing.T, l *Line) []Event {
			return must(t)(DecideGrant(l, Grant{GrantID: id, Amount: d(amount), Source: SourcePurchase}, t0))
		}
	}
	// Threshold 100, reload 30, starting from 150 available.
	l := reloadLine(t, "150", "100", "30")
	steps := []struct {
		name      string
		decide    func(*testing.T, *Line) []Event
		reload    string // the reload grant id, "" for none
		available string
		armed     bool
	}{
		{"a_debit_crossing_the_threshold_reloads", usage("u1", "60"), "auto_reload:usage:u1", "120", true},
		{"the_next_crossing_reloads_and_a_reload_to_exactly_the_threshold_rearms", usage("u2", "50"), "auto_reload:usage:u2", "100", true},
		{"a_reload_short_of_the_threshold_disarms", usage("u3", "40"), "auto_reload:usage:u3", "90", false},
		{"a_debit_staying_below_after_a_short_reload_does_not_reload", usage("u4", "10"), "", "80", false},
		{"nor_does_the_next_one", usage("u5", "5"), "", "75", false},
		{"a_zero_debit_below_the_threshold_does_not_reload", usage("u6", "0"), "", "75", false},
		{"a_purchase_back_above_the_threshold_rearms", purchase("p2", "50"), "", "125", true},
		{"the_next_crossing_reloads_again", usage("u7", "30"), "auto_reload:usage:u7", "125", true},
		{"a_debit_landing_exactly_on_the_threshold_does_not_reload", usage("u8", "25"), "", "100", true},
		{"a_reservation_crossing_the_threshold_reloads", reserve("r1", "10"), "auto_reload:reservation:r1", "120", true},
		{"a_debit_staying_above_does_not_reload", usage("u9", "19.999999"), "", "100.000001", true},
	}
	for _, s := range steps {
		ev := s.decide(t, l)
		apply(t, l, ev...)
		t.Run(s.name, func(t *testing.T) {
			got := reloads(ev)
			switch {
			case s.reload == "" && len(got) != 0:
				t.Errorf("unexpected reload %+v", got)
			case s.reload != "" && (len(got) != 1 || got[0].GrantID != s.reload):
				t.Errorf("reloads = %+v, want one %s", got, s.reload)
			}
			wantDec(t, "available", l.Available(), s.available)
			if l.ReloadArmed != s.armed {
				t.Errorf("armed = %v, want %v", l.ReloadArmed, s.armed)
			}
		})
	}
}

func TestAutoReloadRearmsWhenAvailableIsBack(t *testing.T) {
	t.Parallel()
	// Threshold 100, reload 10: the first crossing leaves available below,
	// disarmed. Each case brings available back some other way.
	setup := func(t *testing.T) *Line {
		l := reloadLine(t, "150", "100", "10")
		apply(t, l, must(t)(DecideReserve(l, Reserve{ReservationID: "r1", Amount: d("30")}, t0))...)
		apply(t, l, must(t)(DecideUsage(l, RecordUsage{UsageID: "u1", Amount: d("40")}, t0))...)
		// 150 - 30 held - 40 used + 10 reloaded = 90 < 100: disarmed.
		wantDec(t, "available", l.Available(), "90")
		if l.ReloadArmed {
			t.Fatal("still armed after a reload that did not reach the threshold")
		}
		return l
	}
	tests := []struct {
		name  string
		back  func(*testing.T, *Line) []Event
		armed bool
	}{
		{"a_released_hold", func(t *testing.T, l *Line) []Event { return must(t)(DecideRelease(l, "r1", ReleaseReleased, t0)) }, true},
		{"a_partial_capture_releasing_enough", func(t *testing.T, l *Line) []Event {
			return must(t)(DecideCapture(l, Capture{ReservationID: "r1", Amount: dp("5")}, t0))
		}, true},
		{"a_positive_adjustment", func(t *testing.T, l *Line) []Event {
			return must(t)(DecideAdjust(l, Adjust{AdjustmentID: "a1", Amount: d("10"), Reason: "goodwill"}, t0))
		}, true},
		{"an_adjustment_short_of_the_threshold_does_not_rearm", func(t *testing.T, l *Line) []Event {
			return must(t)(DecideAdjust(l, Adjust{AdjustmentID: "a1", Amount: d("9.999999"), Reason: "goodwill"}, t0))
		}, false},
		{"an_expired_hold", func(t *testing.T, l *Line) []Event { return DecideDue(l, t0.Add(ReservationTTLDefault)) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := setup(t)
			apply(t, l, tt.back(t, l)...)
			if l.ReloadArmed != tt.armed {
				t.Fatalf("armed = %v, want %v (available %s)", l.ReloadArmed, tt.armed, l.Available())
			}
			// Every case is at or below 120 available: 25 more crosses.
			ev := must(t)(DecideUsage(l, RecordUsage{UsageID: "u2", Amount: d("25")}, t0))
			if got := len(reloads(ev)) == 1; got != tt.armed {
				t.Fatalf("the next crossing reloaded = %v, want %v", got, tt.armed)
			}
			apply(t, l, ev...)
		})
	}
}

func TestAutoReloadDoesNotFire(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		line   func(*testing.T) *Line
		decide func(*testing.T, *Line) []Event
	}{
		{"when_disabled", func(t *testing.T) *Line {
			l := lineWith(t, granted("p", "100"))
			apply(t, l, must(t)(DecideConfigureAutoReload(l, ConfigureAutoReload{Threshold: d("50"), Amount: d("10")}))...)
			return l
		}, func(t *testing.T, l *Line) []Event {
			return must(t)(DecideUsage(l, RecordUsage{UsageID: "u", Amount: d("90")}, t0))
		}},
		{"when_never_configured", func(t *testing.T) *Line { return lineWith(t, granted("p", "100")) }, func(t *testing.T, l *Line) []Event {
			return must(t)(DecideUsage(l, RecordUsage{UsageID: "u", Amount: d("100")}, t0))
		}},
		{"for_a_usage_rejected_once_the_crossing_reloaded", func(t *testing.T) *Line {
			l := reloadLine(t, "100", "50", "5")
			apply(t, l, must(t)(DecideUsage(l, RecordUsage{UsageID: "u0", Amount: d("60")}, t0))...)
			return l // 45 free, disarmed by the reload of this crossing
		}, func(t *testing.T, l *Line) []Event {
			return must(t)(DecideUsage(l, RecordUsage{UsageID: "u", Amount: d("45.000001")}, t0))
		}},
		{"for_a_usage_rejected_as_future", func(t *testing.T) *Line { return reloadLine(t, "100", "50", "10") }, func(t *testing.T, l *Line) []Event {
			return must(t)(DecideUsage(l, RecordUsage{UsageID: "u", Amount: d("90"), OccurredAt: t0.Add(time.Hour)}, t0))
		}},
		{"for_a_capture", func(t *testing.T) *Line {
			l := lineWith(t, granted("p", "100"))
			apply(t, l, must(t)(DecideReserve(l, Reserve{ReservationID: "r", Amount: d("90")}, t0))...)
			apply(t, l, must(t)(DecideConfigureAutoReload(l, ConfigureAutoReload{Enabled: true, Threshold: d("50"), Amount: d("10")}))...)
			return l
		}, func(t *testing.T, l *Line) []Event {
			return must(t)(DecideCapture(l, Capture{ReservationID: "r"}, t0))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := tt.line(t)
			ev := tt.decide(t, l)
			if r := reloads(ev); len(r) != 0 {
				t.Fatalf("unexpected reload %+v", r)
			}
			apply(t, l, ev...)
		})
	}
}

func TestAutoReloadSettingChanges(t *testing.T) {
	t.Parallel()
	t.Run("enabling_below_the_threshold_reloads_on_the_next_debit", func(t *testing.T) {
		t.Parallel()
		l := reloadLine(t, "10", "50", "100")
		ev := must(t)(DecideUsage(l, RecordUsage{UsageID: "u", Amount: d("1")}, t0))
		if r := reloads(ev); len(r) != 1 || r[0].GrantID != "auto_reload:usage:u" {
			t.Fatalf("reloads = %+v, want auto_reload:usage:u", r)
		}
		apply(t, l, ev...)
		wantTotals(t, l, "109", "109")
	})
	t.Run("disabling_stops_reloads", func(t *testing.T) {
		t.Parallel()
		l := reloadLine(t, "100", "50", "10")
		apply(t, l, must(t)(DecideConfigureAutoReload(l, ConfigureAutoReload{Enabled: false, Threshold: d("50"), Amount: d("10")}))...)
		if l.ReloadArmed || l.AutoReload.Enabled {
			t.Fatalf("auto-reload = %+v armed %v after disabling", l.AutoReload, l.ReloadArmed)
		}
		ev := must(t)(DecideUsage(l, RecordUsage{UsageID: "u", Amount: d("90")}, t0))
		if r := reloads(ev); len(r) != 0 {
			t.Fatalf("unexpected reload %+v", r)
		}
	})
	t.Run("the_same_setting_again_records_nothing", func(t *testing.T) {
		t.Parallel()
		l := reloadLine(t, "100", "50", "10")
		ev, err := DecideConfigureAutoReload(l, ConfigureAutoReload{Enabled: true, Threshold: d("50.000"), Amount: d("10.0")})
		if err != nil || ev != nil {
			t.Fatalf("DecideConfigureAutoReload = %+v, %v; want nothing", ev, err)
		}
		ev, err = DecideConfigureAutoReload(NewLine(DefaultCreditType), ConfigureAutoReload{})
		if err != nil || ev != nil {
			t.Fatalf("disabling on a fresh line = %+v, %v; want nothing", ev, err)
		}
	})
	t.Run("a_changed_setting_is_recorded", func(t *testing.T) {
		t.Parallel()
		l := reloadLine(t, "100", "50", "10")
		ev := must(t)(DecideConfigureAutoReload(l, ConfigureAutoReload{Enabled: true, Threshold: d("50"), Amount: d("20")}))
		if err := sameValue(ev, []Event{AutoReloadConfigured{Enabled: true, Threshold: d("50"), Amount: d("20")}}); err != nil {
			t.Fatal(err)
		}
		apply(t, l, ev...)
		if !l.AutoReload.Amount.Equal(d("20")) || !l.AutoReload.Threshold.Equal(d("50")) || !l.AutoReload.Enabled {
			t.Fatalf("auto-reload = %+v", l.AutoReload)
		}
	})
	invalid := []struct {
		name string
		c    ConfigureAutoReload
		want []string
	}{
		{"a_negative_threshold", ConfigureAutoReload{Enabled: true, Threshold: d("-1"), Amount: d("1")}, []string{"threshold"}},
		{"a_zero_amount_when_enabled", ConfigureAutoReload{Enabled: true, Threshold: d("1"), Amount: d("0")}, []string{"amount"}},
		{"a_negative_amount_when_disabled", ConfigureAutoReload{Threshold: d("1"), Amount: d("-1")}, []string{"amount"}},
		{"an_amount_with_seven_places", ConfigureAutoReload{Enabled: true, Amount: d("1.0000001")}, []string{"amount"}},
		{"both_at_once", ConfigureAutoReload{Enabled: true, Threshold: d("1e12"), Amount: d("-5")}, []string{"threshold", "amount"}},
	}
	for _, tt := range invalid {
		t.Run("refuses_"+tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := DecideConfigureAutoReload(NewLine(DefaultCreditType), tt.c)
			if ev != nil {
				t.Errorf("events = %+v, want none", ev)
			}
			wantFieldErrors(t, err, tt.want...)
		})
	}
	t.Run("a_zero_amount_is_fine_when_disabled", func(t *testing.T) {
		t.Parallel()
		if err := (ConfigureAutoReload{Threshold: d("5")}).Validate(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAutoReloadFiresBeforeAUsageTheLineCannotPay(t *testing.T) {
	t.Parallel()
	// An armed reload fires first, and the debit is decided against the
	// reloaded line: a line that fell to zero without a debit is not stuck.
	l := reloadLine(t, "10", "5", "1000")
	ev := must(t)(DecideUsage(l, RecordUsage{UsageID: "u", Amount: d("11")}, t0))
	if len(ev) != 2 {
		t.Fatalf("events = %+v, want the reload then the debit", ev)
	}
	if g, ok := ev[0].(CreditsGranted); !ok || g.GrantID != "auto_reload:usage:u" {
		t.Fatalf("first event = %+v, want the reload", ev[0])
	}
	if u, ok := ev[1].(UsageDebited); !ok || !u.Amount.Equal(d("11")) {
		t.Fatalf("second event = %+v, want the debit", ev[1])
	}
	apply(t, l, ev...)
	wantTotals(t, l, "999", "999")
	if !l.ReloadArmed {
		t.Fatal("back above the threshold, the reload is armed again")
	}
}

func TestDecideConfigureLine(t *testing.T) {
	t.Parallel()
	t.Run("an_overdraft_limit_is_recorded_and_applied", func(t *testing.T) {
		t.Parallel()
		l := NewLine(DefaultCreditType)
		ev := must(t)(DecideConfigureLine(l, ConfigureLine{OverdraftLimit: d("25")}))
		if err := sameValue(ev, []Event{CreditLineConfigured{OverdraftLimit: d("25")}}); err != nil {
			t.Fatal(err)
		}
		apply(t, l, ev...)
		wantDec(t, "overdraft", l.OverdraftLimit, "25")
		wantDec(t, "spendable", l.Spendable(t0), "25")
		wantTotals(t, l, "0", "0")
	})
	t.Run("the_same_limit_again_records_nothing", func(t *testing.T) {
		t.Parallel()
		l := lineWith(t, CreditLineConfigured{OverdraftLimit: d("25")})
		if ev, err := DecideConfigureLine(l, ConfigureLine{OverdraftLimit: d("25.00")}); ev != nil || err != nil {
			t.Fatalf("DecideConfigureLine = %+v, %v; want nothing", ev, err)
		}
		if ev, err := DecideConfigureLine(NewLine(DefaultCreditType), ConfigureLine{}); ev != nil || err != nil {
			t.Fatalf("zero limit on a fresh line = %+v, %v; want nothing", ev, err)
		}
	})
	t.Run("lowering_the_limit_below_the_debt_is_allowed", func(t *testing.T) {
		t.Parallel()
		l := lineWith(t, CreditLineConfigured{OverdraftLimit: d("25")}, UsageDebited{UsageID: "u", Amount: d("20")})
		apply(t, l, must(t)(DecideConfigureLine(l, ConfigureLine{OverdraftLimit: d("0")}))...)
		wantDec(t, "spendable", l.Spendable(t0), "-20")
		wantTotals(t, l, "-20", "-20")
	})
	for _, bad := range []string{"-1", "1.0000001", "1e12"} {
		t.Run("refuses_an_overdraft_limit_of_"+bad, func(t *testing.T) {
			t.Parallel()
			ev, err := DecideConfigureLine(NewLine(DefaultCreditType), ConfigureLine{OverdraftLimit: d(bad)})
			if ev != nil {
				t.Errorf("events = %+v, want none", ev)
			}
			wantFieldErrors(t, err, "overdraft_limit")
		})
	}
}
