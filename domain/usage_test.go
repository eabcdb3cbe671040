package domain

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecideUsageBurnsGrantsInOrder(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	tests := []struct {
		name      string
		setup     []Event
		amount    string
		burns     []Burn
		remaining map[string]string
		unalloc   string
	}{
		{
			name:      "lower_priority_value_pays_first",
			setup:     []Event{granted("p2", "10", priority(2)), granted("p1", "10", priority(1))},
			amount:    "15",
			burns:     []Burn{burn("p1", "10"), burn("p2", "5")},
			remaining: map[string]string{"p1": "0", "p2": "5"},
			unalloc:   "0",
		},
		{
			name:      "earliest_expiry_pays_first",
			setup:     []Event{granted("never", "10"), granted("in2d", "10", expiresAt(t0.Add(2*day))), granted("in1d", "10", expiresAt(t0.Add(day)))},
			amount:    "25",
			burns:     []Burn{burn("in1d", "10"), burn("in2d", "10"), burn("never", "5")},
			remaining: map[string]string{"in1d": "0", "in2d": "0", "never": "5"},
			unalloc:   "0",
		},
		{
			name:      "earliest_grant_pays_first_on_ties",
			setup:     []Event{granted("a", "10"), granted("b", "10")},
			amount:    "12.5",
			burns:     []Burn{burn("a", "10"), burn("b", "2.5")},
			remaining: map[string]string{"a": "0", "b": "7.5"},
			unalloc:   "0",
		},
		{
			name:      "priority_beats_an_earlier_expiry",
			setup:     []Event{granted("soon_p1", "10", priority(1), expiresAt(t0.Add(time.Hour))), granted("never_p0", "10")},
			amount:    "4",
			burns:     []Burn{burn("never_p0", "4")},
			remaining: map[string]string{"soon_p1": "10", "never_p0": "6"},
			unalloc:   "0",
		},
		{
			name:      "a_grant_not_yet_effective_is_skipped",
			setup:     []Event{granted("future_p0", "10", effectiveAt(t0.Add(time.Hour))), granted("now_p1", "10", priority(1))},
			amount:    "3",
			burns:     []Burn{burn("now_p1", "3")},
			remaining: map[string]string{"future_p0": "10", "now_p1": "7"},
			unalloc:   "0",
		},
		{
			name:      "grants_pay_before_unallocated_credits",
			setup:     []Event{CreditsAdjusted{AdjustmentID: "a1", Amount: d("5"), Reason: "gift"}, granted("g", "10")},
			amount:    "12",
			burns:     []Burn{burn("g", "10")},
			remaining: map[string]string{"g": "0"},
			unalloc:   "3",
		},
		{
			name:      "a_debit_covered_by_the_first_grant_touches_no_other",
			setup:     []Event{granted("a", "10"), granted("b", "10")},
			amount:    "10",
			burns:     []Burn{burn("a", "10")},
			remaining: map[string]string{"a": "0", "b": "10"},
			unalloc:   "0",
		},
		{
			name:      "micro_credits_are_burned_exactly",
			setup:     []Event{granted("a", "0.000003"), granted("b", "1")},
			amount:    "0.000005",
			burns:     []Burn{burn("a", "0.000003"), burn("b", "0.000002")},
			remaining: map[string]string{"a": "0", "b": "0.999998"},
			unalloc:   "0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := lineWith(t, tt.setup...)
			before := l.Balance()
			ev := must(t)(DecideUsage(l, RecordUsage{UsageID: "u1", Amount: d(tt.amount)}, t0))
			if len(ev) != 1 {
				t.Fatalf("events = %+v, want one UsageDebited", ev)
			}
			u, ok := ev[0].(UsageDebited)
			if !ok {
				t.Fatalf("event = %T %+v, want UsageDebited", ev[0], ev[0])
			}
			wantBurns(t, u.Burned, tt.burns...)
			apply(t, l, ev...)
			for id, want := range tt.remaining {
				wantRemaining(t, l, id, want)
			}
			wantDec(t, "unallocated", l.Unallocated, tt.unalloc)
			wantDec(t, "used", l.Used, tt.amount)
			wantDec(t, "balance", l.Balance(), before.Sub(d(tt.amount)).String())
		})
	}
}

