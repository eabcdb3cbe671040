package domain

import (
	"errors"
	"testing"
	"time"
)

func TestDecideReserve(t *testing.T) {
	t.Parallel()
	dims := Dimensions{Module: "agent", WorkflowID: "wf-1", Quantity: d("1")}

	t.Run("a_reservation_holds_credits_against_available", func(t *testing.T) {
		t.Parallel()
		l := lineWith(t, granted("g", "100"))
		c := Reserve{ReservationID: "r1", Amount: d("30"), Dimensions: dims}
		ev := must(t)(DecideReserve(l, c, t0))
		want := []Event{CreditsReserved{ReservationID: "r1", Amount: d("30"), ExpiresAt: t0.Add(ReservationTTLDefault),
			Dimensions: dims, Pinned: []Burn{burn("g", "30")}, Fingerprint: c.Fingerprint()}}
		if err := sameValue(ev, want); err != nil {
			t.Fatal(err)
		}
		apply(t, l, ev...)
		wantTotals(t, l, "100", "70")
		wantDec(t, "reserved", l.Reserved, "30")
		wantDec(t, "spendable", l.Spendable(t0), "70")
		wantRemaining(t, l, "g", "100") // a hold burns nothing yet
		if h := l.Reservations["r1"]; !h.Amount.Equal(d("30")) || !h.ExpiresAt.Equal(t0.Add(ReservationTTLDefault)) {
			t.Fatalf("hold = %+v", h)
		}
	})

	ttls := []struct {
		name string
		ttl  time.Duration
		want time.Duration
	}{
		{"no_ttl_means_the_default_of_five_minutes", 0, 5 * time.Minute},
		{"an_explicit_ttl_sets_the_expiry", time.Hour, time.Hour},
		{"the_maximum_ttl_of_seven_days_is_allowed", ReservationTTLMax, 7 * 24 * time.Hour},
	}
	for _, tt := range ttls {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := lineWith(t, granted("g", "10"))
			ev := must(t)(DecideReserve(l, Reserve{ReservationID: "r1", Amount: d("1"), TTL: tt.ttl}, t0))
			r := ev[0].(CreditsReserved)
			if !r.ExpiresAt.Equal(t0.Add(tt.want)) || r.ExpiresAt.Location() != time.UTC {
				t.Fatalf("expires_at = %s, want %s UTC", r.ExpiresAt, t0.Add(tt.want))
			}
		})
	}

	insufficient := []struct {
		name   string
		setup  []Event
		amount string
	}{
		{"more_than_the_line_holds", []Event{granted("g", "10")}, "10.000001"},
		{"on_an_empty_line", nil, "1"},
		{"more_than_is_left_beside_another_hold", []Event{granted("g", "10"), CreditsReserved{ReservationID: "r0", Amount: d("6"), ExpiresAt: t0.Add(time.Hour)}}, "4.000001"},
		{"credits_not_yet_effective", []Event{granted("g", "10", effectiveAt(t0.Add(time.Minute)))}, "1"},
		{"credits_of_an_expired_grant", []Event{granted("g", "10", expiresAt(t0))}, "1"},
		{"beyond_the_overdraft_limit", []Event{CreditLineConfigured{OverdraftLimit: d("3")}}, "3.000001"},
	}
	for _, tt := range insufficient {
		t.Run("refuses_to_reserve_"+tt.name, func(t *testing.T) {
			t.Parallel()
			l := lineWith(t, tt.setup...)
			c := Reserve{ReservationID: "r1", Amount: d(tt.amount)}
			ev := must(t)(DecideReserve(l, c, t0))
			// Refused and recorded, so a retry of the id is refused again.
			want := []Event{ReservationRejected{ReservationID: "r1", Amount: d(tt.amount), Reason: RejectInsufficientCredits, Fingerprint: c.Fingerprint()}}
			if err := sameValue(ev, want); err != nil {
				t.Fatal(err)
			}
			held := l.Reserved
			apply(t, l, ev...)
			wantDec(t, "reserved", l.Reserved, held.String())
		})
	}

	enough := []struct {
		name   string
		setup  []Event
		amount string
	}{
		{"exactly_what_is_spendable", []Event{granted("g", "10")}, "10"},
		{"within_the_overdraft_limit", []Event{CreditLineConfigured{OverdraftLimit: d("3")}}, "3"},
		{"from_unallocated_credits", []Event{CreditsAdjusted{AdjustmentID: "a", Amount: d("2"), Reason: "gift"}}, "2"},
	}
	for _, tt := range enough {
		t.Run("reserves_"+tt.name, func(t *testing.T) {
			t.Parallel()
			l := lineWith(t, tt.setup...)
			apply(t, l, must(t)(DecideReserve(l, Reserve{ReservationID: "r1", Amount: d(tt.amount)}, t0))...)
			wantDec(t, "spendable", l.Spendable(t0), "0")
		})
	}

	malformed := []struct {
		name string
		c    Reserve
		want []string
	}{
		{"a_missing_reservation_id", Reserve{Amount: d("1")}, []string{"reservation_id"}},
		{"a_zero_amount", Reserve{ReservationID: "r", Amount: d("0")}, []string{"amount"}},
		{"a_negative_amount", Reserve{ReservationID: "r", Amount: d("-1")}, []string{"amount"}},
		{"an_amount_with_seven_places", Reserve{ReservationID: "r", Amount: d("0.0000001")}, []string{"amount"}},
		{"a_negative_ttl", Reserve{ReservationID: "r", Amount: d("1"), TTL: -time.Second}, []string{"ttl_seconds"}},
		{"a_ttl_beyond_seven_days", Reserve{ReservationID: "r", Amount: d("1"), TTL: ReservationTTLMax + time.Second}, []string{"ttl_seconds"}},
		{"a_negative_quantity", Reserve{ReservationID: "r", Amount: d("1"), Dimensions: Dimensions{Quantity: d("-1")}}, []string{"quantity"}},
		{"everything_at_once", Reserve{Amount: d("0"), TTL: -1}, []string{"reservation_id", "amount", "ttl_seconds"}},
	}
	for _, tt := range malformed {
		t.Run("refuses_"+tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := DecideReserve(lineWith(t, granted("g", "100")), tt.c, t0)
			if ev != nil {
				t.Errorf("events = %+v, want none", ev)
			}
			wantFieldErrors(t, err, tt.want...)
		})
	}
}

