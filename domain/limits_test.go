package domain

import (
	"errors"
	"testing"
	"time"
)

// A capture moves a hold from the reserved total into the used total; the
// used total must stay within LineTotalMax, or every later debit, grant
// and hold of the line would be refused for a total it can only lower by
// reversals.
func TestCaptureKeepsUsedWithinLineTotalMax(t *testing.T) {
	big := "999999999999"
	l := lineWith(t, granted("g", big))
	apply(t, l, must(t)(DecideUsage(l, RecordUsage{UsageID: "u", Amount: d(big)}, t0))...)
	apply(t, l, must(t)(DecideAdjust(l, Adjust{AdjustmentID: "a", Amount: d(big), Reason: "top-up"}, t0))...)
	apply(t, l, must(t)(DecideReserve(l, Reserve{ReservationID: "r", Amount: d(big)}, t0))...)
	_, err := DecideCapture(l, Capture{ReservationID: "r"}, t0)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Location != "amount" {
		t.Fatalf("capture taking used to 1999999999998: %v, want a FieldError at amount", err)
	}
	if !withinLineTotal(l.Used) {
		t.Fatalf("used %s past LineTotalMax", l.Used)
	}
	// What fits is captured, up to the limit itself.
	part := d("1")
	apply(t, l, must(t)(DecideCapture(l, Capture{ReservationID: "r", Amount: &part}, t0))...)
	wantDec(t, "used", l.Used, "1000000000000")
}

// A reversal gives a debit's credits back; the balance it makes must stay
// within LineTotalMax as every other write's does.
func TestReversalKeepsBalanceWithinLineTotalMax(t *testing.T) {
	l := lineWith(t, granted("g", "100"))
	u := must(t)(DecideUsage(l, RecordUsage{UsageID: "u", Amount: d("100")}, t0))
	apply(t, l, u...)
	apply(t, l, must(t)(DecideAdjust(l, Adjust{AdjustmentID: "a", Amount: d("999999999999"), Reason: "x"}, t0))...)
	apply(t, l, must(t)(DecideAdjust(l, Adjust{AdjustmentID: "a1", Amount: d("1"), Reason: "x"}, t0))...)
	_, err := DecideReverseUsage(l, ReverseUsage{UsageID: "u", Reason: "oops"}, u[0].(UsageDebited), t0)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Location != "path.usage_id" {
		t.Fatalf("reversal taking the balance to 1000000000100: %v, want a FieldError at path.usage_id", err)
	}
	// Below the limit it is taken.
	apply(t, l, must(t)(DecideAdjust(l, Adjust{AdjustmentID: "a2", Amount: d("-100"), Reason: "x"}, t0))...)
	apply(t, l, must(t)(DecideReverseUsage(l, ReverseUsage{UsageID: "u", Reason: "oops"}, u[0].(UsageDebited), t0))...)
	wantDec(t, "balance", l.Balance(), "1000000000000")
}

// A subscription that started in the past allocates from the period
// holding its creation; when the totals limit refuses that first
// allocation, it ends there, and the periods before it, which ended
// before the subscription existed, are never allocated afterwards.
func TestSubscriptionRefusedAtItsStartAllocatesNoPastPeriod(t *testing.T) {
	l := lineWith(t)
	apply(t, l, must(t)(DecideAdjust(l, Adjust{AdjustmentID: "a", Amount: d("999999999999"), Reason: "x"}, t0))...)
	start := t0.AddDate(0, -3, 0)
	apply(t, l, must(t)(DecideStartSubscription(l, StartSubscription{SubscriptionID: "s", CreditsPerPeriod: d("10"), Period: PeriodMonthly, StartsAt: start}, t0))...)
	wantDec(t, "granted after the start", l.Granted, "0")
	// The balance falls below the limit; nothing becomes due.
	apply(t, l, must(t)(DecideUsage(l, RecordUsage{UsageID: "u", Amount: d("1000")}, t0))...)
	for _, at := range []time.Time{t0.Add(time.Second), t0.AddDate(0, 2, 0)} {
		if due := DecideDue(l, at); len(due) != 0 {
			t.Fatalf("due at %s: %+v, want nothing", at, due)
		}
	}
	if next, ok := l.NextDue(); ok && l.Subscriptions["s"].Granted < 3 {
		t.Errorf("next due %s with %d periods allocated", next, l.Subscriptions["s"].Granted)
	}
}
