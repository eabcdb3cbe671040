package domain

import (
	"testing"
	"time"
)

func TestDecideDue(t *testing.T) {
	t.Parallel()
	hour := time.Hour
	hold := func(id, amount string, expires time.Time) CreditsReserved {
		return CreditsReserved{ReservationID: id, Amount: d(amount), ExpiresAt: expires}
	}
	tests := []struct {
		name  string
		setup []Event
		at    time.Time
		want  []Event
	}{
		{"nothing_is_due_on_an_empty_line", nil, t0, nil},
		{"a_grant_is_not_due_before_its_expiry", []Event{granted("g", "10", expiresAt(t0.Add(hour)))}, t0.Add(hour - time.Nanosecond), nil},
		{"a_grant_expires_at_exactly_its_expiry", []Event{granted("g", "10", expiresAt(t0.Add(hour)))}, t0.Add(hour),
			[]Event{GrantExpired{GrantID: "g", Amount: d("10")}}},
		{"a_grant_expires_long_after_its_expiry", []Event{granted("g", "10", expiresAt(t0.Add(hour)))}, t0.AddDate(1, 0, 0),
			[]Event{GrantExpired{GrantID: "g", Amount: d("10")}}},
		{"only_the_remainder_of_a_partly_used_grant_expires", []Event{
			granted("g", "10", expiresAt(t0.Add(hour))),
			UsageDebited{UsageID: "u", Amount: d("3.25"), Burned: []Burn{burn("g", "3.25")}},
		}, t0.Add(hour), []Event{GrantExpired{GrantID: "g", Amount: d("6.75")}}},
		{"a_used_up_grant_has_nothing_to_expire", []Event{
			granted("g", "10", expiresAt(t0.Add(hour))),
			UsageDebited{UsageID: "u", Amount: d("10"), Burned: []Burn{burn("g", "10")}},
		}, t0.Add(hour), nil},
		{"a_grant_without_expiry_never_expires", []Event{granted("g", "10")}, t0.AddDate(100, 0, 0), nil},
		{"a_hold_is_not_due_before_its_ttl", []Event{granted("g", "10"), hold("r", "4", t0.Add(hour))}, t0.Add(hour - time.Nanosecond), nil},
		{"a_hold_is_released_as_expired_at_exactly_its_ttl", []Event{granted("g", "10"), hold("r", "4", t0.Add(hour))}, t0.Add(hour),
			[]Event{ReservationReleased{ReservationID: "r", Amount: d("4"), Reason: ReleaseExpired}}},
		{"only_due_grants_and_holds_are_listed", []Event{
			granted("due", "1", expiresAt(t0.Add(hour))),
			granted("later", "2", expiresAt(t0.Add(3*hour))),
			hold("r-due", "1", t0.Add(2*hour)),
			hold("r-later", "1", t0.Add(4*hour)),
		}, t0.Add(2 * hour), []Event{
			ReservationReleased{ReservationID: "r-due", Amount: d("1"), Reason: ReleaseExpired},
			GrantExpired{GrantID: "due", Amount: d("1")},
		}},
		{"holds_by_id_then_grants_in_burn_down_order", []Event{
			granted("p1-early", "1", priority(1), expiresAt(t0.Add(hour))),
			granted("p0-late", "2", expiresAt(t0.Add(2*hour))),
			granted("p0-early", "3", expiresAt(t0.Add(hour))),
			hold("r-c", "1", t0.Add(hour)),
			hold("r-a", "1", t0.Add(2*hour)),
			hold("r-b", "1", t0.Add(time.Minute)),
		}, t0.Add(2 * hour), []Event{
			ReservationReleased{ReservationID: "r-a", Amount: d("1"), Reason: ReleaseExpired},
			ReservationReleased{ReservationID: "r-b", Amount: d("1"), Reason: ReleaseExpired},
			ReservationReleased{ReservationID: "r-c", Amount: d("1"), Reason: ReleaseExpired},
			GrantExpired{GrantID: "p0-early", Amount: d("3")},
			GrantExpired{GrantID: "p0-late", Amount: d("2")},
			GrantExpired{GrantID: "p1-early", Amount: d("1")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := lineWith(t, tt.setup...)
			got := DecideDue(l, tt.at)
			if err := sameValue(got, tt.want); err != nil {
				t.Fatalf("DecideExpiries = %+v\nwant %+v\n%v", got, tt.want, err)
			}
			balance, reserved := l.Balance(), l.Reserved
			apply(t, l, got...)
			var expired, released = d("0"), d("0")
			for _, e := range got {
				switch e := e.(type) {
				case GrantExpired:
					expired = expired.Add(e.Amount)
				case ReservationReleased:
					released = released.Add(e.Amount)
				}
			}
			wantDec(t, "balance", l.Balance(), balance.Sub(expired).String())
			wantDec(t, "reserved", l.Reserved, reserved.Sub(released).String())
			wantDec(t, "expired", l.Expired, expired.String())
			if again := DecideDue(l, tt.at); len(again) != 0 {
				t.Fatalf("after applying the expiries, DecideExpiries still owes %+v", again)
			}
		})
	}
}

func TestDecideDueIsDeterministic(t *testing.T) {
	t.Parallel()
	l := NewLine(DefaultCreditType)
	for i := range 5 {
		apply(t, l, granted("g"+itoa(i), "1", expiresAt(t0.Add(time.Hour))))
	}
	// Enough holds that map iteration order would show.
	ids := []string{"r-q", "r-b", "r-z", "r-a", "r-m", "r-c", "r-y", "r-d", "r-x", "r-e", "r-k", "r-f"}
	for _, id := range ids {
		apply(t, l, CreditsReserved{ReservationID: id, Amount: d("0.1"), ExpiresAt: t0.Add(time.Minute)})
	}
	first := DecideDue(l, t0.Add(time.Hour))
	if len(first) != 5+len(ids) {
		t.Fatalf("got %d events, want %d", len(first), 5+len(ids))
	}
	for range 50 {
		if err := sameValue(DecideDue(l.Clone(), t0.Add(time.Hour)), first); err != nil {
			t.Fatalf("a second decision differs: %v", err)
		}
	}
	// Holds are released before grants expire: what they give back to an
	// expiring grant expires with it.
	prev := ""
	for _, e := range first[:len(ids)] {
		id := e.(ReservationReleased).ReservationID
		if id <= prev {
			t.Fatalf("holds not released in id order: %s after %s", id, prev)
		}
		prev = id
	}
}

func TestExpiryOfAGrantBehindAHold(t *testing.T) {
	t.Parallel()
	// The hold pinned 4 of the expiring grant: at the expiry only the
	// unpinned 6 go, and the 4 go when the hold's TTL releases them.
	l := lineWith(t, granted("g", "10", expiresAt(t0.Add(time.Hour))))
	apply(t, l, must(t)(DecideReserve(l, Reserve{ReservationID: "r", Amount: d("4"), TTL: 2 * time.Hour}, t0))...)
	ev := DecideDue(l, t0.Add(time.Hour))
	if err := sameValue(ev, []Event{GrantExpired{GrantID: "g", Amount: d("6")}}); err != nil {
		t.Fatal(err)
	}
	apply(t, l, ev...)
	wantTotals(t, l, "4", "0")
	if due, ok := l.NextDue(); !ok || !due.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("next due %v %v, want the hold's TTL", due, ok)
	}
	ev = DecideDue(l, t0.Add(2*time.Hour))
	if err := sameValue(ev, []Event{ReservationReleased{ReservationID: "r", Amount: d("4"), Reason: ReleaseExpired},
		GrantExpired{GrantID: "g", Amount: d("4"), Trigger: "reservation:r"}}); err != nil {
		t.Fatal(err)
	}
	apply(t, l, ev...)
	wantTotals(t, l, "0", "0")
	wantDec(t, "used", l.Used, "0")
	wantDec(t, "expired", l.Expired, "10")
}

func TestExpiredCreditsCannotBeSpentBeforeTheSweep(t *testing.T) {
	t.Parallel()
	l := lineWith(t, granted("old", "10", expiresAt(t0.Add(time.Hour))), granted("new", "3"))
	at := t0.Add(time.Hour)
	wantDec(t, "spendable", l.Spendable(at), "3")
	ev := must(t)(DecideUsage(l, RecordUsage{UsageID: "u", Amount: d("3")}, at))
	wantBurns(t, ev[0].(UsageDebited).Burned, burn("new", "3"))
	apply(t, l, ev...)
	apply(t, l, DecideDue(l, at)...)
	wantTotals(t, l, "0", "0")
	wantDec(t, "expired", l.Expired, "10")
}
