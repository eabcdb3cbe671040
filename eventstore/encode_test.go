package eventstore_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// eventValues are what everyEvent builds its events from: each string,
// decimal, time, map and slice field of every event type takes one of them.
type eventValues struct {
	text, other string
	number      int64
	fp          uint64
	amount      decimal.Decimal
	at          time.Time
	meta        map[string]string
	burns       []domain.Burn
	thresholds  []decimal.Decimal
	// set gives the optional pointer fields a value (else nil) and the
	// booleans true.
	set bool
}

// everyEvent returns one event of each type of domain/events.go, every
// field set from v, the strings alternating between text and other.
func everyEvent(v eventValues) []domain.Envelope {
	var at, amount = v.at, v.amount
	var atPtr *time.Time
	var amountPtr *decimal.Decimal
	if v.set {
		atPtr, amountPtr = &at, &amount
	}
	s, o, n := v.text, v.other, int(v.number)
	dims := domain.Dimensions{Module: s, Service: o, UserID: s, WorkflowID: o, WorkflowRunID: s, Endpoint: o,
		Success: v.set, Quantity: amount, Custom: v.meta}
	var config json.RawMessage
	if v.set {
		config = json.RawMessage(`{"symbol": "<€>", "places": [2, 6]}`)
	}
	events := []domain.Event{
		domain.CreditsGranted{GrantID: s, Amount: amount, Source: domain.Source(o), Priority: n, EffectiveAt: at, ExpiresAt: atPtr,
			CostPerCredit: amountPtr, Currency: s, Description: o, Reference: s, Metadata: v.meta, Trigger: o, SubscriptionID: s, Fingerprint: v.fp},
		domain.UsageDebited{UsageID: s, Amount: amount, OccurredAt: at, Dimensions: dims, Description: o, Burned: v.burns, Fingerprint: v.fp},
		domain.DebitRejected{UsageID: s, Amount: amount, OccurredAt: at, Dimensions: dims, Reason: o, Fingerprint: v.fp},
		domain.UsageBatchRecorded{BatchKey: s, Count: n, Fingerprint: v.fp},
		domain.CreditsReserved{ReservationID: s, Amount: amount, ExpiresAt: at, Dimensions: dims, Pinned: v.burns, Fingerprint: v.fp},
		domain.ReservationRejected{ReservationID: s, Amount: amount, Dimensions: dims, Reason: o, Fingerprint: v.fp},
		domain.ReservationCaptured{ReservationID: s, Amount: amount, Released: amount, Burned: v.burns, Fingerprint: v.fp},
		domain.ReservationReleased{ReservationID: s, Amount: amount, Reason: domain.ReleaseReason(o)},
		domain.CreditsAdjusted{AdjustmentID: s, Amount: amount, Reason: o, Reference: s, Burned: v.burns, Fingerprint: v.fp},
		domain.GrantExpired{GrantID: s, Amount: amount, Trigger: o},
		domain.AutoReloadConfigured{Enabled: v.set, Threshold: amount, Amount: amount},
		domain.CreditLineConfigured{OverdraftLimit: amount},
		domain.SubscriptionStarted{SubscriptionID: s, CreditsPerPeriod: amount, Period: domain.Period(o), StartsAt: at, PriceAmount: amountPtr,
			PriceCurrency: s, Rollover: v.set, Fingerprint: v.fp},
		domain.GrantVoided{GrantID: s, Amount: amount, Reason: o, Trigger: s},
		domain.UsageReversed{UsageID: s, Amount: amount, Returned: v.burns, OccurredAt: at, Dimensions: dims, Reason: o},
		domain.GrantExpiryChanged{GrantID: s, ExpiresAt: atPtr},
		domain.SubscriptionCanceled{SubscriptionID: s, EndsAt: at},
		domain.TenantCreated{TenantID: v.number, Name: s, Email: o, Currency: s, CreatedAt: at, RequestKey: o, Fingerprint: v.fp},
		domain.APIKeyIssued{TenantID: v.number, KeyID: s, KeyHash: o, Prefix: s},
		domain.APIKeyRevoked{TenantID: v.number, KeyID: o},
		domain.SettingsChanged{TenantID: v.number, Currency: s, CurrencyConfig: config},
		domain.NoticesConfigured{TenantID: v.number, Thresholds: v.thresholds, WebhookURL: o},
	}
	envs := make([]domain.Envelope, len(events))
	for i, ev := range events {
		creditType := s
		if i%2 == 1 {
			creditType = o
		}
		envs[i] = domain.Envelope{TenantID: v.number, CreditType: creditType, Event: ev}
	}
	return envs
}