func TestDecideCapture(t *testing.T) {
	t.Parallel()
	// Each case starts from a 100-credit grant with a 30-credit hold r1.
	setup := func(t *testing.T) *Line {
		l := lineWith(t, granted("g", "100"))
		apply(t, l, must(t)(DecideReserve(l, Reserve{ReservationID: "r1", Amount: d("30"), TTL: time.Hour}, t0))...)
		return l
	}
	tests := []struct {
		name               string
		amount             *string
		captured, released string
		balance, available string
	}{
		{"capture_without_amount_takes_the_whole_hold", nil, "30", "0", "70", "70"},
		{"capture_of_the_whole_hold_releases_nothing", ptr("30"), "30", "0", "70", "70"},
		{"partial_capture_releases_the_rest", ptr("12.5"), "12.5", "17.5", "87.5", "87.5"},
		{"capture_of_zero_releases_everything", ptr("0"), "0", "30", "100", "100"},
		{"capture_of_one_micro_credit", ptr("0.000001"), "0.000001", "29.999999", "99.999999", "99.999999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := setup(t)
			c := Capture{ReservationID: "r1"}
			if tt.amount != nil {
				c.Amount = dp(*tt.amount)
			}
			ev := must(t)(DecideCapture(l, c, t0.Add(time.Minute)))
			if len(ev) != 1 {
				t.Fatalf("events = %+v, want one ReservationCaptured", ev)
			}
			got, ok := ev[0].(ReservationCaptured)
			if !ok {
				t.Fatalf("event = %T, want ReservationCaptured", ev[0])
			}
			want := ReservationCaptured{ReservationID: "r1", Amount: d(tt.captured), Released: d(tt.released),
				Burned: got.Burned, Fingerprint: c.Fingerprint()}
			if err := sameValue(got, want); err != nil {
				t.Fatal(err)
			}
			if d(tt.captured).IsPositive() {
				wantBurns(t, got.Burned, burn("g", tt.captured))
			} else {
				wantBurns(t, got.Burned)
			}
			apply(t, l, ev...)
			wantTotals(t, l, tt.balance, tt.available)
			wantDec(t, "used", l.Used, tt.captured)
			wantDec(t, "reserved", l.Reserved, "0")
			if _, open := l.Reservations["r1"]; open {
				t.Fatal("the hold is still open after the capture")
			}
		})
	}

	refusals := []struct {
		name    string
		c       Capture
		wantErr error
	}{
		{"capture_beyond_the_hold_is_refused", Capture{ReservationID: "r1", Amount: dp("30.000001")}, ErrCaptureExceedsHold},
		{"capture_of_an_unknown_reservation_is_refused", Capture{ReservationID: "nope"}, ErrReservationNotFound},
		{"capture_of_an_unknown_reservation_with_an_amount_is_refused", Capture{ReservationID: "nope", Amount: dp("1")}, ErrReservationNotFound},
		{"capture_of_a_negative_amount_is_malformed", Capture{ReservationID: "r1", Amount: dp("-1")}, ErrInvalidCommand},
		{"capture_with_seven_decimal_places_is_malformed", Capture{ReservationID: "r1", Amount: dp("1.0000001")}, ErrInvalidCommand},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := setup(t)
			ev, err := DecideCapture(l, tt.c, t0)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if ev != nil {
				t.Fatalf("events = %+v, want none", ev)
			}
			if tt.wantErr == ErrInvalidCommand {
				wantFieldErrors(t, err, "amount")
			}
		})
	}

	t.Run("a_closed_reservation_cannot_be_captured_or_released_again", func(t *testing.T) {
		t.Parallel()
		l := setup(t)
		apply(t, l, must(t)(DecideCapture(l, Capture{ReservationID: "r1"}, t0))...)
		if _, err := DecideCapture(l, Capture{ReservationID: "r1"}, t0); !errors.Is(err, ErrReservationNotFound) {
			t.Errorf("second capture: err = %v, want ErrReservationNotFound", err)
		}
		if _, err := DecideRelease(l, "r1", ReleaseReleased, t0); !errors.Is(err, ErrReservationNotFound) {
			t.Errorf("release after capture: err = %v, want ErrReservationNotFound", err)
		}
	})
}

