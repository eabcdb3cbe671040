package domain

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestRegressions(t *testing.T) {
	t.Parallel()

	t.Run("fields_with_nul_bytes_do_not_share_a_fingerprint", func(t *testing.T) {
		a := RecordUsage{UsageID: "u", Amount: d("1"), Dimensions: Dimensions{Module: "a\x00b"}}
		b := RecordUsage{UsageID: "u", Amount: d("1"), Dimensions: Dimensions{Module: "a", Service: "b\x00"}}
		if a.Fingerprint() == b.Fingerprint() {
			t.Fatal("different bodies share a fingerprint")
		}
		c := RecordUsage{UsageID: "u", Amount: d("1"), Dimensions: Dimensions{Custom: map[string]string{"a\x00b": "c"}}}
		e := RecordUsage{UsageID: "u", Amount: d("1"), Dimensions: Dimensions{Custom: map[string]string{"a": "b\x00c"}}}
		if c.Fingerprint() == e.Fingerprint() {
			t.Fatal("different custom maps share a fingerprint")
		}
	})

	t.Run("zero_usage_is_accepted_on_a_line_in_debt", func(t *testing.T) {
		l := lineWith(t, CreditsAdjusted{AdjustmentID: "a", Amount: d("-5"), Reason: "chargeback"})
		events := must(t)(DecideUsage(l, RecordUsage{UsageID: "u", Amount: d("0")}, t0))
		if _, ok := events[0].(UsageDebited); !ok {
			t.Fatalf("got %T, want UsageDebited", events[0])
		}
	})

	t.Run("an_open_reservation_id_cannot_be_reserved_again", func(t *testing.T) {
		l := lineWith(t, granted("g", "100"))
		apply(t, l, must(t)(DecideReserve(l, Reserve{ReservationID: "r", Amount: d("5")}, t0))...)
		if _, err := DecideReserve(l, Reserve{ReservationID: "r", Amount: d("10")}, t0); !errors.Is(err, ErrInvalidCommand) {
			t.Fatalf("err = %v, want a field error", err)
		}
	})

	t.Run("client_grant_ids_cannot_take_the_auto_reload_prefix", func(t *testing.T) {
		l := NewLine(DefaultCreditType)
		_, err := DecideGrant(l, Grant{GrantID: AutoReloadGrantPrefix + "usage:u1", Amount: d("1"), Source: SourcePurchase}, t0)
		wantFieldErrors(t, err, "grant_id")
	})

	t.Run("a_grant_id_already_on_the_line_is_refused", func(t *testing.T) {
		l := lineWith(t, granted("g", "100"))
		_, err := DecideGrant(l, Grant{GrantID: "g", Amount: d("1"), Source: SourcePurchase}, t0)
		wantFieldErrors(t, err, "grant_id")
	})

	t.Run("a_hold_past_its_ttl_cannot_be_captured", func(t *testing.T) {
		l := lineWith(t, granted("g", "100"))
		apply(t, l, must(t)(DecideReserve(l, Reserve{ReservationID: "r", Amount: d("5"), TTL: time.Minute}, t0))...)
		if _, err := DecideCapture(l, Capture{ReservationID: "r"}, t0.Add(time.Minute)); !errors.Is(err, ErrReservationClosed) {
			t.Fatalf("err = %v, want ErrReservationClosed", err)
		}
	})

	t.Run("custom_keys_are_restricted_to_what_queries_can_name", func(t *testing.T) {
		bad := RecordUsage{UsageID: "u", Amount: d("1"), Dimensions: Dimensions{Custom: map[string]string{"a b": "x", `q"`: "y", "ok.key:1": "z"}}}
		wantFieldErrors(t, bad.Validate(), "custom.a b", `custom.q"`)
	})

	t.Run("an_envelope_without_data_does_not_decode", func(t *testing.T) {
		var env Envelope
		if err := json.Unmarshal([]byte(`{"type":"GrantExpired","tenant_id":1,"data":null}`), &env); err == nil {
			t.Fatal("decoded an event without data")
		}
		if _, err := json.Marshal(Envelope{TenantID: 1}); err == nil {
			t.Fatal("encoded an envelope without an event")
		}
	})
}

