package eventstore_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/seed"
)

// allEventTypes lists every event type of domain/events.go: the corpus
// below must hold each, so a new type without a fast-path test fails.
var allEventTypes = []domain.EventType{
	domain.EventCreditsGranted, domain.EventUsageDebited, domain.EventDebitRejected, domain.EventCreditsReserved,
	domain.EventReservationCaptured, domain.EventReservationReleased, domain.EventCreditsAdjusted, domain.EventGrantExpired,
	domain.EventAutoReloadConfigured, domain.EventCreditLineConfigured, domain.EventSubscriptionStarted, domain.EventGrantVoided,
	domain.EventUsageReversed, domain.EventGrantExpiryChanged, domain.EventSubscriptionCanceled, domain.EventReservationRejected,
	domain.EventTenantCreated, domain.EventAPIKeyIssued, domain.EventAPIKeyRevoked, domain.EventSettingsChanged, domain.EventNoticesConfigured,
	domain.EventUsageBatchRecorded,
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func decPtr(s string) *decimal.Decimal { d := dec(s); return &d }

func timePtr(t time.Time) *time.Time { return &t }

// fastEvents holds events of every type, with every field set and with
// optional ones unset, unicode, empty maps and nil and empty slices (which
// json.Marshal omits, but for thresholds), times in UTC and not, the
// extreme integers: each decodes through the fast path.
func fastEvents() []domain.Envelope {
	t0 := time.Date(2026, 3, 1, 12, 30, 45, 123456789, time.UTC)
	t1 := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	tz := time.Date(2026, 3, 2, 8, 15, 0, 500, time.FixedZone("CET", 3600))
	uni := "café ☕ 日本語 😀 ✓"
	dims := domain.Dimensions{Module: "lasso", Service: "api", UserID: "user-7", WorkflowID: "wf-1", WorkflowRunID: "run-9",
		Endpoint: "/v1/tables", Success: true, Quantity: dec("3"), Custom: map[string]string{"table_id": "4", uni: uni}}
	burns := []domain.Burn{{GrantID: "g1", Amount: dec("1.25")}, {GrantID: uni, Amount: dec("0.000")}}
	envs := []domain.Envelope{
		{TenantID: 1, CreditType: domain.DefaultCreditType, Event: domain.CreditsGranted{GrantID: "g1", Amount: dec("3.1550"), Source: domain.SourcePurchase,
			Priority: -3, EffectiveAt: t0, ExpiresAt: timePtr(t1), CostPerCredit: decPtr("0.0125"), Currency: "EUR", Description: uni,
			Reference: "ref-1", Metadata: map[string]string{"k": "v", "": "", uni: "x"}, Trigger: "u1", SubscriptionID: "s1", Fingerprint: 1<<64 - 1}},
		{TenantID: 1, CreditType: "gpu", Event: domain.CreditsGranted{GrantID: "g2", Amount: dec("10"), Source: domain.SourceManual, EffectiveAt: tz,
			Metadata: map[string]string{}}},
		{TenantID: 1, CreditType: "gpu", Event: domain.CreditsGranted{GrantID: "g3", Amount: dec("123456789012345678901234.5"), Priority: 9223372036854775807}},
		{TenantID: 2, CreditType: domain.DefaultCreditType, Event: domain.UsageDebited{UsageID: "u1", Amount: dec("-0.5"), OccurredAt: t0, Dimensions: dims,
			Description: "d", Burned: burns, Fingerprint: 42}},
		{TenantID: 2, Event: domain.UsageDebited{UsageID: "u2", Amount: dec("0"), OccurredAt: t1, Burned: []domain.Burn{}}},
		{TenantID: 2, Event: domain.UsageDebited{UsageID: "u3", Amount: dec("1e-3"), Dimensions: domain.Dimensions{Custom: map[string]string{}}}},
		{TenantID: 3, CreditType: "c", Event: domain.DebitRejected{UsageID: "u4", Amount: dec("7"), OccurredAt: t0, Dimensions: dims, Reason: "insufficient", Fingerprint: 1}},
		{TenantID: 3, Event: domain.DebitRejected{UsageID: "u5"}},
		{TenantID: 3, CreditType: "c", Event: domain.UsageBatchRecorded{BatchKey: uni, Count: 1000, Fingerprint: 1<<64 - 1}},
		{TenantID: 3, Event: domain.UsageBatchRecorded{}},
		{TenantID: 4, CreditType: "c", Event: domain.CreditsReserved{ReservationID: "r1", Amount: dec("5"), ExpiresAt: t1, Dimensions: dims, Fingerprint: 7}},
		{TenantID: 4, Event: domain.CreditsReserved{ReservationID: "r2", ExpiresAt: tz}},
		{TenantID: 4, CreditType: "c", Event: domain.CreditsReserved{ReservationID: "r3", Amount: dec("7"), ExpiresAt: t1, Dimensions: dims,
			Pinned: []domain.Burn{{GrantID: "g1", Amount: dec("4.5")}, {Amount: dec("2.5")}}, Fingerprint: 9}},
		{TenantID: 4, Event: domain.CreditsReserved{ReservationID: "r4", ExpiresAt: t1, Pinned: []domain.Burn{}}},
		{TenantID: 4, CreditType: "c", Event: domain.ReservationRejected{ReservationID: "r5", Amount: dec("70"), Dimensions: dims, Reason: "insufficient_credits", Fingerprint: 11}},
		{TenantID: 4, Event: domain.ReservationRejected{ReservationID: "r6"}},
		{TenantID: 4, CreditType: "c", Event: domain.ReservationCaptured{ReservationID: "r1", Amount: dec("4"), Released: dec("1"), Burned: burns, Fingerprint: 8}},
		{TenantID: 4, Event: domain.ReservationCaptured{ReservationID: "r2"}},
		{TenantID: 4, Event: domain.ReservationReleased{ReservationID: "r1", Amount: dec("1"), Reason: domain.ReleaseExpired}},
		{TenantID: 5, Event: domain.CreditsAdjusted{AdjustmentID: "a1", Amount: dec("-2.50"), Reason: uni, Reference: "ref", Burned: burns, Fingerprint: 9}},
		{TenantID: 5, Event: domain.CreditsAdjusted{AdjustmentID: "a2", Amount: dec("2")}},
		{TenantID: 5, Event: domain.GrantExpired{GrantID: "g1", Amount: dec("99.99")}},
		{TenantID: 5, Event: domain.GrantExpired{GrantID: "g1", Amount: dec("1.5"), Trigger: "reservation:r3"}},
		{TenantID: 5, Event: domain.AutoReloadConfigured{Enabled: true, Threshold: dec("10"), Amount: dec("100")}},
		{TenantID: 5, Event: domain.AutoReloadConfigured{}},
		{TenantID: 5, Event: domain.CreditLineConfigured{OverdraftLimit: dec("-1000.5")}},
		{TenantID: 6, Event: domain.SubscriptionStarted{SubscriptionID: "s1", CreditsPerPeriod: dec("1000"), Period: domain.PeriodMonthly, StartsAt: t0,
			PriceAmount: decPtr("49.90"), PriceCurrency: "USD", Rollover: true, Fingerprint: 3}},
		{TenantID: 6, Event: domain.SubscriptionStarted{SubscriptionID: "s2"}},
		{TenantID: 6, Event: domain.GrantVoided{GrantID: "g2", Amount: dec("3"), Reason: "fraud"}},
		{TenantID: 6, Event: domain.GrantVoided{GrantID: "g2", Amount: dec("1"), Reason: "credits given back to a voided grant", Trigger: "reverse:u1"}},
		{TenantID: 6, Event: domain.UsageReversed{UsageID: "u1", Amount: dec("0.5"), Returned: burns, OccurredAt: t0, Dimensions: dims, Reason: "refund"}},
		{TenantID: 6, Event: domain.UsageReversed{UsageID: "u2", Returned: []domain.Burn{}}},
		{TenantID: 6, Event: domain.GrantExpiryChanged{GrantID: "g1", ExpiresAt: timePtr(tz)}},
		{TenantID: 6, Event: domain.GrantExpiryChanged{GrantID: "g1"}},
		{TenantID: 6, Event: domain.SubscriptionCanceled{SubscriptionID: "s1", EndsAt: t1}},
		{TenantID: 7, Event: domain.TenantCreated{TenantID: 7, Name: uni, Email: "a@b.test", Currency: "USD", CreatedAt: t0, RequestKey: "rk", Fingerprint: 5}},
		{TenantID: -9223372036854775808, Event: domain.TenantCreated{TenantID: -9223372036854775808}},
		{TenantID: 7, Event: domain.APIKeyIssued{TenantID: 7, KeyID: "k1", KeyHash: strings.Repeat("ab", 32), Prefix: "cd_"}},
		{TenantID: 7, Event: domain.APIKeyRevoked{TenantID: 7, KeyID: "k1"}},
		{TenantID: 7, Event: domain.SettingsChanged{TenantID: 7, Currency: "EUR"}},
		{TenantID: 7, Event: domain.SettingsChanged{TenantID: 7}},
		{TenantID: 7, Event: domain.NoticesConfigured{TenantID: 7, Thresholds: []decimal.Decimal{dec("10"), dec("0.5"), dec("10")}, WebhookURL: "https://example.test/hook"}},
		{TenantID: 7, Event: domain.NoticesConfigured{TenantID: 7, Thresholds: []decimal.Decimal{}}},
	}
	return envs
}

// encode is EncodeCommit, failing the test on error.
func encode(t testing.TB, c eventstore.Commit) []byte {
	t.Helper()
	data, err := eventstore.EncodeCommit(c)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// checkFast asserts the fast path decodes data to what encoding/json does.
func checkFast(t *testing.T, data []byte) {
	t.Helper()
	slow, err := eventstore.DecodeCommitJSON(data)
	if err != nil {
		t.Fatalf("encoding/json refuses %s: %v", data, err)
	}
	fast, ok := eventstore.DecodeCommitFast(data)
	if !ok {
		t.Fatalf("fast path falls back on %s", data)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("fast path differs on %s:\nfast %#v\nslow %#v", data, fast, slow)
	}
}

func TestDecodeFastEveryEvent(t *testing.T) {
	envs := fastEvents()
	seen := map[domain.EventType]bool{}
	for _, e := range envs {
		seen[e.Event.EventType()] = true
	}
	for _, typ := range allEventTypes {
		if !seen[typ] {
			t.Errorf("no %s in the corpus", typ)
		}
	}
	at := time.Date(2026, 3, 1, 0, 0, 0, 1, time.UTC)
	// Each event alone, then all in one commit, then commits of no events.
	for i, e := range envs {
		t.Run(fmt.Sprintf("%d-%s", i, e.Event.EventType()), func(t *testing.T) {
			checkFast(t, encode(t, eventstore.Commit{RecordedAt: at, Prev: "ab", Events: []domain.Envelope{e}}))
		})
	}
	checkFast(t, encode(t, eventstore.Commit{RecordedAt: at, Prev: eventstore.Hash(nil), Events: envs}))
	// A big commit: its events spill from the stack buffer, its burns fill
	// several slabs (one array across two), its strings and decimals
	// collide in the intern caches (ids alike but in the middle) or are
	// too long for them.
	var big []domain.Envelope
	for i := range 700 {
		burns := make([]domain.Burn, i%6)
		for j := range burns {
			burns[j] = domain.Burn{GrantID: fmt.Sprintf("grant-%04d-suffix!", (i+j)%300), Amount: decimal.New(int64(i*j%1000-500), -int32(j%4))}
		}
		big = append(big, domain.Envelope{TenantID: int64(i % 3), CreditType: fmt.Sprintf("credits-%03d-type", i%50), Event: domain.UsageDebited{
			UsageID: fmt.Sprint("u", i), Amount: decimal.New(int64(i%300), -int32(i%7)), OccurredAt: at.Add(time.Duration(i) * time.Second),
			Dimensions: domain.Dimensions{UserID: strings.Repeat("x", 60+i%10), Module: fmt.Sprint("m", i%40), Quantity: decimal.New(int64(i%11), 0)},
			Burned:     burns,
		}})
	}
	checkFast(t, encode(t, eventstore.Commit{RecordedAt: at, Events: big}))
	// Decimals alike but for the exponent, many in one event.
	var thresholds []decimal.Decimal
	for coef := range int64(40) {
		for exp := range int32(19) {
			thresholds = append(thresholds, decimal.New(coef, -exp))
		}
	}
	checkFast(t, encode(t, eventstore.Commit{Events: []domain.Envelope{{TenantID: 1, Event: domain.NoticesConfigured{Thresholds: thresholds}}}}))
	// Empty maps and slices, which json.Marshal omits from these events,
	// decode non-nil.
	checkFast(t, []byte(`{"v":1,"events":[{"type":"UsageDebited","tenant_id":1,"data":{"burned":[],"dimensions":{"custom":{}}}},`+
		`{"type":"CreditsGranted","tenant_id":1,"data":{"metadata":{}}},{"type":"UsageReversed","tenant_id":1,"data":{"returned":[]}}]}`))
	checkFast(t, []byte(`{"v":1}`))
	checkFast(t, []byte(`{"v":1,"events":[]}`))
	// Repeated scalar keys keep the last value, as with encoding/json.
	checkFast(t, []byte(`{"v":0,"prev":"a","v":1,"prev":"b","events":[{"type":"GrantExpired","type":"GrantVoided","tenant_id":1,"tenant_id":2,`+
		`"data":{"grant_id":"g","amount":"1","amount":"2.50","reason":"x","reason":"y"}}]}`))
	// Repeated map keys: the last wins.
	checkFast(t, []byte(`{"v":1,"events":[{"type":"CreditsGranted","tenant_id":1,"data":{"metadata":{"a":"1","a":"2"}}}]}`))
	// Decimals NewFromString reads in other forms than String writes.
	checkFast(t, []byte(`{"v":1,"events":[{"type":"NoticesConfigured","tenant_id":1,"data":{"thresholds":`+
		`["007","-0","0.000","+5","5.",".5","1e3","-1.5E-2","123456789012345678","-12345678901234567.8","1234567890123456789","−1.5"]}}]}`))
	// Times in other forms than Z: Time.UnmarshalJSON reads them.
	checkFast(t, []byte(`{"v":1,"at":"2026-01-01T00:00:00+01:00","events":[{"type":"SubscriptionCanceled","tenant_id":1,"data":{"ends_at":"2026-01-01T00:00:00.5-00:30"}}]}`))
}

func TestDecodeFastSeed(t *testing.T) {
	n := 0
	err := seed.Commits(seed.Shape{TenantID: 1, Events: 2000, Days: 1, End: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), EventsPerCommit: 100, Seed: 1},
		func(seq uint64, data []byte) error {
			n++
			checkFast(t, data)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Fatalf("only %d commits", n)
	}
}

// TestDecodeFastRefuses: inputs outside what EncodeCommit writes make the
// fast path give up, and DecodeCommit then answers as encoding/json.
func TestDecodeFastRefuses(t *testing.T) {
	const ok = `{"v":1,"at":"2026-01-01T00:00:00Z","prev":"","events":[{"type":"UsageDebited","tenant_id":2,"credit_type":"gpu","data":{"usage_id":"u","amount":"1.5","occurred_at":"2026-01-01T00:00:00Z","dimensions":{"module":"m","success":true,"quantity":"0","custom":{"a":"b"}},"burned":[{"grant_id":"g","amount":"1.5"}],"fp":3}}]}`
	checkFast(t, []byte(ok))
	sub := func(old, new string) string {
		if !strings.Contains(ok, old) {
			t.Fatalf("%q not in the base commit", old)
		}
		return strings.Replace(ok, old, new, 1)
	}
	for name, in := range map[string]string{
		"leading space":      " " + ok,
		"trailing newline":   ok + "\n",
		"space after colon":  sub(`"v":1`, `"v": 1`),
		"space in array":     sub(`"burned":[`, `"burned":[ `),
		"upper-case key":     sub(`"prev"`, `"Prev"`),
		"upper-case data":    sub(`"usage_id"`, `"Usage_ID"`),
		"unknown key":        sub(`"prev":""`, `"prev":"","x":1`),
		"unknown data key":   sub(`"fp":3`, `"fp":3,"foo":"bar"`),
		"unknown dims key":   sub(`"module":"m"`, `"module":"m","region":"eu"`),
		"escape":             sub(`"usage_id":"u"`, `"usage_id":"\u0075"`),
		"escaped quote":      sub(`"usage_id":"u"`, `"usage_id":"u\"x"`),
		"escaped key":        sub(`"usage_id"`, `"usage\u005fid"`),
		"control char":       sub(`"usage_id":"u"`, "\"usage_id\":\"u\tx\""),
		"null string":        sub(`"usage_id":"u"`, `"usage_id":null`),
		"null data":          sub(`"data":{`, `"data":null,"x":{`),
		"null events":        sub(`"events":[`, `"events":null,"y":[`),
		"null decimal":       sub(`"amount":"1.5"`, `"amount":null`),
		"null time":          sub(`"occurred_at":"2026-01-01T00:00:00Z"`, `"occurred_at":null`),
		"null map":           sub(`"custom":{"a":"b"}`, `"custom":null`),
		"null slice":         sub(`"burned":[{"grant_id":"g","amount":"1.5"}]`, `"burned":null`),
		"invalid utf-8":      sub(`"usage_id":"u"`, "\"usage_id\":\"u\xff\""),
		"surrogate utf-8":    sub(`"usage_id":"u"`, "\"usage_id\":\"\xed\xa0\x80\""),
		"trailing garbage":   ok + "x",
		"second object":      ok + "{}",
		"fraction in int":    sub(`"tenant_id":2`, `"tenant_id":2.0`),
		"exponent in int":    sub(`"tenant_id":2`, `"tenant_id":2e0`),
		"leading zero":       sub(`"tenant_id":2`, `"tenant_id":02`),
		"negative fp":        sub(`"fp":3`, `"fp":-3`),
		"negative zero fp":   sub(`"fp":3`, `"fp":-0`),
		"int overflow":       sub(`"tenant_id":2`, `"tenant_id":9223372036854775808`),
		"uint overflow":      sub(`"fp":3`, `"fp":18446744073709551616`),
		"string int":         sub(`"tenant_id":2`, `"tenant_id":"2"`),
		"number decimal":     sub(`"amount":"1.5"`, `"amount":1.5`),
		"bad decimal":        sub(`"amount":"1.5"`, `"amount":"1.5x"`),
		"empty decimal":      sub(`"amount":"1.5"`, `"amount":""`),
		"bad time":           sub(`"occurred_at":"2026-01-01T00:00:00Z"`, `"occurred_at":"2026-13-01T00:00:00Z"`),
		"bool as string":     sub(`"success":true`, `"success":"true"`),
		"truex":              sub(`"success":true`, `"success":truex`),
		"version 2":          sub(`"v":1`, `"v":2`),
		"no version":         sub(`"v":1,`, ``),
		"unknown type":       sub(`"UsageDebited"`, `"Nope"`),
		"no data":            sub(`"data":{`, `"x":{`),
		"repeated data":      sub(`"credit_type":"gpu",`, `"credit_type":"gpu","data":{"usage_id":"first"},`),
		"repeated dims":      sub(`"dimensions":{`, `"dimensions":{"service":"s"},"dimensions":{`),
		"repeated burned":    sub(`"burned":[`, `"burned":[{"grant_id":"h"}],"burned":[`),
		"repeated custom":    sub(`"custom":{"a":"b"}`, `"custom":{"c":"d"},"custom":{"a":"b"}`),
		"repeated events":    sub(`"events":[`, `"events":[{"type":"GrantExpired","tenant_id":9,"data":{}}],"events":[`),
		"currency_config":    `{"v":1,"events":[{"type":"SettingsChanged","tenant_id":1,"data":{"tenant_id":1,"currency_config":{"a":1}}}]}`,
		"nil thresholds":     `{"v":1,"events":[{"type":"NoticesConfigured","tenant_id":1,"data":{"tenant_id":1,"thresholds":null}}]}`,
		"unterminated":       ok[:len(ok)-1],
		"truncated":          ok[:len(ok)/2],
		"empty":              ``,
		"array":              `[]`,
		"trailing comma":     sub(`"fp":3`, `"fp":3,`),
		"missing colon":      sub(`"fp":3`, `"fp"3`),
		"empty key":          sub(`"fp":3`, `"":3`),
		"html escape":        sub(`"module":"m"`, `"module":"a\u0026b"`),
		"not json":           `not json`,
		"exponent overflow":  sub(`"amount":"1.5"`, `"amount":"1e-99999"`),
		"case-folded prev":   sub(`"prev"`, `"PREV"`),
		"kelvin sign in key": `{"v":1,"events":[{"type":"APIKeyRevoked","tenant_id":1,"data":{"tenant_id":1,"Key_id":"k"}}]}`,
		"empty commit":       string(encode(t, eventstore.Commit{})), // "events":null
	} {
		t.Run(name, func(t *testing.T) {
			data := []byte(in)
			if _, ok := eventstore.DecodeCommitFast(data); ok {
				t.Fatalf("fast path accepts %s", data)
			}
			sameAsJSON(t, data)
		})
	}
}

// sameAsJSON asserts DecodeCommit answers as the encoding/json path.
func sameAsJSON(t *testing.T, data []byte) {
	t.Helper()
	got, gotErr := eventstore.DecodeCommit(data)
	want, wantErr := eventstore.DecodeCommitJSON(data)
	switch {
	case (gotErr == nil) != (wantErr == nil):
		t.Fatalf("DecodeCommit error %v, encoding/json %v", gotErr, wantErr)
	case gotErr != nil && gotErr.Error() != wantErr.Error():
		t.Fatalf("DecodeCommit error %q, encoding/json %q", gotErr, wantErr)
	case !reflect.DeepEqual(got, want):
		t.Fatalf("DecodeCommit %#v, encoding/json %#v", got, want)
	}
}

// TestDecodeFastDecimals: the fast path's decimals are identical, exponent
// and big.Int included, to NewFromString's, which encoding/json uses.
func TestDecodeFastDecimals(t *testing.T) {
	forms := []string{"0", "-0", "00", "0.0", "0.000", "-0.000", "007", "-007.50", "3.1550", "1", "-1", "9", "10",
		"999999999999999999", "-99999999999999999", "99999999999999999.9", "-9999999999999999.99", "0.00000000000000001",
		"1000000000000000000", "-999999999999999999", "12345678901234567890.5", "1.", ".1", "-.1", "+1", "1e2", "1E-2", "", "-", "."}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		var b strings.Builder
		if rng.IntN(3) == 0 {
			b.WriteByte('-')
		}
		for range 1 + rng.IntN(20) {
			b.WriteByte(byte('0' + rng.IntN(10)))
		}
		if rng.IntN(2) == 0 {
			b.WriteByte('.')
			for range 1 + rng.IntN(20) {
				b.WriteByte(byte('0' + rng.IntN(10)))
			}
		}
		forms = append(forms, b.String())
	}
	for _, s := range forms {
		data := []byte(`{"v":1,"events":[{"type":"GrantExpired","tenant_id":1,"data":{"amount":"` + s + `"}},` +
			`{"type":"GrantVoided","tenant_id":1,"data":{"amount":"` + s + `"}}]}`)
		want, err := decimal.NewFromString(s)
		if err != nil {
			sameAsJSON(t, data)
			continue
		}
		checkFast(t, data)
		c, _ := eventstore.DecodeCommitFast(data)
		if got := c.Events[1].Event.(domain.GrantVoided).Amount; !reflect.DeepEqual(got, want) || got.String() != want.String() {
			t.Fatalf("%q: fast %#v (%s), NewFromString %#v (%s)", s, got, got, want, want)
		}
	}
}

// seedCommits returns the stored commits of a seed history.
func seedCommits(tb testing.TB, events int) [][]byte {
	var out [][]byte
	err := seed.Commits(seed.Shape{TenantID: 1, Events: events, Days: 1, End: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), EventsPerCommit: 100, Seed: 1},
		func(seq uint64, data []byte) error {
			out = append(out, data)
			return nil
		})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// BenchmarkDecodeCommit compares the fast path with encoding/json on seed
// commits of 100 usage events.
func BenchmarkDecodeCommit(b *testing.B) {
	const events = 10_000
	commits := seedCommits(b, events)
	size := 0
	for _, c := range commits {
		size += len(c)
	}
	for _, bc := range []struct {
		name   string
		decode func([]byte) (eventstore.Commit, error)
	}{
		{"fast", func(data []byte) (eventstore.Commit, error) {
			c, ok := eventstore.DecodeCommitFast(data)
			if !ok {
				return c, fmt.Errorf("fast path falls back")
			}
			return c, nil
		}},
		{"json", eventstore.DecodeCommitJSON},
		{"DecodeCommit", eventstore.DecodeCommit},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				for _, data := range commits {
					c, err := bc.decode(data)
					if err != nil {
						b.Fatal(err)
					}
					n += len(c.Events)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
		})
	}
}
