package domain

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestApplyHelperChecksInvariantsAfterEveryEvent(t *testing.T) {
	t.Parallel()
	ft := &fatalRecorder{TB: t}
	l := NewLine(DefaultCreditType)
	func() {
		defer func() { _ = recover() }() // fatalRecorder stops the goroutine with a panic
		// The grant is fine; the debit names a burn larger than the grant,
		// which leaves the grant overdrawn and must be caught.
		apply(ft, l, granted("g1", "5"), UsageDebited{UsageID: "u1", Amount: d("5"), Burned: []Burn{burn("g1", "6")}})
	}()
	if !ft.failed {
		t.Fatal("apply did not fail on a line whose invariants are broken")
	}
}

// fatalRecorder records a Fatalf instead of failing the real test.
type fatalRecorder struct {
	testing.TB
	failed bool
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(string, ...any) {
	f.failed = true
	panic("fatal")
}

func TestLineTotals(t *testing.T) {
	t.Parallel()
	l := NewLine(DefaultCreditType)
	wantTotals(t, l, "0", "0")
	steps := []struct {
		name               string
		events             []Event
		balance, available string
	}{
		{"a_grant_adds_to_balance_and_available", []Event{granted("g1", "100")}, "100", "100"},
		{"a_positive_adjustment_adds_to_balance", []Event{CreditsAdjusted{AdjustmentID: "a1", Amount: d("10"), Reason: "goodwill"}}, "110", "110"},
		{"usage_subtracts_from_balance", []Event{UsageDebited{UsageID: "u1", Amount: d("30"), Burned: []Burn{burn("g1", "30")}}}, "80", "80"},
		{"a_reservation_subtracts_from_available_only", []Event{CreditsReserved{ReservationID: "r1", Amount: d("20"), ExpiresAt: t0.Add(time.Hour)}}, "80", "60"},
		{"a_negative_adjustment_subtracts_from_balance", []Event{CreditsAdjusted{AdjustmentID: "a2", Amount: d("-5"), Reason: "fix"}}, "75", "55"},
		{"a_capture_moves_the_hold_into_used", []Event{ReservationCaptured{ReservationID: "r1", Amount: d("20"), Burned: []Burn{burn("g1", "20")}}}, "55", "55"},
		{"an_expiry_subtracts_the_expired_remainder", []Event{granted("g2", "7", expiresAt(t0.Add(time.Hour))), GrantExpired{GrantID: "g2", Amount: d("7")}}, "55", "55"},
	}
	for _, s := range steps {
		apply(t, l, s.events...)
		t.Run(s.name, func(t *testing.T) { wantTotals(t, l, s.balance, s.available) })
	}
	wantDec(t, "granted", l.Granted, "107")
	wantDec(t, "adjusted", l.Adjusted, "5")
	wantDec(t, "used", l.Used, "50")
	wantDec(t, "expired", l.Expired, "7")
	wantDec(t, "reserved", l.Reserved, "0")
}

func TestGrantActiveAt(t *testing.T) {
	t.Parallel()
	g := GrantBalance{EffectiveAt: t0, ExpiresAt: tp(t0.Add(time.Hour))}
	forever := GrantBalance{EffectiveAt: t0}
	tests := []struct {
		name  string
		g     GrantBalance
		at    time.Time
		valid bool
	}{
		{"not_active_before_effective_at", g, t0.Add(-time.Nanosecond), false},
		{"active_at_exactly_effective_at", g, t0, true},
		{"active_just_before_expiry", g, t0.Add(time.Hour - time.Nanosecond), true},
		{"not_active_at_exactly_expires_at", g, t0.Add(time.Hour), false},
		{"not_active_after_expiry", g, t0.Add(2 * time.Hour), false},
		{"a_grant_without_expiry_stays_active", forever, t0.AddDate(100, 0, 0), true},
		{"a_grant_without_expiry_is_not_active_before_effective_at", forever, t0.Add(-time.Second), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.g.ActiveAt(tt.at); got != tt.valid {
				t.Fatalf("ActiveAt(%s) = %v, want %v", tt.at, got, tt.valid)
			}
		})
	}
}