func TestCaptureBurnsInOrderAtCaptureTime(t *testing.T) {
	t.Parallel()
	t.Run("the_capture_burns_grants_in_burn_down_order", func(t *testing.T) {
		t.Parallel()
		l := lineWith(t, granted("p1", "10", priority(1)), granted("p0", "5"))
		apply(t, l, must(t)(DecideReserve(l, Reserve{ReservationID: "r1", Amount: d("8")}, t0))...)
		ev := must(t)(DecideCapture(l, Capture{ReservationID: "r1"}, t0))
		wantBurns(t, ev[0].(ReservationCaptured).Burned, burn("p0", "5"), burn("p1", "3"))
		apply(t, l, ev...)
		wantRemaining(t, l, "p0", "0")
		wantRemaining(t, l, "p1", "7")
	})
	t.Run("a_usage_beside_the_hold_does_not_eat_into_it", func(t *testing.T) {
		t.Parallel()
		l := lineWith(t, granted("g", "10"))
		apply(t, l, must(t)(DecideReserve(l, Reserve{ReservationID: "r1", Amount: d("6")}, t0))...)
		apply(t, l, must(t)(DecideUsage(l, RecordUsage{UsageID: "u1", Amount: d("4")}, t0))...)
		ev := must(t)(DecideCapture(l, Capture{ReservationID: "r1"}, t0))
		wantBurns(t, ev[0].(ReservationCaptured).Burned, burn("g", "6"))
		apply(t, l, ev...)
		wantTotals(t, l, "0", "0")
		wantDec(t, "unallocated", l.Unallocated, "0")
	})
	t.Run("a_hold_spends_its_pinned_grant_after_that_grant_expired", func(t *testing.T) {
		t.Parallel()
		// The hold was taken while g was active and pinned it; g expired
		// before the capture: the capture spends the pinned credits, and
		// what the hold gives back to g expires at once.
		l := lineWith(t, granted("g", "10", expiresAt(t0.Add(time.Hour))))
		apply(t, l, must(t)(DecideReserve(l, Reserve{ReservationID: "r1", Amount: d("10"), TTL: 2 * time.Hour}, t0))...)
		at := t0.Add(90 * time.Minute)
		if due := DecideDue(l, at); len(due) != 0 {
			t.Fatalf("due %+v: a fully pinned grant has nothing to expire", due)
		}
		ev := must(t)(DecideCapture(l, Capture{ReservationID: "r1", Amount: dp("4")}, at))
		c := ev[0].(ReservationCaptured)
		wantBurns(t, c.Burned, burn("g", "4"))
		wantDec(t, "released", c.Released, "6")
		if err := sameValue(ev[1:], []Event{GrantExpired{GrantID: "g", Amount: d("6"), Trigger: "capture:r1"}}); err != nil {
			t.Fatal(err)
		}
		apply(t, l, ev...)
		wantDec(t, "unallocated", l.Unallocated, "0")
		wantTotals(t, l, "0", "0")
		wantDec(t, "used", l.Used, "4")
		wantDec(t, "expired", l.Expired, "6")
	})
}

