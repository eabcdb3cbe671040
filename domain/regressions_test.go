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