func TestGrantsAreKeptInBurnDownOrder(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	tests := []struct {
		name   string
		grants []Event
		want   []string
	}{
		{
			"lower_priority_value_burns_first",
			[]Event{granted("p2", "1", priority(2)), granted("p0", "1", priority(0)), granted("p1", "1", priority(1))},
			[]string{"p0", "p1", "p2"},
		},
		{
			"earliest_expiry_burns_first_within_a_priority",
			[]Event{granted("late", "1", expiresAt(t0.Add(3*day))), granted("early", "1", expiresAt(t0.Add(day))), granted("mid", "1", expiresAt(t0.Add(2*day)))},
			[]string{"early", "mid", "late"},
		},
		{
			"a_grant_without_expiry_burns_last_within_a_priority",
			[]Event{granted("never", "1"), granted("someday", "1", expiresAt(t0.AddDate(10, 0, 0)))},
			[]string{"someday", "never"},
		},
		{
			"priority_beats_expiry",
			[]Event{granted("soon_but_p1", "1", priority(1), expiresAt(t0.Add(time.Hour))), granted("never_but_p0", "1")},
			[]string{"never_but_p0", "soon_but_p1"},
		},
		{
			"earliest_grant_breaks_ties",
			[]Event{granted("first", "1"), granted("second", "1"), granted("third", "1")},
			[]string{"first", "second", "third"},
		},
		{
			"earliest_grant_breaks_ties_on_equal_expiry",
			[]Event{granted("first", "1", expiresAt(t0.Add(day))), granted("second", "1", expiresAt(t0.Add(day)))},
			[]string{"first", "second"},
		},
		{
			"earliest_grant_means_granted_first_not_effective_first",
			[]Event{granted("granted_first", "1", effectiveAt(t0.Add(day))), granted("effective_first", "1")},
			[]string{"granted_first", "effective_first"},
		},
		{
			"negative_priorities_come_before_zero",
			[]Event{granted("zero", "1"), granted("minus", "1", priority(-1))},
			[]string{"minus", "zero"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := lineWith(t, tt.grants...)
			if got := grantIDs(l); !slices.Equal(got, tt.want) {
				t.Fatalf("grants = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSpendable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		events []Event
		at     time.Time
		want   string
	}{
		{"an_empty_line_has_nothing_to_spend", nil, t0, "0"},
		{"active_grants_are_spendable", []Event{granted("g1", "10"), granted("g2", "5")}, t0, "15"},
		{"a_grant_not_yet_effective_is_not_spendable", []Event{granted("g1", "10", effectiveAt(t0.Add(time.Hour)))}, t0, "0"},
		{"a_grant_is_spendable_from_effective_at", []Event{granted("g1", "10", effectiveAt(t0.Add(time.Hour)))}, t0.Add(time.Hour), "10"},
		{"an_expired_but_unswept_grant_is_not_spendable", []Event{granted("g1", "10", expiresAt(t0.Add(time.Hour)))}, t0.Add(time.Hour), "0"},
		{"holds_reduce_spendable", []Event{granted("g1", "10"), CreditsReserved{ReservationID: "r1", Amount: d("4"), ExpiresAt: t0.Add(time.Hour)}}, t0, "6"},
		{"unallocated_credits_are_spendable", []Event{CreditsAdjusted{AdjustmentID: "a1", Amount: d("3"), Reason: "gift"}}, t0, "3"},
		{"the_overdraft_limit_extends_spendable", []Event{granted("g1", "10"), CreditLineConfigured{OverdraftLimit: d("25")}}, t0, "35"},
		{"debt_reduces_spendable", []Event{CreditLineConfigured{OverdraftLimit: d("25")}, UsageDebited{UsageID: "u1", Amount: d("20")}}, t0, "5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := lineWith(t, tt.events...)
			wantDec(t, "spendable", l.Spendable(tt.at), tt.want)
		})
	}
}

func TestFutureGrantCountsInBalanceButCannotPay(t *testing.T) {
	t.Parallel()
	l := lineWith(t, granted("later", "10", effectiveAt(t0.Add(time.Hour))))
	wantTotals(t, l, "10", "10")

	t.Run("usage_before_effective_at_is_rejected", func(t *testing.T) {
		t.Parallel()
		ev := must(t)(DecideUsage(l, RecordUsage{UsageID: "u1", Amount: d("1")}, t0))
		if r, ok := ev[0].(DebitRejected); !ok || r.Reason != RejectInsufficientCredits {
			t.Fatalf("events = %+v, want DebitRejected insufficient_credits", ev)
		}
	})
	t.Run("usage_at_effective_at_is_accepted", func(t *testing.T) {
		t.Parallel()
		ev := must(t)(DecideUsage(l, RecordUsage{UsageID: "u1", Amount: d("1")}, t0.Add(time.Hour)))
		if u, ok := ev[0].(UsageDebited); !ok {
			t.Fatalf("events = %+v, want UsageDebited", ev)
		} else {
			wantBurns(t, u.Burned, burn("later", "1"))
		}
	})
}

func TestNextDue(t *testing.T) {
	t.Parallel()
	t.Run("nothing_due_on_a_line_without_expiries", func(t *testing.T) {
		t.Parallel()
		l := lineWith(t, granted("g1", "10"))
		if due, ok := l.NextDue(); ok {
			t.Fatalf("NextDue = %s, true; want false", due)
		}
	})
	t.Run("the_earliest_grant_or_hold_expiry_is_due", func(t *testing.T) {
		t.Parallel()
		l := lineWith(t,
			granted("g1", "10", expiresAt(t0.Add(3*time.Hour))),
			granted("g2", "10", expiresAt(t0.Add(2*time.Hour))),
			CreditsReserved{ReservationID: "r1", Amount: d("1"), ExpiresAt: t0.Add(90 * time.Minute)},
			CreditsReserved{ReservationID: "r2", Amount: d("1"), ExpiresAt: t0.Add(4 * time.Hour)},
		)
		due, ok := l.NextDue()
		if !ok || !due.Equal(t0.Add(90*time.Minute)) {
			t.Fatalf("NextDue = %s, %v; want %s", due, ok, t0.Add(90*time.Minute))
		}
	})
	t.Run("a_used_up_grant_is_no_longer_due", func(t *testing.T) {
		t.Parallel()
		l := lineWith(t,
			granted("g1", "10", expiresAt(t0.Add(time.Hour))),
			UsageDebited{UsageID: "u1", Amount: d("10"), Burned: []Burn{burn("g1", "10")}},
		)
		if due, ok := l.NextDue(); ok {
			t.Fatalf("NextDue = %s, true; want false", due)
		}
	})
}

func TestCloneIsIndependent(t *testing.T) {
	t.Parallel()
	l := lineWith(t, granted("g1", "10"), CreditsReserved{ReservationID: "r1", Amount: d("2"), ExpiresAt: t0.Add(time.Hour)})
	before := snap(l)
	c := l.Clone()
	apply(t, c,
		UsageDebited{UsageID: "u1", Amount: d("3"), Burned: []Burn{burn("g1", "3")}},
		ReservationReleased{ReservationID: "r1", Amount: d("2"), Reason: ReleaseReleased},
		granted("g2", "4"),
	)
	if after := snap(l); after != before {
		t.Fatalf("applying to the clone changed the original:\n got %+v\nwant %+v", after, before)
	}
	if _, ok := l.Reservations["r1"]; !ok {
		t.Fatal("the original lost its hold")
	}
	wantRemaining(t, c, "g1", "7")
	wantRemaining(t, l, "g1", "10")
	// The clone keeps counting grants after the original's: its next grant
	// still burns after the earlier ones.
	if got := grantIDs(c); !slices.Equal(got, []string{"g1", "g2"}) {
		t.Fatalf("clone grants = %v", got)
	}
}

func TestCheckInvariantsCatchesBrokenState(t *testing.T) {
	t.Parallel()
	healthy := func(t *testing.T) *Line {
		return lineWith(t,
			granted("g1", "10", priority(0)),
			granted("g2", "10", priority(1)),
			CreditsReserved{ReservationID: "r1", Amount: d("3"), ExpiresAt: t0.Add(time.Hour)},
		)
	}
	tests := []struct {
		name    string
		corrupt func(l *Line)
	}{
		{"balance_without_matching_grants", func(l *Line) { l.Granted = l.Granted.Add(d("1")) }},
		{"unallocated_out_of_step", func(l *Line) { l.Unallocated = d("1") }},
		{"reserved_without_matching_holds", func(l *Line) { l.Reserved = d("4") }},
		{"a_hold_not_counted_in_reserved", func(l *Line) {
			l.Reservations["r2"] = Hold{ReservationID: "r2", Amount: d("1")}
		}},
		{"an_overdrawn_grant", func(l *Line) {
			l.Grants[0].Remaining = d("-1")
			l.Unallocated = d("11")
		}},
		{"a_used_up_grant_still_listed", func(l *Line) {
			l.Grants[0].Remaining = d("0")
			l.Unallocated = d("10")
		}},
		{"a_grant_with_more_left_than_granted", func(l *Line) {
			l.Grants[0].Remaining = d("11")
			l.Unallocated = d("-1")
		}},
		{"grants_out_of_burn_down_order", func(l *Line) { l.Grants[0], l.Grants[1] = l.Grants[1], l.Grants[0] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := healthy(t)
			if err := l.CheckInvariants(); err != nil {
				t.Fatalf("healthy line: %v", err)
			}
			tt.corrupt(l)
			if err := l.CheckInvariants(); err == nil {
				t.Fatal("CheckInvariants = nil on a broken line")
			}
		})
	}
}

func TestApplyPanicsOnImpossibleFacts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		e    Event
	}{
		{"a_burn_of_an_unknown_grant", UsageDebited{UsageID: "u1", Amount: d("1"), Burned: []Burn{burn("nope", "1")}}},
		{"an_expiry_of_an_unknown_grant", GrantExpired{GrantID: "nope", Amount: d("1")}},
		{"a_capture_of_a_hold_that_is_not_open", ReservationCaptured{ReservationID: "nope", Amount: d("1")}},
		{"a_release_of_a_hold_that_is_not_open", ReservationReleased{ReservationID: "nope", Amount: d("1"), Reason: ReleaseReleased}},
		{"a_registry_event", TenantCreated{TenantID: 1, Name: "acme"}},
		{"a_key_event", APIKeyIssued{TenantID: 1, KeyID: "k"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := lineWith(t, granted("g1", "10"))
			defer func() {
				if recover() == nil {
					t.Fatalf("Apply(%T) did not panic", tt.e)
				}
			}()
			l.Apply(tt.e)
		})
	}
}

func TestDecideGrant(t *testing.T) {
	t.Parallel()
	paris := time.FixedZone("CET", 3600)

	t.Run("a_grant_without_effective_at_is_effective_now", func(t *testing.T) {
		t.Parallel()
		c := Grant{GrantID: "g1", Amount: d("10.5"), Source: SourcePurchase, Priority: 2,
			CostPerCredit: dp("0.01"), Currency: "EUR", Description: "pack", Reference: "inv-1",
			Metadata: map[string]string{"plan": "pro"}}
		ev := must(t)(DecideGrant(NewLine(DefaultCreditType), c, t0))
		if len(ev) != 1 {
			t.Fatalf("events = %+v", ev)
		}
		want := CreditsGranted{GrantID: "g1", Amount: d("10.5"), Source: SourcePurchase, Priority: 2, EffectiveAt: t0,
			CostPerCredit: dp("0.01"), Currency: "EUR", Description: "pack", Reference: "inv-1",
			Metadata: map[string]string{"plan": "pro"}, Fingerprint: c.Fingerprint()}
		if err := sameValue(ev[0], Event(want)); err != nil {
			t.Fatal(err)
		}
		l := lineWith(t, ev...)
		wantTotals(t, l, "10.5", "10.5")
		wantDec(t, "spendable", l.Spendable(t0), "10.5")
	})
	t.Run("times_are_stored_in_utc", func(t *testing.T) {
		t.Parallel()
		c := Grant{GrantID: "g1", Amount: d("1"), Source: SourcePromotional,
			EffectiveAt: t0.Add(time.Hour).In(paris), ExpiresAt: tp(t0.Add(2 * time.Hour).In(paris))}
		g := must(t)(DecideGrant(NewLine(DefaultCreditType), c, t0))[0].(CreditsGranted)
		if g.EffectiveAt.Location() != time.UTC || !g.EffectiveAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("effective_at = %s, want %s in UTC", g.EffectiveAt, t0.Add(time.Hour))
		}
		if g.ExpiresAt.Location() != time.UTC || !g.ExpiresAt.Equal(t0.Add(2*time.Hour)) {
			t.Errorf("expires_at = %s, want %s in UTC", g.ExpiresAt, t0.Add(2*time.Hour))
		}
	})
	t.Run("a_grant_whose_expiry_is_past_is_refused", func(t *testing.T) {
		t.Parallel()
		for _, exp := range []time.Time{t0, t0.Add(-time.Hour)} {
			ev, err := DecideGrant(NewLine(DefaultCreditType), Grant{GrantID: "g1", Amount: d("1"), Source: SourcePurchase,
				EffectiveAt: t0.Add(-2 * time.Hour), ExpiresAt: tp(exp)}, t0)
			if ev != nil {
				t.Errorf("events = %+v, want none", ev)
			}
			wantFieldErrors(t, err, "expires_at")
		}
	})

	long := string(make([]byte, TextLengthMax+1))
	meta := map[string]string{}
	for i := range MetadataKeysMax + 1 {
		meta[string(rune('a'+i%26))+itoa(i)] = "v"
	}
	invalid := []struct {
		name string
		c    Grant
		want []string
	}{
		{"a_missing_grant_id", Grant{Amount: d("1"), Source: SourcePurchase}, []string{"grant_id"}},
		{"a_zero_amount", Grant{GrantID: "g", Amount: d("0"), Source: SourcePurchase}, []string{"amount"}},
		{"a_negative_amount", Grant{GrantID: "g", Amount: d("-1"), Source: SourcePurchase}, []string{"amount"}},
		{"an_amount_with_seven_places", Grant{GrantID: "g", Amount: d("1.0000001"), Source: SourcePurchase}, []string{"amount"}},
		{"an_unknown_source", Grant{GrantID: "g", Amount: d("1"), Source: "gift"}, []string{"source"}},
		{"a_missing_source", Grant{GrantID: "g", Amount: d("1")}, []string{"source"}},
		{"an_expiry_not_after_effective_at", Grant{GrantID: "g", Amount: d("1"), Source: SourcePurchase,
			EffectiveAt: t0.Add(time.Hour), ExpiresAt: tp(t0.Add(time.Hour))}, []string{"expires_at"}},
		{"a_negative_cost_per_credit", Grant{GrantID: "g", Amount: d("1"), Source: SourcePurchase, CostPerCredit: dp("-0.1")}, []string{"cost_per_credit"}},
		{"a_long_currency", Grant{GrantID: "g", Amount: d("1"), Source: SourcePurchase, Currency: "DOLLARSSS"}, []string{"currency"}},
		{"a_long_description", Grant{GrantID: "g", Amount: d("1"), Source: SourcePurchase, Description: long}, []string{"description"}},
		{"too_many_metadata_keys", Grant{GrantID: "g", Amount: d("1"), Source: SourcePurchase, Metadata: meta}, []string{"metadata"}},
		{"every_problem_at_once", Grant{Amount: d("0"), Source: "gift", Reference: long}, []string{"grant_id", "amount", "source", "reference"}},
	}
	for _, tt := range invalid {
		t.Run("refuses_"+tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := DecideGrant(NewLine(DefaultCreditType), tt.c, t0)
			if ev != nil {
				t.Errorf("events = %+v, want none", ev)
			}
			wantFieldErrors(t, err, tt.want...)
		})
	}
	t.Run("only_the_engine_writes_auto_reload", func(t *testing.T) {
		t.Parallel()
		_, err := DecideGrant(NewLine(DefaultCreditType), Grant{GrantID: "g", Amount: d("1"), Source: SourceAutoReload}, t0)
		wantFieldErrors(t, err, "source")
	})
	t.Run("every_client_source_is_accepted", func(t *testing.T) {
		t.Parallel()
		for _, s := range []Source{SourcePurchase, SourceSubscription, SourcePromotional, SourceManual} {
			if _, err := DecideGrant(NewLine(DefaultCreditType), Grant{GrantID: "g", Amount: d("1"), Source: s}, t0); err != nil {
				t.Errorf("source %s: %v", s, err)
			}
		}
	})
	t.Run("a_refusal_is_not_a_business_error", func(t *testing.T) {
		t.Parallel()
		_, err := DecideGrant(NewLine(DefaultCreditType), Grant{GrantID: "g", Source: SourcePurchase}, t0)
		if errors.Is(err, ErrInsufficientCredits) {
			t.Fatal("a malformed grant reported insufficient credits")
		}
	})
}