func TestDecideUsageAcceptsOrRejects(t *testing.T) {
	t.Parallel()
	hold := CreditsReserved{ReservationID: "r1", Amount: d("4"), ExpiresAt: t0.Add(time.Hour)}
	tests := []struct {
		name       string
		setup      []Event
		amount     string
		occurredAt time.Time
		reason     string // "" when accepted
	}{
		{"usage_within_spendable_is_accepted", []Event{granted("g", "10")}, "7", time.Time{}, ""},
		{"usage_of_exactly_spendable_is_accepted", []Event{granted("g", "10")}, "10", time.Time{}, ""},
		{"usage_one_micro_credit_over_spendable_is_rejected", []Event{granted("g", "10")}, "10.000001", time.Time{}, RejectInsufficientCredits},
		{"usage_on_an_empty_line_is_rejected", nil, "1", time.Time{}, RejectInsufficientCredits},
		{"zero_usage_on_an_empty_line_is_accepted", nil, "0", time.Time{}, ""},
		{"held_credits_cannot_be_used", []Event{granted("g", "10"), hold}, "6.000001", time.Time{}, RejectInsufficientCredits},
		{"credits_beside_the_hold_can_be_used", []Event{granted("g", "10"), hold}, "6", time.Time{}, ""},
		{"the_overdraft_limit_extends_what_may_be_used", []Event{granted("g", "10"), CreditLineConfigured{OverdraftLimit: d("5")}}, "15", time.Time{}, ""},
		{"usage_beyond_the_overdraft_limit_is_rejected", []Event{granted("g", "10"), CreditLineConfigured{OverdraftLimit: d("5")}}, "15.000001", time.Time{}, RejectInsufficientCredits},
		{"unallocated_credits_can_be_used", []Event{CreditsAdjusted{AdjustmentID: "a", Amount: d("2"), Reason: "gift"}}, "2", time.Time{}, ""},
		{"an_expired_but_unswept_grant_cannot_pay", []Event{granted("g", "10", expiresAt(t0))}, "1", time.Time{}, RejectInsufficientCredits},
		{"occurred_at_exactly_five_minutes_ahead_is_accepted", []Event{granted("g", "10")}, "1", t0.Add(FutureSkewMax), ""},
		{"occurred_at_more_than_five_minutes_ahead_is_rejected", []Event{granted("g", "10")}, "1", t0.Add(FutureSkewMax + time.Nanosecond), RejectOccurredInFuture},
		{"a_future_usage_is_rejected_for_the_future_before_the_balance", nil, "1", t0.Add(time.Hour), RejectOccurredInFuture},
		{"usage_that_occurred_long_ago_is_accepted", []Event{granted("g", "10")}, "1", t0.AddDate(-1, 0, 0), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := lineWith(t, tt.setup...)
			spendable := l.Spendable(t0)
			c := RecordUsage{UsageID: "u1", Amount: d(tt.amount), OccurredAt: tt.occurredAt,
				Dimensions: Dimensions{Module: "chat", Success: true, Quantity: d("3")}, Description: "tokens"}
			ev := must(t)(DecideUsage(l, c, t0))
			if len(ev) != 1 {
				t.Fatalf("events = %+v, want exactly one", ev)
			}
			wantOccurred := tt.occurredAt
			if wantOccurred.IsZero() {
				wantOccurred = t0
			}
			if tt.reason == "" {
				u, ok := ev[0].(UsageDebited)
				if !ok {
					t.Fatalf("event = %+v, want UsageDebited", ev[0])
				}
				want := UsageDebited{UsageID: "u1", Amount: d(tt.amount), OccurredAt: wantOccurred, Dimensions: c.Dimensions,
					Description: "tokens", Burned: u.Burned, Fingerprint: c.Fingerprint()}
				if err := sameValue(u, want); err != nil {
					t.Fatal(err)
				}
				apply(t, l, ev...)
				wantDec(t, "spendable after", l.Spendable(t0), spendable.Sub(d(tt.amount)).String())
				wantDec(t, "used", l.Used, tt.amount)
				return
			}
			r, ok := ev[0].(DebitRejected)
			if !ok {
				t.Fatalf("event = %+v, want DebitRejected", ev[0])
			}
			want := DebitRejected{UsageID: "u1", Amount: d(tt.amount), OccurredAt: wantOccurred, Dimensions: c.Dimensions,
				Reason: tt.reason, Fingerprint: c.Fingerprint()}
			if err := sameValue(r, want); err != nil {
				t.Fatal(err)
			}
			before := snap(l)
			apply(t, l, ev...)
			if after := snap(l); after != before {
				t.Fatalf("a rejected debit moved credits:\n got %+v\nwant %+v", after, before)
			}
		})
	}
}