// checkEncode asserts that EncodeCommit writes c exactly as json.Marshal
// does, or fails with its error, and that the hand-written encoder gives
// up exactly where json.Marshal fails.
func checkEncode(t testing.TB, c eventstore.Commit) {
	t.Helper()
	want, wantErr := eventstore.EncodeCommitJSON(c)
	got, gotErr := eventstore.EncodeCommit(c)
	switch {
	case (gotErr == nil) != (wantErr == nil):
		t.Fatalf("EncodeCommit error %v, json.Marshal error %v", gotErr, wantErr)
	case gotErr != nil && gotErr.Error() != wantErr.Error():
		t.Fatalf("EncodeCommit error %q, json.Marshal error %q", gotErr, wantErr)
	case !bytes.Equal(got, want):
		t.Fatalf("EncodeCommit writes\n%s\njson.Marshal writes\n%s", got, want)
	}
	// Appended after bytes already there, which must stay; on an error
	// nothing is appended.
	// Spare capacity, which a failed fast path scribbles on.
	prefix := append(make([]byte, 0, 64), "kept,"...)
	appended, appendErr := eventstore.AppendCommit(prefix, c)
	switch {
	case (appendErr == nil) != (wantErr == nil) || appendErr != nil && appendErr.Error() != wantErr.Error():
		t.Fatalf("AppendCommit error %v, json.Marshal error %v", appendErr, wantErr)
	case appendErr != nil && string(appended) != "kept,":
		t.Fatalf("AppendCommit failed and returned %q, want the prefix alone", appended)
	case appendErr == nil && !bytes.Equal(appended, append([]byte("kept,"), want...)):
		t.Fatalf("AppendCommit writes\n%s\njson.Marshal writes\n%s", appended, want)
	}
	if _, ok := eventstore.EncodeCommitFast(c); ok != (wantErr == nil) {
		t.Fatalf("hand-written encoder ok=%v where json.Marshal gives error %v", ok, wantErr)
	}
}

// checkEveryEvent checks the events of everyEvent(v) in one commit and,
// when json.Marshal refuses that, each alone: a field it refuses in one
// event must not hide the others.
func checkEveryEvent(t testing.TB, v eventValues) {
	t.Helper()
	envs := everyEvent(v)
	all := eventstore.Commit{RecordedAt: v.at, Prev: v.other, Events: envs}
	checkEncode(t, all)
	if _, err := eventstore.EncodeCommitJSON(all); err == nil {
		return
	}
	for _, env := range envs {
		checkEncode(t, eventstore.Commit{Prev: v.text, Events: []domain.Envelope{env}})
	}
}

func TestEveryEventCoversEveryType(t *testing.T) {
	seen := map[domain.EventType]bool{}
	for _, env := range everyEvent(eventValues{}) {
		seen[env.Event.EventType()] = true
	}
	for _, typ := range allEventTypes {
		if !seen[typ] {
			t.Errorf("everyEvent has no %s", typ)
		}
	}
}

