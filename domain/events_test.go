package domain

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// sampleEvents has one fully populated event of every type, plus sparse ones
// for the optional fields.
func sampleEvents() []struct {
	name  string
	event Event
} {
	at := t0.Add(123456789 * time.Nanosecond)
	dims := Dimensions{Module: "chat", Service: "llm", UserID: "user-1", WorkflowID: "wf", WorkflowRunID: "run-9",
		Endpoint: "/v1/complete", Success: true, Quantity: d("1234.5"), Custom: map[string]string{"region": "eu", "model": "big"}}
	burns := []Burn{burn("g1", "0.000001"), burn("g2", "999999999999.999999")}
	return []struct {
		name  string
		event Event
	}{
		{"credits_granted", CreditsGranted{GrantID: "g1", Amount: d("100.50"), Source: SourcePurchase, Priority: -3,
			EffectiveAt: at, ExpiresAt: tp(at.Add(time.Hour)), CostPerCredit: dp("0.0125"), Currency: "USD",
			Description: "pack", Reference: "inv-1", Metadata: map[string]string{"plan": "pro"}, Fingerprint: 1<<64 - 1}},
		{"credits_granted_sparse", CreditsGranted{GrantID: "g2", Amount: d("1"), Source: SourceAutoReload, EffectiveAt: at, Trigger: "usage:u1"}},
		{"credits_granted_free", CreditsGranted{GrantID: "g3", Amount: d("1"), Source: SourcePromotional, EffectiveAt: at, CostPerCredit: dp("0")}},
		{"usage_debited", UsageDebited{UsageID: "u1", Amount: d("999999999999.999999"), OccurredAt: at, Dimensions: dims,
			Description: "tokens", Burned: burns, Fingerprint: 0x8000000000000001}},
		{"usage_debited_zero", UsageDebited{UsageID: "u0", Amount: d("0"), OccurredAt: at}},
		{"debit_rejected", DebitRejected{UsageID: "u2", Amount: d("-0.000001"), OccurredAt: at, Dimensions: dims,
			Reason: RejectOccurredInFuture, Fingerprint: 42}},
		{"usage_batch_recorded", UsageBatchRecorded{BatchKey: "batch-1", Count: 2, Fingerprint: 5}},
		{"credits_reserved", CreditsReserved{ReservationID: "r1", Amount: d("30"), ExpiresAt: at, Dimensions: dims, Fingerprint: 7}},
		{"reservation_captured", ReservationCaptured{ReservationID: "r1", Amount: d("12.5"), Released: d("17.5"), Burned: burns, Fingerprint: 9}},
		{"reservation_captured_nothing", ReservationCaptured{ReservationID: "r1", Amount: d("0"), Released: d("30")}},
		{"reservation_released", ReservationReleased{ReservationID: "r1", Amount: d("30"), Reason: ReleaseExpired}},
		{"credits_adjusted", CreditsAdjusted{AdjustmentID: "a1", Amount: d("-5.25"), Reason: "fix", Reference: "t-1", Burned: burns, Fingerprint: 3}},
		{"grant_expired", GrantExpired{GrantID: "g1", Amount: d("6.75")}},
		{"auto_reload_configured", AutoReloadConfigured{Enabled: true, Threshold: d("10"), Amount: d("50")}},
		{"auto_reload_disabled", AutoReloadConfigured{}},
		{"credit_line_configured", CreditLineConfigured{OverdraftLimit: d("25")}},
		{"tenant_created", TenantCreated{TenantID: 1<<53 + 1, Name: "Acme", Email: "ops@acme.test", Currency: "EUR",
			CreatedAt: at, RequestKey: "req-1", Fingerprint: 11}},
		{"api_key_issued", APIKeyIssued{TenantID: 7, KeyID: "k1", KeyHash: strings.Repeat("ab", 32), Prefix: "cd_live_"}},
		{"api_key_revoked", APIKeyRevoked{TenantID: 7, KeyID: "k1"}},
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	t.Parallel()
	covered := map[EventType]bool{}
	for _, s := range sampleEvents() {
		covered[s.event.EventType()] = true
		t.Run(s.name+"_survives_a_round_trip", func(t *testing.T) {
			t.Parallel()
			in := Envelope{TenantID: 42, CreditType: "gpu-seconds", Event: s.event}
			b, err := json.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			var out Envelope
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatalf("unmarshal %s: %v", b, err)
			}
			if out.TenantID != in.TenantID || out.CreditType != in.CreditType {
				t.Fatalf("envelope = %d/%q, want %d/%q", out.TenantID, out.CreditType, in.TenantID, in.CreditType)
			}
			if reflect.TypeOf(out.Event) != reflect.TypeOf(in.Event) {
				t.Fatalf("event type %T, want %T (a value, not a pointer)", out.Event, in.Event)
			}
			if err := sameValue(out.Event, in.Event); err != nil {
				t.Fatalf("round trip changed the event: %v\njson: %s", err, b)
			}
			// Writing the decoded envelope again gives the same bytes.
			b2, err := json.Marshal(out)
			if err != nil {
				t.Fatal(err)
			}
			if string(b2) != string(b) {
				t.Fatalf("second encoding differs:\n%s\n%s", b, b2)
			}
		})
	}
	all := []EventType{EventCreditsGranted, EventUsageDebited, EventDebitRejected, EventCreditsReserved,
		EventReservationCaptured, EventReservationReleased, EventCreditsAdjusted, EventGrantExpired,
		EventAutoReloadConfigured, EventCreditLineConfigured, EventTenantCreated, EventAPIKeyIssued, EventAPIKeyRevoked, EventUsageBatchRecorded}
	for _, et := range all {
		if !covered[et] {
			t.Errorf("no round-trip sample for %s", et)
		}
	}
	if len(covered) != len(all) {
		t.Errorf("samples cover %d types, the log knows %d", len(covered), len(all))
	}
}