func TestDecideRelease(t *testing.T) {
	t.Parallel()
	for _, reason := range []ReleaseReason{ReleaseReleased, ReleaseExpired} {
		t.Run("release_returns_the_whole_hold_with_reason_"+string(reason), func(t *testing.T) {
			t.Parallel()
			l := lineWith(t, granted("g", "10"))
			apply(t, l, must(t)(DecideReserve(l, Reserve{ReservationID: "r1", Amount: d("4")}, t0))...)
			apply(t, l, must(t)(DecideReserve(l, Reserve{ReservationID: "r2", Amount: d("1")}, t0))...)
			ev := must(t)(DecideRelease(l, "r1", reason, t0))
			want := []Event{ReservationReleased{ReservationID: "r1", Amount: d("4"), Reason: reason}}
			if err := sameValue(ev, want); err != nil {
				t.Fatal(err)
			}
			apply(t, l, ev...)
			wantTotals(t, l, "10", "9")
			wantDec(t, "used", l.Used, "0")
			if _, open := l.Reservations["r2"]; !open {
				t.Fatal("releasing r1 closed r2")
			}
		})
	}
	t.Run("release_of_an_unknown_reservation_is_refused", func(t *testing.T) {
		t.Parallel()
		ev, err := DecideRelease(lineWith(t, granted("g", "10")), "nope", ReleaseReleased, t0)
		if !errors.Is(err, ErrReservationNotFound) || ev != nil {
			t.Fatalf("DecideRelease = %+v, %v; want ErrReservationNotFound", ev, err)
		}
	})
}

func ptr(s string) *string { return &s }

// TestHoldsFromBeforePinning replays holds as logs written before pinning
// hold them (no pinned field): they pin nothing, and a capture is planned
// from the grants active at capture time, as it was then.
func TestHoldsFromBeforePinning(t *testing.T) {
	t.Parallel()
	l := lineWith(t, granted("g", "10", expiresAt(t0.Add(time.Hour))), granted("h", "5"))
	apply(t, l, CreditsReserved{ReservationID: "old", Amount: d("8"), ExpiresAt: t0.Add(2 * time.Hour)})
	wantDec(t, "free", l.Free(t0), "7")
	// The old hold pins nothing: the whole of g expires.
	at := t0.Add(90 * time.Minute)
	due := DecideDue(l, at)
	if err := sameValue(due, []Event{GrantExpired{GrantID: "g", Amount: d("10")}}); err != nil {
		t.Fatal(err)
	}
	apply(t, l, due...)
	ev := must(t)(DecideCapture(l, Capture{ReservationID: "old"}, at))
	wantBurns(t, ev[0].(ReservationCaptured).Burned, burn("h", "5"))
	apply(t, l, ev...)
	wantDec(t, "unallocated", l.Unallocated, "-3")
	wantTotals(t, l, "-3", "-3")
}