func TestZeroUsageMovesNothing(t *testing.T) {
	t.Parallel()
	l := lineWith(t, granted("g", "10"))
	ev := must(t)(DecideUsage(l, RecordUsage{UsageID: "u0", Amount: d("0")}, t0))
	u, ok := ev[0].(UsageDebited)
	if len(ev) != 1 || !ok {
		t.Fatalf("events = %+v, want one UsageDebited", ev)
	}
	wantBurns(t, u.Burned)
	apply(t, l, ev...)
	wantTotals(t, l, "10", "10")
	wantRemaining(t, l, "g", "10")
}

func TestLateUsageIsChargedToGrantsActiveNow(t *testing.T) {
	t.Parallel()
	// "old" paid until t0+1h; "new" pays from t0+2h. The debit is decided at
	// t0+3h for usage that occurred at t0+30m, while "old" was active.
	setup := []Event{
		granted("old", "10", expiresAt(t0.Add(time.Hour))),
		granted("new", "10", effectiveAt(t0.Add(2*time.Hour))),
	}
	now := t0.Add(3 * time.Hour)
	occurred := t0.Add(30 * time.Minute)

	t.Run("the_grant_active_now_pays_not_the_one_active_when_it_occurred", func(t *testing.T) {
		t.Parallel()
		l := lineWith(t, setup...)
		ev := must(t)(DecideUsage(l, RecordUsage{UsageID: "late", Amount: d("4"), OccurredAt: occurred}, now))
		u, ok := ev[0].(UsageDebited)
		if !ok {
			t.Fatalf("event = %+v, want UsageDebited", ev[0])
		}
		wantBurns(t, u.Burned, burn("new", "4"))
		if !u.OccurredAt.Equal(occurred) {
			t.Errorf("occurred_at = %s, want %s (kept for the statistics)", u.OccurredAt, occurred)
		}
		apply(t, l, ev...)
		wantRemaining(t, l, "old", "10")
		wantRemaining(t, l, "new", "6")
	})
	t.Run("what_only_the_expired_grant_could_have_paid_is_rejected", func(t *testing.T) {
		t.Parallel()
		l := lineWith(t, setup...)
		ev := must(t)(DecideUsage(l, RecordUsage{UsageID: "late", Amount: d("10.000001"), OccurredAt: occurred}, now))
		if r, ok := ev[0].(DebitRejected); !ok || r.Reason != RejectInsufficientCredits {
			t.Fatalf("events = %+v, want DebitRejected insufficient_credits", ev)
		}
	})
	t.Run("a_grant_effective_after_occurred_at_still_pays", func(t *testing.T) {
		t.Parallel()
		l := lineWith(t, granted("new", "10", effectiveAt(t0.Add(2*time.Hour))))
		ev := must(t)(DecideUsage(l, RecordUsage{UsageID: "late", Amount: d("1"), OccurredAt: t0}, now))
		if u, ok := ev[0].(UsageDebited); !ok {
			t.Fatalf("events = %+v, want UsageDebited", ev)
		} else {
			wantBurns(t, u.Burned, burn("new", "1"))
		}
	})
}

func TestDecideUsageStoresOccurredAtInUTC(t *testing.T) {
	t.Parallel()
	tokyo := time.FixedZone("JST", 9*3600)
	l := lineWith(t, granted("g", "10"))
	occurred := t0.Add(-time.Minute).In(tokyo)
	for _, amount := range []string{"1", "11"} { // accepted and rejected
		ev := must(t)(DecideUsage(l, RecordUsage{UsageID: "u", Amount: d(amount), OccurredAt: occurred}, t0))
		var got time.Time
		switch e := ev[0].(type) {
		case UsageDebited:
			got = e.OccurredAt
		case DebitRejected:
			got = e.OccurredAt
		}
		if got.Location() != time.UTC || !got.Equal(occurred) {
			t.Errorf("amount %s: occurred_at = %s, want %s in UTC", amount, got, occurred)
		}
	}
}