func TestEnvelopeRoundTripOfDecidedEvents(t *testing.T) {
	t.Parallel()
	// Events as the decisions make them, not hand-written.
	l := lineWith(t)
	var log []Event
	step := func(ev []Event) {
		apply(t, l, ev...)
		log = append(log, ev...)
	}
	step(must(t)(DecideConfigureAutoReload(l, ConfigureAutoReload{Enabled: true, Threshold: d("20"), Amount: d("15")})))
	step(must(t)(DecideConfigureLine(l, ConfigureLine{OverdraftLimit: d("3")})))
	step(must(t)(DecideGrant(l, Grant{GrantID: "g1", Amount: d("50"), Source: SourceSubscription, ExpiresAt: tp(t0.Add(time.Hour))}, t0)))
	step(must(t)(DecideUsage(l, RecordUsage{UsageID: "u1", Amount: d("35.123456"), Dimensions: Dimensions{Quantity: d("2")}}, t0)))
	step(must(t)(DecideUsage(l, RecordUsage{UsageID: "u2", Amount: d("1000")}, t0)))
	step(must(t)(DecideReserve(l, Reserve{ReservationID: "r1", Amount: d("5")}, t0)))
	step(must(t)(DecideCapture(l, Capture{ReservationID: "r1", Amount: dp("2")}, t0)))
	step(must(t)(DecideAdjust(l, Adjust{AdjustmentID: "a1", Amount: d("-1"), Reason: "fix"}, t0)))
	step(DecideDue(l, t0.Add(time.Hour)))

	replayed := NewLine(DefaultCreditType)
	for i, e := range log {
		b, err := json.Marshal(Envelope{TenantID: 1, CreditType: DefaultCreditType, Event: e})
		if err != nil {
			t.Fatal(err)
		}
		var env Envelope
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatal(err)
		}
		if err := sameValue(env.Event, e); err != nil {
			t.Fatalf("event %d (%T): %v", i, e, err)
		}
		apply(t, replayed, env.Event)
	}
	if snap(replayed) != snap(l) {
		t.Fatalf("replaying the decoded log gives\n%+v\nwant\n%+v", snap(replayed), snap(l))
	}
}

