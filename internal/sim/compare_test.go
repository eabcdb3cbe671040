package sim

import (
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// The checks must fail when the engine is wrong: each difference below is
// one the comparison has to report.

func TestCompareAnswerReportsEveryDifference(t *testing.T) {
	base := func() Answer {
		return Answer{Status: StatusAccepted, Detailed: true, Amount: d("12.5"), Released: d("2"),
			Parts: map[string]decimal.Decimal{"g1": d("10"), "g2": d("2.5")}, Reload: d("50"),
			ExpiresAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	}
	cases := []struct {
		name   string
		change func(*Answer)
	}{
		{"another_status", func(a *Answer) { a.Status = StatusDuplicate }},
		{"a_refusal", func(a *Answer) { a.Status, a.Reason = StatusRefused, ReasonInsufficient }},
		{"another_reason", func(a *Answer) { a.Reason = ReasonClosed }},
		{"another_amount", func(a *Answer) { a.Amount = d("12.51") }},
		{"another_release", func(a *Answer) { a.Released = d("1.99") }},
		{"another_grant_paid", func(a *Answer) { a.Parts = map[string]decimal.Decimal{"g1": d("10"), "g3": d("2.5")} }},
		{"a_grant_paid_another_amount", func(a *Answer) { a.Parts = map[string]decimal.Decimal{"g1": d("9"), "g2": d("3.5")} }},
		{"one_grant_more", func(a *Answer) { a.Parts["g3"] = d("0.01") }},
		{"one_grant_less", func(a *Answer) { delete(a.Parts, "g2") }},
		{"no_reload", func(a *Answer) { a.Reload = decimal.Zero }},
		{"another_hold_end", func(a *Answer) { a.ExpiresAt = a.ExpiresAt.Add(time.Microsecond) }},
		{"other_pins", func(a *Answer) { a.Pins = map[string]decimal.Decimal{"g1": d("1")} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			engine := base()
			c.change(&engine)
			if diff := compareAnswer(OpUsage, base(), engine, false); diff == "" {
				t.Fatalf("model %s and engine %s compare equal", base(), engine)
			}
		})
	}
	t.Run("equal_answers_agree", func(t *testing.T) {
		engine := base()
		engine.Parts["g9"] = decimal.Zero // a grant that paid nothing is no difference
		if diff := compareAnswer(OpUsage, base(), engine, false); diff != "" {
			t.Fatal(diff)
		}
	})
	t.Run("a_duplicate_is_wrong_without_a_fault", func(t *testing.T) {
		if diff := compareAnswer(OpUsage, base(), Answer{Status: StatusDuplicate}, false); diff == "" {
			t.Fatal("a duplicate answer to a first request compares equal")
		}
	})
	t.Run("a_retried_write_may_come_back_as_its_own_duplicate", func(t *testing.T) {
		if diff := compareAnswer(OpUsage, base(), Answer{Status: StatusDuplicate}, true); diff != "" {
			t.Fatal(diff)
		}
		if diff := compareAnswer(OpUsage, base(), Answer{Status: StatusDuplicate, Reason: ReasonInsufficient}, true); diff == "" {
			t.Fatal("a retry answering another outcome compares equal")
		}
	})
}

func TestDiffStatesReportsEveryDifference(t *testing.T) {
	base := func() LineState {
		return LineState{Granted: d("100"), Used: d("30"), Expired: d("5"), Adjusted: d("-5"), Reserved: d("10"),
			Balance: d("60"), Available: d("50"), Unallocated: d("-5"), Overdraft: d("20"),
			Grants: map[string]GrantState{"g1": {Amount: d("100"), Remaining: d("65")}},
			Holds:  map[string]decimal.Decimal{"r1": d("10")}}
	}
	cases := map[string]func(*LineState){
		"granted":           func(s *LineState) { s.Granted = d("100.01") },
		"used":              func(s *LineState) { s.Used = d("29") },
		"expired":           func(s *LineState) { s.Expired = d("0") },
		"adjusted":          func(s *LineState) { s.Adjusted = d("5") },
		"reserved":          func(s *LineState) { s.Reserved = d("0") },
		"balance":           func(s *LineState) { s.Balance = d("61") },
		"available":         func(s *LineState) { s.Available = d("49") },
		"unallocated":       func(s *LineState) { s.Unallocated = d("0") },
		"overdraft":         func(s *LineState) { s.Overdraft = d("0") },
		"a_grant_remaining": func(s *LineState) { s.Grants["g1"] = GrantState{Amount: d("100"), Remaining: d("64")} },
		"a_grant_missing":   func(s *LineState) { delete(s.Grants, "g1") },
		"a_grant_extra":     func(s *LineState) { s.Grants["g2"] = GrantState{Amount: d("1"), Remaining: d("1")} },
		"a_hold_amount":     func(s *LineState) { s.Holds["r1"] = d("9") },
		"a_hold_missing":    func(s *LineState) { delete(s.Holds, "r1") },
		"a_hold_extra":      func(s *LineState) { s.Holds["r2"] = d("1") },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			engine := base()
			change(&engine)
			if diffs := diffStates(base(), engine); len(diffs) == 0 {
				t.Fatal("states compare equal")
			}
		})
	}
	if diffs := diffStates(base(), base()); len(diffs) > 0 {
		t.Fatalf("equal states differ: %v", diffs)
	}
}

