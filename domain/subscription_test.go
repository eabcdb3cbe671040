package domain

import (
	"errors"
	"testing"
	"time"
)

func TestSubscriptions(t *testing.T) {
	t.Parallel()
	jan31 := time.Date(2026, 1, 31, 8, 0, 0, 0, time.UTC)

	t.Run("periods_keep_the_day_of_month_clamped_to_short_months", func(t *testing.T) {
		s := Subscription{StartsAt: jan31}
		want := []string{"2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30", "2027-01-31"}
		for i, n := range []int{0, 1, 2, 3, 12} {
			if got := s.PeriodStart(n).Format(time.DateOnly); got != want[i] {
				t.Errorf("period %d starts %s, want %s", n, got, want[i])
			}
		}
		if n := s.PeriodAt(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)); n != 1 {
			t.Errorf("PeriodAt(Mar 1) = %d, want 1", n)
		}
		if n := s.PeriodAt(time.Date(2026, 3, 31, 8, 0, 0, 0, time.UTC)); n != 2 {
			t.Errorf("PeriodAt(Mar 31 08:00) = %d, want 2", n)
		}
		if n := s.PeriodAt(jan31.Add(-time.Second)); n != -1 {
			t.Errorf("PeriodAt(before start) = %d, want -1", n)
		}
	})

	price := d("1000")
	start := StartSubscription{SubscriptionID: "pro", CreditsPerPeriod: d("50000"), Period: PeriodMonthly, StartsAt: jan31, PriceAmount: &price, PriceCurrency: "EUR"}

	t.Run("starting_allocates_the_started_periods_and_the_sweeper_the_next", func(t *testing.T) {
		l := NewLine(DefaultCreditType)
		now := jan31.Add(time.Hour)
		apply(t, l, must(t)(DecideStartSubscription(l, start, now))...)
		wantDec(t, "granted", l.Granted, "50000")
		g := l.Grants[0]
		if g.GrantID != "subscription:pro:0" || g.ExpiresAt == nil || !g.ExpiresAt.Equal(time.Date(2026, 2, 28, 8, 0, 0, 0, time.UTC)) {
			t.Fatalf("first allocation %+v", g)
		}
		if due, ok := l.NextDue(); !ok || !due.Equal(*g.ExpiresAt) {
			t.Fatalf("next due %v %v", due, ok)
		}
		if events := DecideDue(l, now.Add(24*time.Hour)); len(events) != 0 {
			t.Fatalf("nothing is due mid-period, got %v", events)
		}
		feb28 := time.Date(2026, 2, 28, 8, 0, 0, 0, time.UTC)
		events := DecideDue(l, feb28)
		if len(events) != 2 {
			t.Fatalf("at the period end: %v, want the next allocation and the expiry", events)
		}
		next, ok := events[0].(CreditsGranted)
		if !ok || next.GrantID != "subscription:pro:1" || !next.EffectiveAt.Equal(feb28) || !next.CostPerCredit.Equal(d("0.02")) || next.Currency != "EUR" {
			t.Fatalf("second allocation %+v", events[0])
		}
		if e, ok := events[1].(GrantExpired); !ok || e.GrantID != "subscription:pro:0" {
			t.Fatalf("second event %+v", events[1])
		}
		apply(t, l, events...)
		wantDec(t, "balance", l.Balance(), "50000")
	})

	t.Run("a_start_in_the_past_allocates_the_current_period_only", func(t *testing.T) {
		// Periods that ended before the subscription existed would be
		// granted and expired at once: they are not allocated.
		for _, rollover := range []bool{false, true} {
			l := NewLine(DefaultCreditType)
			sub := start
			sub.Rollover = rollover
			apply(t, l, must(t)(DecideStartSubscription(l, sub, time.Date(2026, 4, 15, 0, 0, 0, 0, time.UTC)))...)
			wantDec(t, "granted", l.Granted, "50000")
			wantDec(t, "expired", l.Expired, "0")
			if len(l.Grants) != 1 || l.Grants[0].GrantID != "subscription:pro:2" || (l.Grants[0].ExpiresAt == nil) != rollover {
				t.Fatalf("rollover %v: grants %+v, want period 3 (Mar 31) alone", rollover, l.Grants)
			}
			// The next allocation follows on from the current period.
			events := DecideDue(l, time.Date(2026, 4, 30, 8, 0, 0, 0, time.UTC))
			if len(events) == 0 || events[0].(CreditsGranted).GrantID != "subscription:pro:3" {
				t.Fatalf("rollover %v: next allocation %+v", rollover, events)
			}
		}
	})

	t.Run("cancel_ends_at_the_period_end_and_stops_allocating", func(t *testing.T) {
		l := NewLine(DefaultCreditType)
		apply(t, l, must(t)(DecideStartSubscription(l, start, jan31))...)
		mid := time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC)
		events := must(t)(DecideCancelSubscription(l, "pro", mid))
		if c := events[0].(SubscriptionCanceled); !c.EndsAt.Equal(time.Date(2026, 2, 28, 8, 0, 0, 0, time.UTC)) {
			t.Fatalf("ends at %s", c.EndsAt)
		}
		apply(t, l, events...)
		if _, err := DecideCancelSubscription(l, "pro", mid); !errors.Is(err, ErrSubscriptionCanceled) {
			t.Fatalf("second cancel: %v", err)
		}
		later := DecideDue(l, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
		for _, e := range later {
			if _, ok := e.(CreditsGranted); ok {
				t.Fatalf("allocated after cancel: %+v", e)
			}
		}
		if _, err := DecideCancelSubscription(l, "nope", mid); !errors.Is(err, ErrSubscriptionNotFound) {
			t.Fatalf("unknown: %v", err)
		}
	})

	t.Run("bad_fields_are_listed", func(t *testing.T) {
		bad := StartSubscription{CreditsPerPeriod: d("0"), Period: "weekly", PriceAmount: &price, PriceCurrency: "eur"}
		wantFieldErrors(t, bad.Validate(), "subscription_id", "credits_per_period", "period", "price.currency")
	})
}