func TestDecideUsageOverdraftLeavesDebt(t *testing.T) {
	t.Parallel()
	l := lineWith(t, granted("g", "10"))
	apply(t, l, must(t)(DecideConfigureLine(l, ConfigureLine{OverdraftLimit: d("5")}))...)
	ev := must(t)(DecideUsage(l, RecordUsage{UsageID: "u1", Amount: d("13")}, t0))
	u := ev[0].(UsageDebited)
	wantBurns(t, u.Burned, burn("g", "10"))
	apply(t, l, ev...)
	wantTotals(t, l, "-3", "-3")
	wantDec(t, "unallocated", l.Unallocated, "-3")
	wantDec(t, "spendable", l.Spendable(t0), "2")

	next := must(t)(DecideUsage(l, RecordUsage{UsageID: "u2", Amount: d("2.000001")}, t0))
	if r, ok := next[0].(DebitRejected); !ok || r.Reason != RejectInsufficientCredits {
		t.Fatalf("events = %+v, want DebitRejected insufficient_credits", next)
	}
	// A grant pays the debt back before it can be spent.
	apply(t, l, granted("g2", "4"))
	wantTotals(t, l, "1", "1")
	wantDec(t, "spendable", l.Spendable(t0), "6")
}

func TestDecideUsageRefusesMalformedCommands(t *testing.T) {
	t.Parallel()
	custom := map[string]string{}
	for i := range CustomKeysMax + 1 {
		custom["k"+itoa(i)] = "v"
	}
	long := func(n int) string { return strings.Repeat("x", n) }
	ok := RecordUsage{UsageID: "u1", Amount: d("1")}
	with := func(f func(*RecordUsage)) RecordUsage {
		c := ok
		f(&c)
		return c
	}
	tests := []struct {
		name string
		c    RecordUsage
		want []string
	}{
		{"a_missing_id", with(func(c *RecordUsage) { c.UsageID = "" }), []string{"id"}},
		{"an_id_longer_than_128_bytes", with(func(c *RecordUsage) { c.UsageID = long(IDLengthMax + 1) }), []string{"id"}},
		{"an_id_that_is_not_utf8", with(func(c *RecordUsage) { c.UsageID = "\xff" }), []string{"id"}},
		{"an_amount_with_seven_decimal_places", with(func(c *RecordUsage) { c.Amount = d("1.0000001") }), []string{"amount"}},
		{"a_negative_amount", with(func(c *RecordUsage) { c.Amount = d("-1") }), []string{"amount"}},
		{"an_amount_of_10^12", with(func(c *RecordUsage) { c.Amount = d("1e12") }), []string{"amount"}},
		{"a_long_module", with(func(c *RecordUsage) { c.Dimensions.Module = long(DimensionLengthMax + 1) }), []string{"module"}},
		{"a_long_service", with(func(c *RecordUsage) { c.Dimensions.Service = long(DimensionLengthMax + 1) }), []string{"service"}},
		{"a_long_user_id", with(func(c *RecordUsage) { c.Dimensions.UserID = long(DimensionLengthMax + 1) }), []string{"user_id"}},
		{"a_long_workflow_id", with(func(c *RecordUsage) { c.Dimensions.WorkflowID = long(DimensionLengthMax + 1) }), []string{"workflow_id"}},
		{"a_long_workflow_run_id", with(func(c *RecordUsage) { c.Dimensions.WorkflowRunID = long(DimensionLengthMax + 1) }), []string{"workflow_run_id"}},
		{"an_endpoint_that_is_not_utf8", with(func(c *RecordUsage) { c.Dimensions.Endpoint = "/v1/\xc3" }), []string{"endpoint"}},
		{"a_negative_quantity", with(func(c *RecordUsage) { c.Dimensions.Quantity = d("-1") }), []string{"quantity"}},
		{"a_quantity_with_seven_decimal_places", with(func(c *RecordUsage) { c.Dimensions.Quantity = d("0.0000001") }), []string{"quantity"}},
		{"too_many_custom_keys", with(func(c *RecordUsage) { c.Dimensions.Custom = custom }), []string{"custom"}},
		{"a_long_custom_key", with(func(c *RecordUsage) { c.Dimensions.Custom = map[string]string{long(CustomKeyLengthMax + 1): "v"} }), []string{"custom." + long(CustomKeyLengthMax+1)}},
		{"a_long_custom_value", with(func(c *RecordUsage) {
			c.Dimensions.Custom = map[string]string{"region": long(CustomValueLengthMax + 1)}
		}), []string{"custom.region"}},
		{"an_empty_custom_key", with(func(c *RecordUsage) { c.Dimensions.Custom = map[string]string{"": "v"} }), []string{"custom"}},
		{"a_custom_value_that_is_not_utf8", with(func(c *RecordUsage) { c.Dimensions.Custom = map[string]string{"region": "e\xffu"} }), []string{"custom.region"}},
		{"a_custom_key_that_is_not_utf8", with(func(c *RecordUsage) { c.Dimensions.Custom = map[string]string{"re\xc3": "eu"} }), []string{"custom.re\xc3", "custom.re\xc3"}},
		{"a_custom_key_with_a_space", with(func(c *RecordUsage) { c.Dimensions.Custom = map[string]string{"a b": "eu"} }), []string{"custom.a b"}},
		{"one_bad_entry_among_good_ones", with(func(c *RecordUsage) {
			c.Dimensions.Custom = map[string]string{"region": "eu", "tier": long(CustomValueLengthMax + 1), "plan": "pro"}
		}), []string{"custom.tier"}},
		{"a_long_description", with(func(c *RecordUsage) { c.Description = long(TextLengthMax + 1) }), []string{"description"}},
		{"every_problem_at_once_in_field_order", RecordUsage{Amount: d("0.12345678"), Description: long(TextLengthMax + 1),
			Dimensions: Dimensions{Module: long(DimensionLengthMax + 1), Quantity: d("-2")}}, []string{"id", "amount", "module", "quantity", "description"}},
	}
	for _, tt := range tests {
		t.Run("refuses_"+tt.name, func(t *testing.T) {
			t.Parallel()
			l := lineWith(t, granted("g", "100"))
			before := snap(l)
			ev, err := DecideUsage(l, tt.c, t0)
			if ev != nil {
				t.Errorf("events = %+v, want none for a malformed command", ev)
			}
			wantFieldErrors(t, err, tt.want...)
			if after := snap(l); after != before {
				t.Errorf("deciding changed the line")
			}
		})
	}
	t.Run("limits_themselves_are_accepted", func(t *testing.T) {
		t.Parallel()
		c := RecordUsage{UsageID: long(IDLengthMax), Amount: d("0.000001"), Description: long(TextLengthMax),
			Dimensions: Dimensions{Module: long(DimensionLengthMax), Quantity: d("999999999999.999999"),
				Custom: map[string]string{long(CustomKeyLengthMax): long(CustomValueLengthMax)}}}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestFieldErrors(t *testing.T) {
	t.Parallel()
	a := &FieldError{Location: "a", Message: "bad"}
	b := &FieldError{Location: "b", Message: "worse"}
	tests := []struct {
		name string
		err  error
		want []string
	}{
		{"nil_has_no_field_errors", nil, nil},
		{"a_single_field_error", a, []string{"a"}},
		{"joined_field_errors_in_order", errors.Join(a, b), []string{"a", "b"}},
		{"a_wrapped_field_error", fmt.Errorf("context: %w", a), []string{"a"}},
		{"nested_joins_are_flattened", errors.Join(errors.Join(a), b), []string{"a", "b"}},
		{"a_business_error_has_none", ErrInsufficientCredits, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := locations(tt.err)
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("locations = %q, want %q", got, tt.want)
			}
		})
	}
	if a.Error() != "a: bad" {
		t.Errorf("Error() = %q", a.Error())
	}
}

// A CheckedUsage made as a literal, not by Check, is validated when it is
// decided: the type does not let a malformed command through.
func TestDecideCheckedUsageChecksALiteral(t *testing.T) {
	t.Parallel()
	l := NewLine("default")
	if _, err := DecideCheckedUsage(l, CheckedUsage{RecordUsage: RecordUsage{UsageID: "", Amount: d("1")}}, t0); err == nil {
		t.Fatal("a literal without an id was decided")
	}
	c := RecordUsage{UsageID: "u", Amount: d("0")}
	checked, err := c.Check()
	if err != nil {
		t.Fatal(err)
	}
	viaCheck, _ := DecideCheckedUsage(l, checked, t0)
	viaLiteral, err := DecideCheckedUsage(l, CheckedUsage{RecordUsage: c}, t0)
	if err != nil || len(viaCheck) != 1 || !reflect.DeepEqual(viaCheck, viaLiteral) {
		t.Fatalf("checked %v, literal %v %v", viaCheck, viaLiteral, err)
	}
}