func TestCheckInvariantsReportsBrokenLines(t *testing.T) {
	good := func() LineState {
		return LineState{Granted: d("100"), Used: d("30"), Reserved: d("10"), Balance: d("70"), Available: d("60"),
			Unallocated: d("-10"), Grants: map[string]GrantState{"g1": {Amount: d("100"), Remaining: d("80")}},
			Holds: map[string]decimal.Decimal{"r1": d("10")}}
	}
	if broken := checkInvariants(good(), false); len(broken) > 0 {
		t.Fatalf("a sound line breaks: %v", broken)
	}
	cases := map[string]func(*LineState){
		"remaining_above_amount": func(s *LineState) {
			s.Grants["g1"] = GrantState{Amount: d("100"), Remaining: d("101")}
			s.Unallocated = d("-31")
		},
		"totals_identity":                    func(s *LineState) { s.Used = d("31") },
		"grants_identity":                    func(s *LineState) { s.Unallocated = d("0") },
		"reserved_is_the_holds":              func(s *LineState) { s.Holds["r2"] = d("1") },
		"available_is_balance_less_reserved": func(s *LineState) { s.Available = d("70") },
		"available_below_overdraft": func(s *LineState) {
			// Issue 12's customer who pays 180 for 100.
			*s = LineState{Granted: d("100"), Used: d("80"), Expired: d("100"), Balance: d("-80"), Available: d("-80"),
				Unallocated: d("-80"), Grants: map[string]GrantState{}, Holds: map[string]decimal.Decimal{}}
		},
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			s := good()
			change(&s)
			if broken := checkInvariants(s, false); len(broken) == 0 {
				t.Fatal("the broken line passes")
			}
		})
	}
}

// baseline are the features left out of the corruption tests, so they run
// fast: a seed without them passes, so any failure below is the corruption's.
var baseline = map[string]bool{FeatureExpiry: true, FeatureSubscription: true, FeatureReservation: true, FeatureAutoReload: true,
	FeatureRepeat: true, FeatureHuge: true, FeatureInvalid: true, FeatureReverse: true}

func TestSimulationFailsOnAWrongEngine(t *testing.T) {
	run := func(cfg Config) *Failure {
		cfg.Seed, cfg.Without, cfg.Steps = 3, baseline, 80
		return Run(t.Context(), t.TempDir(), cfg)
	}
	t.Run("control", func(t *testing.T) {
		if f := run(Config{}); f != nil {
			t.Skipf("the engine fails the baseline itself, so the corruptions prove nothing here:\n%v", f)
		}
	})
	t.Run("a_debit_off_by_a_hundredth", func(t *testing.T) {
		f := run(Config{corruptAnswer: func(op Op, answers []Answer) {
			for i := range answers {
				if op.Kind == OpUsage && answers[i].Status == StatusAccepted && answers[i].Amount.IsPositive() {
					answers[i].Amount = answers[i].Amount.Add(d("0.01"))
				}
			}
		}})
		if f == nil || f.Check != "answer" || !strings.Contains(f.Detail, "amount") {
			t.Fatalf("failure %v, want an answer mismatch on the amount", f)
		}
		if !strings.Contains(f.Error(), "CREDITD_SIM_SEED=3 ") {
			t.Fatalf("the failure does not say how to reproduce it:\n%v", f)
		}
	})
	t.Run("a_refusal_turned_into_an_acceptance", func(t *testing.T) {
		f := run(Config{corruptAnswer: func(op Op, answers []Answer) {
			for i := range answers {
				if answers[i].Status == StatusRefused {
					answers[i] = Answer{Status: StatusAccepted}
				}
			}
		}})
		if f == nil || f.Check != "answer" {
			t.Fatalf("failure %v, want an answer mismatch", f)
		}
	})
	t.Run("a_line_showing_a_credit_too_many", func(t *testing.T) {
		f := run(Config{corruptState: func(tenant int, line string, s *LineState) {
			if tenant == 0 && line == defaultLine && s.Granted.IsPositive() {
				s.Unallocated = s.Unallocated.Add(d("1"))
			}
		}})
		if f == nil || f.Check != "state" || !strings.Contains(f.Detail, "unallocated") {
			t.Fatalf("failure %v, want a state mismatch on unallocated", f)
		}
	})
}
