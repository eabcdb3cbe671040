package domain

import (
	"testing"
	"time"
)

// Fingerprints are stored in the log: a retry of an event written by an
// earlier version must still match it, so the bytes hashed never change.
// These values were computed by the first implementation.
func TestFingerprintsAreStable(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 4, 5, 6, 7, 891234500, time.FixedZone("x", 3600))
	exp := at.Add(48 * time.Hour)
	price := d("9.99")
	cost := d("0.001")
	long := ""
	for range 40 {
		long += "0123456789"
	}
	got := []uint64{
		RecordUsage{UsageID: "u1", Amount: d("1.5")}.Fingerprint(),
		RecordUsage{UsageID: "u1", Amount: d("1.500000"), OccurredAt: at, Description: "tokens",
			Dimensions: Dimensions{Module: "m", Service: "s", UserID: "user", WorkflowID: "wf", WorkflowRunID: "run",
				Endpoint: "/x", Success: true, Quantity: d("3"), Custom: map[string]string{"region": "eu", "tier": "pro"}}}.Fingerprint(),
		RecordUsage{UsageID: long, Amount: d("0"), Description: long + long}.Fingerprint(),
		Grant{GrantID: "g", Amount: d("100"), Source: SourcePurchase, Priority: 3, EffectiveAt: at, ExpiresAt: &exp,
			CostPerCredit: &cost, Currency: "EUR", Description: "d", Reference: "r", Metadata: map[string]string{"k": "v"}}.Fingerprint(),
		Grant{GrantID: "g2", Amount: d("1")}.Fingerprint(),
		Adjust{AdjustmentID: "a", Amount: d("-2.25"), Reason: "r", Reference: "ref"}.Fingerprint(),
		VoidGrant{GrantID: "g", Reason: "fraud"}.Fingerprint(),
		Reserve{ReservationID: "r", Amount: d("5"), TTL: 90 * time.Second, Dimensions: Dimensions{Module: "m", Custom: map[string]string{"a": "b"}}}.Fingerprint(),
		Capture{ReservationID: "r", Amount: &cost}.Fingerprint(),
		Capture{ReservationID: "r"}.Fingerprint(),
		ReverseUsage{UsageID: "u1", Reason: "refund"}.Fingerprint(),
		StartSubscription{SubscriptionID: "s", CreditsPerPeriod: d("1000"), Period: PeriodMonthly, StartsAt: at, PriceAmount: &price, PriceCurrency: "USD"}.Fingerprint(),
		UsageBatch{Key: "k", Fingerprints: []uint64{1, 0xffffffffffffffff}}.Fingerprint(),
	}
	want := []uint64{0x162f15f99e4e57c5, 0x64c19fa42ffcf079, 0x53c9b063c96efa7f, 0x601a0a214886aecf, 0x922735308d37477b,
		0x823534a2674263b9, 0xbb812b1cea1850c1, 0x76e317deeb1fe8dd, 0xe611bfcd9334558f, 0x226f215e534738c5, 0xf0699d3cdb14f57d,
		0xd97f8417a37e05af, 0x3c7a10a1863c1d69}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("fingerprint %d is %#x, was %#x", i, got[i], want[i])
		}
	}
}

func BenchmarkRecordUsageFingerprint(b *testing.B) {
	c := RecordUsage{UsageID: "evt-000123", Amount: d("0.001"), Description: "x",
		Dimensions: Dimensions{Module: "search", Service: "api", Endpoint: "/v1/search", UserID: "user-7"}}
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Fingerprint()
		}
	})
	c.Dimensions.Custom = map[string]string{"region": "eu", "tier": "pro", "table_id": "4"}
	b.Run("custom", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Fingerprint()
		}
	})
}