func TestEnvelopeJSONShape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  Envelope
		want string
	}{
		{"a_line_event_names_its_type_tenant_and_credit_type",
			Envelope{TenantID: 7, CreditType: "default", Event: GrantExpired{GrantID: "g1", Amount: d("2.50")}},
			`{"type":"GrantExpired","tenant_id":7,"credit_type":"default","data":{"grant_id":"g1","amount":"2.5"}}`},
		{"a_registry_event_has_no_credit_type",
			Envelope{TenantID: 7, Event: APIKeyRevoked{TenantID: 7, KeyID: "k1"}},
			`{"type":"APIKeyRevoked","tenant_id":7,"data":{"tenant_id":7,"key_id":"k1"}}`},
		{"optional_fields_are_left_out",
			Envelope{TenantID: 1, CreditType: "default", Event: ReservationCaptured{ReservationID: "r", Amount: d("1"), Released: d("0")}},
			`{"type":"ReservationCaptured","tenant_id":1,"credit_type":"default","data":{"reservation_id":"r","amount":"1","released":"0"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("json = %s\nwant   %s", b, tt.want)
			}
		})
	}
}

func TestEnvelopeRegistryEventsCompareExactly(t *testing.T) {
	t.Parallel()
	// No decimals inside: reflect.DeepEqual is safe here.
	for _, e := range []Event{
		TenantCreated{TenantID: 3, Name: "n", CreatedAt: t0, Fingerprint: 5},
		APIKeyIssued{TenantID: 3, KeyID: "k", KeyHash: "h", Prefix: "p"},
		APIKeyRevoked{TenantID: 3, KeyID: "k"},
	} {
		b, err := json.Marshal(Envelope{TenantID: 3, Event: e})
		if err != nil {
			t.Fatal(err)
		}
		var out Envelope
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		if want := (Envelope{TenantID: 3, Event: e}); !reflect.DeepEqual(out, want) {
			t.Errorf("round trip = %#v, want %#v", out, want)
		}
	}
}

func TestEnvelopeRefusesWhatItCannotRead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, json, wantInErr string
	}{
		{"an_unknown_event_type", `{"type":"CreditsStolen","tenant_id":1,"data":{}}`, "unknown event type"},
		{"a_missing_event_type", `{"tenant_id":1,"data":{}}`, "unknown event type"},
		{"a_type_in_the_wrong_case", `{"type":"creditsgranted","tenant_id":1,"data":{}}`, "unknown event type"},
		{"data_of_the_wrong_shape", `{"type":"GrantExpired","tenant_id":1,"data":{"amount":{}}}`, "decimal"},
		{"an_amount_that_is_not_a_number", `{"type":"GrantExpired","tenant_id":1,"data":{"amount":"lots"}}`, "decimal"},
		{"missing_data", `{"type":"GrantExpired","tenant_id":1}`, "decode GrantExpired"},
		{"not_json", `{"type":`, ""},
		{"a_tenant_id_that_is_a_string", `{"type":"GrantExpired","tenant_id":"1","data":{}}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var env Envelope
			err := json.Unmarshal([]byte(tt.json), &env)
			if err == nil {
				t.Fatalf("decoded %s as %+v, want an error", tt.json, env)
			}
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.wantInErr)
			}
			if env.Event != nil {
				t.Fatalf("a failed decode left an event: %+v", env.Event)
			}
		})
	}
}

func TestSameValueSeesDifferences(t *testing.T) {
	t.Parallel()
	// The round-trip tests are only as good as the comparison.
	base := CreditsGranted{GrantID: "g", Amount: d("1.50"), EffectiveAt: t0, ExpiresAt: tp(t0), Metadata: map[string]string{"a": "b"}}
	if err := sameValue(base, CreditsGranted{GrantID: "g", Amount: d("1.5"), EffectiveAt: t0, ExpiresAt: tp(t0), Metadata: map[string]string{"a": "b"}}); err != nil {
		t.Fatalf("equal decimals compared unequal: %v", err)
	}
	changes := map[string]func(*CreditsGranted){
		"amount":         func(g *CreditsGranted) { g.Amount = d("1.500001") },
		"nil_expiry":     func(g *CreditsGranted) { g.ExpiresAt = nil },
		"expiry":         func(g *CreditsGranted) { g.ExpiresAt = tp(t0.Add(1)) },
		"zone":           func(g *CreditsGranted) { g.EffectiveAt = t0.In(time.FixedZone("X", 0)) },
		"metadata":       func(g *CreditsGranted) { g.Metadata = map[string]string{"a": "c"} },
		"empty_metadata": func(g *CreditsGranted) { g.Metadata = map[string]string{} },
		"cost":           func(g *CreditsGranted) { g.CostPerCredit = dp("0") },
	}
	for name, change := range changes {
		g := base
		change(&g)
		if sameValue(base, g) == nil {
			t.Errorf("a changed %s compared equal", name)
		}
	}
	if sameValue([]Burn{burn("a", "1")}, []Burn{burn("a", "2")}) == nil {
		t.Error("different burns compared equal")
	}
}
