package domain

import (
	"strings"
	"testing"
	"time"
)

func TestDecideAdjust(t *testing.T) {
	t.Parallel()
	gift := CreditsAdjusted{AdjustmentID: "a0", Amount: d("10"), Reason: "gift"}
	tests := []struct {
		name      string
		setup     []Event
		amount    string
		burns     []Burn
		unalloc   string
		remaining map[string]string
		balance   string
	}{
		{
			name:    "a_positive_adjustment_adds_unallocated_credits",
			setup:   []Event{granted("g", "20")},
			amount:  "25.5",
			unalloc: "25.5", remaining: map[string]string{"g": "20"}, balance: "45.5",
		},
		{
			name:    "a_negative_adjustment_takes_from_unallocated_first",
			setup:   []Event{gift, granted("g", "20")},
			amount:  "-4",
			unalloc: "6", remaining: map[string]string{"g": "20"}, balance: "26",
		},
		{
			name:    "a_negative_adjustment_of_exactly_the_unallocated_touches_no_grant",
			setup:   []Event{gift, granted("g", "20")},
			amount:  "-10",
			unalloc: "0", remaining: map[string]string{"g": "20"}, balance: "20",
		},
		{
			name:    "then_from_grants_in_burn_down_order",
			setup:   []Event{gift, granted("p1", "20", priority(1)), granted("p0", "5")},
			amount:  "-18",
			burns:   []Burn{burn("p0", "5"), burn("p1", "3")},
			unalloc: "0", remaining: map[string]string{"p0": "0", "p1": "17"}, balance: "17",
		},
		{
			name:    "grants_expiring_first_are_taken_first",
			setup:   []Event{granted("never", "5"), granted("soon", "5", expiresAt(t0.Add(time.Hour)))},
			amount:  "-6",
			burns:   []Burn{burn("soon", "5"), burn("never", "1")},
			unalloc: "0", remaining: map[string]string{"soon": "0", "never": "4"}, balance: "4",
		},
		{
			name:    "it_may_leave_the_balance_negative",
			setup:   []Event{gift, granted("g", "5")},
			amount:  "-22",
			burns:   []Burn{burn("g", "5")},
			unalloc: "-7", remaining: map[string]string{"g": "0"}, balance: "-7",
		},
		{
			name:    "it_may_take_an_empty_line_negative",
			amount:  "-3",
			unalloc: "-3", balance: "-3",
		},
		{
			name:    "existing_debt_is_not_counted_as_credits",
			setup:   []Event{CreditLineConfigured{OverdraftLimit: d("10")}, UsageDebited{UsageID: "u", Amount: d("4")}, granted("g", "5")},
			amount:  "-2",
			burns:   []Burn{burn("g", "2")},
			unalloc: "-4", remaining: map[string]string{"g": "3"}, balance: "-1",
		},
		{
			name:    "grants_that_cannot_pay_now_are_not_taken",
			setup:   []Event{granted("future", "10", effectiveAt(t0.Add(time.Hour))), granted("expired", "10", expiresAt(t0))},
			amount:  "-3",
			unalloc: "-3", remaining: map[string]string{"future": "10", "expired": "10"}, balance: "17",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := lineWith(t, tt.setup...)
			c := Adjust{AdjustmentID: "a1", Amount: d(tt.amount), Reason: "correction", Reference: "ticket-7"}
			adjustedBefore := l.Adjusted
			ev := must(t)(DecideAdjust(l, c, t0))
			if len(ev) != 1 {
				t.Fatalf("events = %+v, want one CreditsAdjusted", ev)
			}
			got := ev[0].(CreditsAdjusted)
			want := CreditsAdjusted{AdjustmentID: "a1", Amount: d(tt.amount), Reason: "correction", Reference: "ticket-7",
				Burned: got.Burned, Fingerprint: c.Fingerprint()}
			if err := sameValue(got, want); err != nil {
				t.Fatal(err)
			}
			wantBurns(t, got.Burned, tt.burns...)
			apply(t, l, ev...)
			wantDec(t, "unallocated", l.Unallocated, tt.unalloc)
			wantDec(t, "balance", l.Balance(), tt.balance)
			wantDec(t, "adjusted", l.Adjusted, adjustedBefore.Add(d(tt.amount)).String())
			wantDec(t, "used", l.Used, usedOf(tt.setup))
			for id, r := range tt.remaining {
				wantRemaining(t, l, id, r)
			}
		})
	}
}

// usedOf sums the usage debits among events.
func usedOf(events []Event) string {
	sum := d("0")
	for _, e := range events {
		if u, ok := e.(UsageDebited); ok {
			sum = sum.Add(u.Amount)
		}
	}
	return sum.String()
}

func TestAdjustmentsAccumulate(t *testing.T) {
	t.Parallel()
	l := lineWith(t, granted("g", "10"))
	for i, amount := range []string{"5", "-8", "2.25", "-20"} {
		apply(t, l, must(t)(DecideAdjust(l, Adjust{AdjustmentID: "a" + itoa(i), Amount: d(amount), Reason: "r"}, t0))...)
	}
	wantDec(t, "adjusted", l.Adjusted, "-20.75")
	wantTotals(t, l, "-10.75", "-10.75")
	wantDec(t, "granted", l.Granted, "10")
	wantDec(t, "used", l.Used, "0")
}

func TestDecideAdjustRefusesMalformedCommands(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("r", TextLengthMax+1)
	tests := []struct {
		name string
		c    Adjust
		want []string
	}{
		{"a_zero_amount", Adjust{AdjustmentID: "a", Amount: d("0"), Reason: "r"}, []string{"amount"}},
		{"a_missing_reason", Adjust{AdjustmentID: "a", Amount: d("1")}, []string{"reason"}},
		{"a_missing_adjustment_id", Adjust{Amount: d("1"), Reason: "r"}, []string{"adjustment_id"}},
		{"an_amount_with_seven_places", Adjust{AdjustmentID: "a", Amount: d("-0.0000001"), Reason: "r"}, []string{"amount"}},
		{"an_amount_of_minus_10^12", Adjust{AdjustmentID: "a", Amount: d("-1e12"), Reason: "r"}, []string{"amount"}},
		{"a_long_reason", Adjust{AdjustmentID: "a", Amount: d("1"), Reason: long}, []string{"reason"}},
		{"a_long_reference", Adjust{AdjustmentID: "a", Amount: d("1"), Reason: "r", Reference: long}, []string{"reference"}},
		{"a_zero_amount_and_a_missing_reason", Adjust{AdjustmentID: "a"}, []string{"amount", "reason"}},
	}
	for _, tt := range tests {
		t.Run("refuses_"+tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := DecideAdjust(lineWith(t, granted("g", "10")), tt.c, t0)
			if ev != nil {
				t.Errorf("events = %+v, want none", ev)
			}
			wantFieldErrors(t, err, tt.want...)
		})
	}
}