// TestEncodeCommitMatchesJSON: the hand-written encoder writes every event
// type, with edge values in every field, byte for byte as json.Marshal.
func TestEncodeCommitMatchesJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 12, 30, 45, 123456789, time.UTC)
	base := eventValues{text: "u-1", other: "g-1", number: 7, fp: 42, amount: dec("2.5"), at: at,
		meta: map[string]string{"table_id": "4", "region": "eu"}, burns: []domain.Burn{{GrantID: "g1", Amount: dec("1.25")}, {Amount: dec("0.000")}},
		thresholds: []decimal.Decimal{dec("10"), dec("0.5")}, set: true}
	with := func(change func(v *eventValues)) eventValues {
		v := base
		change(&v)
		return v
	}
	var manyKeys = map[string]string{}
	for i := range 40 {
		manyKeys[fmt.Sprintf("k%02d", 39-i)] = fmt.Sprint(i)
	}
	cases := []struct {
		name   string
		values eventValues
	}{
		{"plain_values", base},
		{"unset_optional_fields", eventValues{at: at}},
		{"zero_values", eventValues{}},
		{"html_characters_are_escaped", with(func(v *eventValues) { v.text, v.other = "<a href='x'>&amp;</a>", "a>b&&c<" })},
		{"line_and_paragraph_separators_are_escaped", with(func(v *eventValues) { v.text, v.other = "a\u2028b\u2029c", "\u2028" })},
		{"control_characters_are_escaped", with(func(v *eventValues) { v.text, v.other = "\x00\x01\x1f\x7f", "\b\f\n\r\t\v" })},
		{"quotes_and_backslashes_are_escaped", with(func(v *eventValues) { v.text, v.other = `"\"\\`, `\u0041 \n` })},
		{"unicode_passes_as_is", with(func(v *eventValues) { v.text, v.other = "café ☕ 日本語 😀 \ufffd", "\U0010FFFF" })},
		{"invalid_utf8_becomes_replacement_characters", with(func(v *eventValues) { v.text, v.other = "a\xffb\xfe", "\xc3\xed\xa0\x80\xf4\x90\x80\x80" })},
		{"truncated_utf8_at_the_end", with(func(v *eventValues) { v.text, v.other = "ab\xe2\x80", "\xf0\x9f\x98" })},
		{"long_strings", with(func(v *eventValues) { v.text, v.other = strings.Repeat("x<", 5000), strings.Repeat("é", 3000) })},
		{"negative_amount", with(func(v *eventValues) { v.amount = dec("-1000.5") })},
		{"zero_with_places", with(func(v *eventValues) { v.amount = dec("0.000") })},
		{"negative_zero", with(func(v *eventValues) { v.amount = dec("-0") })},
		{"zero_decimal_value", with(func(v *eventValues) { v.amount = decimal.Decimal{} })},
		{"trailing_zeros", with(func(v *eventValues) { v.amount = dec("2.50000") })},
		{"trailing_zeros_up_to_the_point", with(func(v *eventValues) { v.amount = decimal.New(-1200, -2) })},
		{"small_fraction", with(func(v *eventValues) { v.amount = dec("0.000001") })},
		{"many_leading_zeros", with(func(v *eventValues) { v.amount = dec("-0.000000000000000000000000000001") })},
		{"eighteen_digits", with(func(v *eventValues) { v.amount = dec("-99999999999999999.9") })},
		{"nineteen_digits", with(func(v *eventValues) { v.amount = dec("1234567890123456789") })},
		{"smallest_int64_coefficient", with(func(v *eventValues) { v.amount = decimal.New(math.MinInt64, -3) })},
		{"more_digits_than_int64", with(func(v *eventValues) { v.amount = dec("-123456789012345678901234567890.123456789") })},
		{"positive_exponent", with(func(v *eventValues) { v.amount = decimal.New(-42, 5) })},
		{"zero_with_positive_exponent", with(func(v *eventValues) { v.amount = decimal.New(0, 5) })},
		{"exponent_beyond_the_fast_range", with(func(v *eventValues) { v.amount = decimal.New(7, 70) })},
		{"scale_beyond_the_fast_range", with(func(v *eventValues) { v.amount = decimal.New(-7, -70) })},
		{"time_in_a_zone", with(func(v *eventValues) { v.at = time.Date(2026, 3, 2, 8, 15, 0, 500, time.FixedZone("CET", 3600)) })},
		{"time_west_of_utc", with(func(v *eventValues) { v.at = time.Date(2026, 3, 2, 8, 15, 0, 0, time.FixedZone("", -(3*3600+30*60))) })},
		{"time_zone_with_seconds", with(func(v *eventValues) { v.at = time.Date(1900, 1, 1, 0, 0, 0, 0, time.FixedZone("LMT", 561)) })},
		{"time_in_local_time", with(func(v *eventValues) { v.at = time.Unix(1_780_000_000, 1).Local() })},
		{"time_with_a_monotonic_reading", with(func(v *eventValues) { v.at = time.Now() })},
		{"zero_time", with(func(v *eventValues) { v.at = time.Time{} })},
		{"last_representable_time", with(func(v *eventValues) { v.at = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC) })},
		{"year_10000_is_refused", with(func(v *eventValues) { v.at = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) })},
		{"negative_year_is_refused", with(func(v *eventValues) { v.at = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) })},
		{"zone_of_24_hours_is_refused", with(func(v *eventValues) { v.at = time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600)) })},
		{"empty_map_is_omitted", with(func(v *eventValues) { v.meta = map[string]string{} })},
		{"nil_map_is_omitted", with(func(v *eventValues) { v.meta = nil })},
		{"map_keys_sorted_as_bytes", with(func(v *eventValues) {
			v.meta = map[string]string{"b": "1", "a": "2", "B": "3", "<": ">", "": "", "é": "\xff", "a\x00": "&", "\xff": "x", "\u2028": "y"}
		})},
		{"map_with_more_keys_than_the_stack_holds", with(func(v *eventValues) { v.meta = manyKeys })},
		{"empty_slices_are_omitted_but_thresholds", with(func(v *eventValues) { v.burns, v.thresholds = []domain.Burn{}, []decimal.Decimal{} })},
		{"nil_slices_are_omitted_but_thresholds", with(func(v *eventValues) { v.burns, v.thresholds = nil, nil })},
		{"extreme_integers", with(func(v *eventValues) { v.number, v.fp = math.MinInt64, math.MaxUint64 })},
		{"largest_int64", with(func(v *eventValues) { v.number, v.fp = math.MaxInt64, 1 })},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			checkEveryEvent(t, c.values)
		})
	}
}