func TestGrantAmendments(t *testing.T) {
	t.Parallel()
	later, soon := t0.Add(48*time.Hour), t0.Add(time.Hour)
	t.Run("voiding_takes_the_remaining_credits_off_the_balance", func(t *testing.T) {
		l := lineWith(t, granted("a", "100"), granted("b", "50"))
		apply(t, l, must(t)(DecideUsage(l, RecordUsage{UsageID: "u", Amount: d("30")}, t0))...)
		events := must(t)(DecideVoidGrant(l, VoidGrant{GrantID: "a", Reason: "refunded"}))
		if v := events[0].(GrantVoided); !v.Amount.Equal(d("70")) {
			t.Fatalf("voided %s, want the 70 left", v.Amount)
		}
		apply(t, l, events...)
		wantTotals(t, l, "50", "50")
		wantDec(t, "adjusted", l.Adjusted, "-70")
		if _, err := DecideVoidGrant(l, VoidGrant{GrantID: "a", Reason: "again"}); !errors.Is(err, ErrGrantNotFound) {
			t.Fatalf("second void: %v", err)
		}
		_, err := DecideVoidGrant(l, VoidGrant{GrantID: "b"})
		wantFieldErrors(t, err, "reason")
	})
	t.Run("changing_an_expiry_reorders_the_burn_down", func(t *testing.T) {
		l := lineWith(t, granted("a", "10", expiresAt(later)), granted("b", "10"))
		apply(t, l, must(t)(DecideChangeGrantExpiry(l, ChangeGrantExpiry{GrantID: "b", ExpiresAt: &soon}, t0))...)
		burned := must(t)(DecideUsage(l, RecordUsage{UsageID: "u", Amount: d("5")}, t0))[0].(UsageDebited).Burned
		wantBurns(t, burned, burn("b", "5"))
		apply(t, l, must(t)(DecideChangeGrantExpiry(l, ChangeGrantExpiry{GrantID: "b"}, t0))...)
		if g := l.Grants[len(l.Grants)-1]; g.GrantID != "b" || g.ExpiresAt != nil {
			t.Fatalf("b without expiry should burn last: %+v", l.Grants)
		}
		past := t0.Add(-time.Minute)
		_, err := DecideChangeGrantExpiry(l, ChangeGrantExpiry{GrantID: "a", ExpiresAt: &past}, t0)
		wantFieldErrors(t, err, "expires_at")
		if events := must(t)(DecideChangeGrantExpiry(l, ChangeGrantExpiry{GrantID: "a", ExpiresAt: &later}, t0)); len(events) != 0 {
			t.Fatalf("unchanged expiry appended %v", events)
		}
	})
}

func TestUsageReversal(t *testing.T) {
	t.Parallel()
	l := lineWith(t, granted("a", "10", priority(0)), granted("b", "100", priority(1)))
	debit := must(t)(DecideUsage(l, RecordUsage{UsageID: "u", Amount: d("25")}, t0))
	apply(t, l, debit...)
	wantRemaining(t, l, "b", "85")
	if _, ok := l.Depleted["a"]; !ok {
		t.Fatal("a grant burned to zero is kept for reversals")
	}
	events := must(t)(DecideReverseUsage(l, ReverseUsage{UsageID: "u", Reason: "refund"}, debit[0].(UsageDebited), t0))
	apply(t, l, events...)
	wantRemaining(t, l, "a", "10")
	wantRemaining(t, l, "b", "100")
	wantDec(t, "used", l.Used, "0")
	wantTotals(t, l, "110", "110")

	t.Run("credits_of_a_voided_grant_are_voided_again", func(t *testing.T) {
		l := lineWith(t, granted("a", "10"), granted("b", "100", priority(1)))
		debit := must(t)(DecideUsage(l, RecordUsage{UsageID: "u", Amount: d("15")}, t0))
		apply(t, l, debit...)
		apply(t, l, must(t)(DecideVoidGrant(l, VoidGrant{GrantID: "b", Reason: "refund"}))...)
		apply(t, l, must(t)(DecideReverseUsage(l, ReverseUsage{UsageID: "u", Reason: "oops"}, debit[0].(UsageDebited), t0))...)
		wantRemaining(t, l, "a", "10")
		wantDec(t, "unallocated", l.Unallocated, "0")
		wantTotals(t, l, "10", "10")
		_, err := DecideReverseUsage(l, ReverseUsage{UsageID: "u"}, debit[0].(UsageDebited), t0)
		wantFieldErrors(t, err, "reason")
	})

	t.Run("credits_returned_to_a_grant_past_its_expiry_expire_at_once", func(t *testing.T) {
		l := lineWith(t, granted("a", "10", expiresAt(t0.Add(time.Hour))))
		debit := must(t)(DecideUsage(l, RecordUsage{UsageID: "u", Amount: d("10")}, t0))
		apply(t, l, debit...)
		events := must(t)(DecideReverseUsage(l, ReverseUsage{UsageID: "u", Reason: "late"}, debit[0].(UsageDebited), t0.Add(2*time.Hour)))
		if err := sameValue(events[1:], []Event{GrantExpired{GrantID: "a", Amount: d("10"), Trigger: "reverse:u"}}); err != nil {
			t.Fatal(err)
		}
		apply(t, l, events...)
		wantDec(t, "unallocated", l.Unallocated, "0")
		wantDec(t, "expired", l.Expired, "10")
		wantTotals(t, l, "0", "0")
	})
}