// TestEncodeCommitShapes covers what lies around the events: no events,
// events json.Marshal writes itself, envelopes it refuses.
func TestEncodeCommitShapes(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	grantExpired := domain.GrantExpired{GrantID: "g<1>", Amount: dec("1.5")}
	cases := []struct {
		name   string
		commit eventstore.Commit
	}{
		{"no_events_is_null", eventstore.Commit{Prev: "abc"}},
		{"empty_events_is_an_empty_array", eventstore.Commit{RecordedAt: at, Events: []domain.Envelope{}}},
		{"the_version_is_always_the_current_one", eventstore.Commit{Version: 9, RecordedAt: at, Events: []domain.Envelope{}}},
		{"a_hash_as_prev", eventstore.Commit{RecordedAt: at, Prev: eventstore.Hash([]byte("x")), Events: []domain.Envelope{}}},
		{"every_event_of_the_decoder_corpus", eventstore.Commit{RecordedAt: at, Prev: "ab", Events: fastEvents()}},
		{"a_pointer_event_takes_encoding_json", eventstore.Commit{RecordedAt: at, Events: []domain.Envelope{
			{TenantID: 1, Event: grantExpired}, {TenantID: 1, Event: &grantExpired}, {TenantID: 2, CreditType: "c", Event: grantExpired}}}},
		{"currency_config_is_compacted_and_escaped", eventstore.Commit{RecordedAt: at, Events: []domain.Envelope{
			{TenantID: 1, Event: domain.SettingsChanged{TenantID: 1, CurrencyConfig: json.RawMessage(" {\"a\" : [1, 2.50, \"<&>\u2028\"],\n\"b\":null} ")}}}}},
		{"invalid_currency_config_is_refused", eventstore.Commit{RecordedAt: at, Events: []domain.Envelope{
			{TenantID: 1, Event: grantExpired}, {TenantID: 1, Event: domain.SettingsChanged{TenantID: 1, CurrencyConfig: json.RawMessage(`{`)}}}}},
		{"an_envelope_without_an_event_is_refused", eventstore.Commit{RecordedAt: at, Events: []domain.Envelope{{TenantID: 1, Event: grantExpired}, {TenantID: 3}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			checkEncode(t, c.commit)
		})
	}
}

// TestEncodeCommitSeed: the seed history's commits, realistic usage, are
// written identically, by the hand-written encoder itself.
func TestEncodeCommitSeed(t *testing.T) {
	t.Parallel()
	for _, data := range seedCommits(t, 2000) {
		c, err := eventstore.DecodeCommit(data)
		if err != nil {
			t.Fatal(err)
		}
		checkEncode(t, c)
		if got, ok := eventstore.EncodeCommitFast(c); !ok || !bytes.Equal(got, data) {
			t.Fatalf("stored bytes\n%s\nre-encoded (ok=%v)\n%s", data, ok, got)
		}
	}
}

// BenchmarkEncodeCommit compares the hand-written encoder with json.Marshal
// on a realistic commit: 100 usage events of the seed history.
func BenchmarkEncodeCommit(b *testing.B) {
	// The seed's first line commit also holds its grant: the second holds
	// usage events only.
	commits := seedCommits(b, 300)
	c, err := eventstore.DecodeCommit(commits[2])
	if err != nil {
		b.Fatal(err)
	}
	for _, env := range c.Events {
		if env.Event.EventType() != domain.EventUsageDebited {
			b.Fatalf("a %s in the commit", env.Event.EventType())
		}
	}
	if len(c.Events) != 100 {
		b.Fatalf("%d events, want 100", len(c.Events))
	}
	for _, bc := range []struct {
		name   string
		encode func(eventstore.Commit) ([]byte, error)
	}{
		{"hand", eventstore.EncodeCommit},
		// As a partition's writer encodes: into the buffer of its last
		// commit.
		{"hand_append", func() func(eventstore.Commit) ([]byte, error) {
			var buf []byte
			return func(c eventstore.Commit) (data []byte, err error) {
				buf, err = eventstore.AppendCommit(buf[:0], c)
				return buf, err
			}
		}()},
		{"encoding_json", eventstore.EncodeCommitJSON},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			size := 0
			for b.Loop() {
				data, err := bc.encode(c)
				if err != nil {
					b.Fatal(err)
				}
				size = len(data)
			}
			b.SetBytes(int64(size))
			b.ReportMetric(float64(b.N*len(c.Events))/b.Elapsed().Seconds(), "events/s")
		})
	}
}
