package sim

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// The model's answers to the failures listed in issue 12, worked out by
// hand from domain/README.md: the model must get each right before it may judge
// the engine.

type scenario struct {
	t     *testing.T
	model *Model
	now   time.Time
	ids   int
}

func newScenario(t *testing.T) *scenario {
	return &scenario{t: t, model: NewModel(1), now: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)}
}

func (s *scenario) do(op Op) Answer {
	s.t.Helper()
	return s.model.Apply(op, s.now)[0]
}

func (s *scenario) want(op Op, status Status, reason string) Answer {
	s.t.Helper()
	a := s.do(op)
	if a.Status != status || a.Reason != reason {
		s.t.Fatalf("%s: got %s, want %s(%s)", op, a, status, reason)
	}
	return a
}

func (s *scenario) advance(d time.Duration) { s.now = s.now.Add(d) }

func (s *scenario) line() LineState { return s.model.State(0, defaultLine) }

func (s *scenario) totals(granted, used, expired, adjusted, reserved, balance string) {
	s.t.Helper()
	want := Totals{Granted: d(granted), Used: d(used), Expired: d(expired), Adjusted: d(adjusted), Reserved: d(reserved), Balance: d(balance)}
	if diffs := diffTotals(want, s.line().totals()); len(diffs) > 0 {
		s.t.Fatalf("totals: %s", joinProblems(diffs))
	}
	if broken := checkInvariants(s.line(), s.model.Exempt(0, defaultLine)); len(broken) > 0 {
		s.t.Fatalf("invariants: %s", joinProblems(broken))
	}
}

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func ptr(t time.Time) *time.Time { return &t }

func (s *scenario) id(prefix string) string {
	s.ids++
	return prefix + string(rune('a'+s.ids))
}

func grantOp(id, amount string, expires *time.Time) Op {
	return Op{Kind: OpGrant, Line: defaultLine, ID: id, Amount: d(amount), Source: "purchase", ExpiresAt: expires}
}

func usageOp(id, amount string) Op {
	return Op{Kind: OpUsage, Usage: []UsageOp{{ID: id, Line: defaultLine, Amount: d(amount)}}}
}

func reserveOp(id, amount string, ttl time.Duration) Op {
	return Op{Kind: OpReserve, Line: defaultLine, ID: id, Amount: d(amount), TTL: ttl}
}

func TestModelAutoReloadFiresOnAnEmptyLine(t *testing.T) {
	s := newScenario(t)
	s.want(grantOp("g1", "10", ptr(s.now.Add(time.Hour))), StatusAccepted, "")
	s.want(Op{Kind: OpAutoReload, Line: defaultLine, Enabled: true, Threshold: d("5"), Amount: d("50")}, StatusAccepted, "")
	s.advance(time.Hour)
	a := s.want(usageOp("u1", "3"), StatusAccepted, "")
	if !a.Reload.Equal(d("50")) {
		t.Fatalf("reload %s, want 50 before the debit", a.Reload)
	}
	s.totals("60", "3", "10", "0", "0", "47")
	// One reload per crossing: the next debit above the threshold reloads
	// nothing.
	if a := s.want(usageOp("u2", "40"), StatusAccepted, ""); !a.Reload.IsZero() {
		t.Fatalf("reload %s after a debit leaving 7 ≥ 5", a.Reload)
	}
	// Below the threshold now, armed since 47 ≥ 5: one more reload.
	if a := s.want(usageOp("u3", "3"), StatusAccepted, ""); !a.Reload.Equal(d("50")) {
		t.Fatalf("reload %s, want 50 crossing below 5", a.Reload)
	}
}

func TestModelRefusesAClientAutoReloadGrant(t *testing.T) {
	s := newScenario(t)
	op := grantOp("g1", "10", nil)
	op.Source = sourceAutoReload
	s.want(op, StatusRefused, invalid("source"))
}

func TestModelHeldCreditsNeitherExpireNorAreChargedTwice(t *testing.T) {
	s := newScenario(t)
	s.want(grantOp("g1", "100", ptr(s.now.Add(time.Hour))), StatusAccepted, "")
	s.want(reserveOp("r1", "80", 2*time.Hour), StatusAccepted, "")
	s.advance(time.Hour)
	s.want(Op{Kind: OpCapture, Line: defaultLine, ID: "r1"}, StatusAccepted, "")
	// The customer pays 80 of the 100; the 20 unheld expired at T.
	s.totals("100", "80", "20", "0", "0", "0")

	s = newScenario(t)
	s.want(grantOp("g1", "100", ptr(s.now.Add(time.Hour))), StatusAccepted, "")
	s.want(reserveOp("r1", "80", 2*time.Hour), StatusAccepted, "")
	s.advance(time.Hour)
	half := d("30")
	s.want(Op{Kind: OpCapture, Line: defaultLine, ID: "r1", CaptureAmount: &half}, StatusAccepted, "")
	// The 50 released back to the expired grant expire at once.
	s.totals("100", "30", "70", "0", "0", "0")
}

func TestModelVoidLeavesThePinnedPartUntilReleased(t *testing.T) {
	s := newScenario(t)
	s.want(grantOp("g1", "100", nil), StatusAccepted, "")
	s.want(reserveOp("r1", "30", time.Hour), StatusAccepted, "")
	a := s.want(Op{Kind: OpVoid, Line: defaultLine, ID: "g1", Reason: "fraud"}, StatusAccepted, "")
	if !a.Amount.Equal(d("70")) {
		t.Fatalf("voided %s, want the unpinned 70", a.Amount)
	}
	s.totals("100", "0", "0", "-70", "30", "30")
	s.want(Op{Kind: OpRelease, Line: defaultLine, ID: "r1"}, StatusAccepted, "")
	s.totals("100", "0", "0", "-100", "0", "0")
}

func TestModelAnExpiredGrantCannotBeBroughtBack(t *testing.T) {
	s := newScenario(t)
	s.want(grantOp("g1", "100", ptr(s.now.Add(time.Hour))), StatusAccepted, "")
	s.advance(time.Hour)
	s.want(Op{Kind: OpChangeExpiry, Line: defaultLine, ID: "g1"}, StatusRefused, ReasonExpired)
	s.want(usageOp("u1", "1"), StatusRefused, ReasonInsufficient)
	s.totals("100", "0", "100", "0", "0", "0")
}

func TestModelUsageAtAPeriodStartIsPaidByTheNewPeriod(t *testing.T) {
	s := newScenario(t)
	s.want(Op{Kind: OpSubscribe, Line: defaultLine, ID: "s1", Amount: d("100")}, StatusAccepted, "")
	s.want(usageOp("u1", "100"), StatusAccepted, "")
	s.now = periodStart(s.now, 1)
	s.want(usageOp("u2", "50"), StatusAccepted, "")
	s.totals("200", "150", "0", "0", "0", "50")
}

func TestModelExpiredHoldsDoNotBlockSpending(t *testing.T) {
	s := newScenario(t)
	s.want(grantOp("g1", "100", nil), StatusAccepted, "")
	s.want(reserveOp("r1", "80", time.Minute), StatusAccepted, "")
	s.advance(time.Minute)
	s.want(usageOp("u1", "50"), StatusAccepted, "")
	s.totals("100", "50", "0", "0", "0", "50")
	s.want(Op{Kind: OpCapture, Line: defaultLine, ID: "r1"}, StatusRefused, ReasonClosed)
}

func TestModelAmendmentsFingerprintTheirReason(t *testing.T) {
	s := newScenario(t)
	s.want(grantOp("g1", "100", nil), StatusAccepted, "")
	s.want(usageOp("u1", "10"), StatusAccepted, "")
	s.want(Op{Kind: OpReverse, ID: "u1", Reason: "refund"}, StatusAccepted, "")
	s.want(Op{Kind: OpReverse, ID: "u1", Reason: "refund"}, StatusDuplicate, "")
	s.want(Op{Kind: OpReverse, ID: "u1", Reason: "other"}, StatusRefused, ReasonConflict)
	s.want(Op{Kind: OpVoid, Line: defaultLine, ID: "g1", Reason: "refund"}, StatusAccepted, "")
	s.want(Op{Kind: OpVoid, Line: defaultLine, ID: "g1", Reason: "fraud"}, StatusRefused, ReasonConflict)
}

func TestModelCaptureOnTheWrongLineIsNotFound(t *testing.T) {
	s := newScenario(t)
	s.want(grantOp("g1", "100", nil), StatusAccepted, "")
	s.want(reserveOp("r1", "10", time.Hour), StatusAccepted, "")
	s.want(Op{Kind: OpCapture, Line: otherLine, ID: "r1"}, StatusRefused, ReasonNotFound)
	s.want(Op{Kind: OpRelease, Line: otherLine, ID: "r1"}, StatusRefused, ReasonNotFound)
	s.want(Op{Kind: OpCapture, Line: "", ID: "r1"}, StatusAccepted, "")
}

func TestModelRefusesAWritePastTheTotalsLimit(t *testing.T) {
	s := newScenario(t)
	s.want(grantOp("g1", "999999999999", nil), StatusAccepted, "")
	s.want(grantOp("g2", "1", nil), StatusAccepted, "")
	s.want(grantOp("g3", "1", nil), StatusRefused, invalid("amount"))
	s.totals("1000000000000", "0", "0", "0", "0", "1000000000000")
}

func TestModelRefusesACapturePastTheUsedLimit(t *testing.T) {
	s := newScenario(t)
	s.want(grantOp("g1", "999999999999", nil), StatusAccepted, "")
	s.want(usageOp("u1", "999999999999"), StatusAccepted, "")
	s.want(Op{Kind: OpAdjust, Line: defaultLine, ID: "a1", Amount: d("999999999999"), Reason: "top-up"}, StatusAccepted, "")
	s.want(Op{Kind: OpReserve, Line: defaultLine, ID: "r1", Amount: d("3"), TTL: time.Hour}, StatusAccepted, "")
	s.want(Op{Kind: OpCapture, Line: defaultLine, ID: "r1"}, StatusRefused, invalid("amount"))
	one := d("1")
	s.want(Op{Kind: OpCapture, Line: defaultLine, ID: "r1", CaptureAmount: &one}, StatusAccepted, "")
}

func TestModelRefusesAReversalPastTheBalanceLimit(t *testing.T) {
	s := newScenario(t)
	s.want(grantOp("g1", "100", nil), StatusAccepted, "")
	s.want(usageOp("u1", "100"), StatusAccepted, "")
	s.want(Op{Kind: OpAdjust, Line: defaultLine, ID: "a1", Amount: d("999999999999"), Reason: "top-up"}, StatusAccepted, "")
	s.want(Op{Kind: OpAdjust, Line: defaultLine, ID: "a2", Amount: d("1"), Reason: "top-up"}, StatusAccepted, "")
	s.want(Op{Kind: OpReverse, ID: "u1", Reason: "refund"}, StatusRefused, invalid("path.usage_id"))
}

func TestModelReversalAfterExpiryExpires(t *testing.T) {
	s := newScenario(t)
	s.want(grantOp("g1", "100", ptr(s.now.Add(time.Hour))), StatusAccepted, "")
	s.want(usageOp("u1", "30"), StatusAccepted, "")
	s.advance(2 * time.Hour)
	a := s.want(Op{Kind: OpReverse, ID: "u1", Reason: "refund"}, StatusAccepted, "")
	if !equalParts(a.Parts, map[string]decimal.Decimal{"g1": d("30")}) {
		t.Fatalf("returned %s, want g1:30", partsString(a.Parts))
	}
	s.totals("100", "0", "100", "0", "0", "0")
}

func TestModelRecordsARefusedReservation(t *testing.T) {
	s := newScenario(t)
	s.want(reserveOp("r1", "50", 0), StatusRefused, ReasonInsufficient)
	s.want(grantOp("g1", "100", nil), StatusAccepted, "")
	s.want(reserveOp("r1", "50", 0), StatusDuplicate, ReasonInsufficient)
	s.want(reserveOp("r1", "60", 0), StatusRefused, ReasonConflict)
	s.totals("100", "0", "0", "0", "0", "100")
}

func TestModelAPastStartAllocatesOnlyTheCurrentPeriod(t *testing.T) {
	s := newScenario(t)
	start := time.Date(2025, 12, 25, 8, 0, 0, 0, time.UTC) // 2.5 months before
	s.want(Op{Kind: OpSubscribe, Line: defaultLine, ID: "s1", Amount: d("100"), StartsAt: start}, StatusAccepted, "")
	s.totals("100", "0", "0", "0", "0", "100")
	if _, ok := s.line().Grants["subscription:s1:2"]; !ok {
		t.Fatalf("grants %v, want period 2 (Feb 25 to Mar 25)", s.line().Grants)
	}
	// Periods passing while it exists are allocated, even if already over.
	s.now = time.Date(2026, 5, 26, 0, 0, 0, 0, time.UTC)
	s.want(usageOp("u1", "1"), StatusAccepted, "")
	s.totals("400", "1", "300", "0", "0", "99")
}

func TestModelAutoReloadDecidesOnSpendableNow(t *testing.T) {
	s := newScenario(t)
	s.want(grantOp("g1", "30", nil), StatusAccepted, "")
	future := grantOp("g2", "100", nil)
	future.EffectiveAt = s.now.Add(24 * time.Hour)
	s.want(future, StatusAccepted, "")
	s.want(Op{Kind: OpAutoReload, Line: defaultLine, Enabled: true, Threshold: d("20"), Amount: d("40")}, StatusAccepted, "")
	if a := s.want(usageOp("u1", "20"), StatusAccepted, ""); !a.Reload.Equal(d("40")) {
		t.Fatalf("reload %s: free now is 10 < 20, the grant not yet effective does not count", a.Reload)
	}
}

func TestModelZeroUsageIsAlwaysAccepted(t *testing.T) {
	s := newScenario(t)
	s.want(Op{Kind: OpAdjust, Line: defaultLine, ID: "a1", Amount: d("-5"), Reason: "debt"}, StatusAccepted, "")
	s.want(usageOp("u1", "0"), StatusAccepted, "")
	s.want(usageOp("u2", "0.01"), StatusRefused, ReasonInsufficient)
	s.totals("0", "0", "0", "-5", "0", "-5")
}

func TestModelFutureUsageIsRefusedPastTheSkew(t *testing.T) {
	s := newScenario(t)
	s.want(grantOp("g1", "10", nil), StatusAccepted, "")
	at := Op{Kind: OpUsage, Usage: []UsageOp{{ID: "u1", Line: defaultLine, Amount: d("1"), OccurredAt: s.now.Add(futureSkewMax)}}}
	s.want(at, StatusAccepted, "")
	after := Op{Kind: OpUsage, Usage: []UsageOp{{ID: "u2", Line: defaultLine, Amount: d("1"), OccurredAt: s.now.Add(futureSkewMax + time.Microsecond)}}}
	s.want(after, StatusRefused, ReasonFuture)
	s.want(after, StatusDuplicate, ReasonFuture)
}

func TestModelBurnOrder(t *testing.T) {
	s := newScenario(t)
	late := grantOp("late", "10", ptr(s.now.Add(48*time.Hour)))
	soon := grantOp("soon", "10", ptr(s.now.Add(24*time.Hour)))
	never := grantOp("never", "10", nil)
	cheap := grantOp("cheap", "10", nil)
	cheap.Priority = 2
	for _, op := range []Op{cheap, never, late, soon} {
		s.want(op, StatusAccepted, "")
	}
	a := s.want(usageOp("u1", "25"), StatusAccepted, "")
	want := map[string]decimal.Decimal{"soon": d("10"), "late": d("10"), "never": d("5")}
	if !equalParts(a.Parts, want) {
		t.Fatalf("burned %s, want %s", partsString(a.Parts), partsString(want))
	}
}

func TestModelPeriodStartsClampToShortMonths(t *testing.T) {
	start := time.Date(2026, 1, 31, 9, 30, 0, 5000, time.UTC)
	want := []time.Time{
		start,
		time.Date(2026, 2, 28, 9, 30, 0, 5000, time.UTC),
		time.Date(2026, 3, 31, 9, 30, 0, 5000, time.UTC),
		time.Date(2026, 4, 30, 9, 30, 0, 5000, time.UTC),
		time.Date(2027, 1, 31, 9, 30, 0, 5000, time.UTC),
	}
	for i, n := range []int{0, 1, 2, 3, 12} {
		if got := periodStart(start, n); !got.Equal(want[i]) {
			t.Errorf("period %d starts %s, want %s", n, got, want[i])
		}
	}
	if n := periodAt(start, want[2]); n != 2 {
		t.Errorf("period at %s = %d, want 2", want[2], n)
	}
	if n := periodAt(start, want[2].Add(-time.Microsecond)); n != 1 {
		t.Errorf("period just before %s = %d, want 1", want[2], n)
	}
}

// TestModelKeepsItsInvariants plays the generator's ops on the model alone
// and checks, after every op, the invariants and that no write but a
// correction takes available below min(−overdraft, available before).
func TestModelKeepsItsInvariants(t *testing.T) {
	seeds := 60
	if testing.Short() || raceEnabled {
		seeds = 15
	}
	for seed := range uint64(seeds) {
		rng := rand.New(rand.NewPCG(seed, streamOps))
		layout := NewLayout(rng)
		model := NewModel(len(layout.Lines))
		gen := NewGenerator(rng, model, layout, nil)
		now := StartTime(rng)
		for step := 1; step <= 150; step++ {
			op := gen.Next(now)
			if op.Kind == OpTick {
				now = op.At
				continue
			}
			floors := (&run{}).floors(op, now, model)
			if op.Kind == OpSweep {
				model.RunDue(now)
			} else {
				model.Apply(op, now)
			}
			for tenant := range layout.Lines {
				for _, line := range []string{defaultLine, otherLine} {
					s := model.State(tenant, line)
					broken := checkInvariants(s, model.Exempt(tenant, line))
					if floor, ok := floors[lineKey{tenant, line}]; ok && s.Available.LessThan(floor) {
						broken = append(broken, fmt.Sprintf("available %s below %s", s.Available, floor))
					}
					if len(broken) > 0 {
						t.Fatalf("seed %d step %d %s: tenant %d line %s: %s", seed, step, op, tenant, line, joinProblems(broken))
					}
				}
			}
		}
	}
}

func TestModelBoundariesAreInstants(t *testing.T) {
	s := newScenario(t)
	t0 := s.now
	later := grantOp("later", "10", ptr(t0.Add(2*time.Hour)))
	later.EffectiveAt = t0.Add(time.Hour)
	s.want(later, StatusAccepted, "")
	s.now = t0.Add(time.Hour - time.Microsecond)
	s.want(usageOp("u1", "1"), StatusRefused, ReasonInsufficient) // not yet effective
	s.now = t0.Add(time.Hour)
	s.want(usageOp("u2", "1"), StatusAccepted, "") // effective at its instant
	s.want(reserveOp("r1", "2", time.Hour-time.Microsecond), StatusAccepted, "")
	s.now = t0.Add(2*time.Hour - time.Microsecond)
	s.want(usageOp("u3", "1"), StatusAccepted, "") // the hold ended: 7 free
	s.want(reserveOp("r2", "3", time.Hour), StatusAccepted, "")
	s.now = t0.Add(2 * time.Hour)
	s.want(usageOp("u4", "0.01"), StatusRefused, ReasonInsufficient) // expired at its instant
	s.want(Op{Kind: OpCapture, Line: defaultLine, ID: "r2"}, StatusAccepted, "")
	// 3 captured from the pin; 10 − 1 − 1 − 3 = 5 expired.
	s.totals("10", "5", "5", "0", "0", "0")
}

func TestModelHoldsWithinTheOverdraftPinDebt(t *testing.T) {
	s := newScenario(t)
	s.want(Op{Kind: OpOverdraft, Line: defaultLine, Amount: d("50")}, StatusAccepted, "")
	s.want(grantOp("g1", "10", nil), StatusAccepted, "")
	a := s.want(reserveOp("r1", "30", time.Hour), StatusAccepted, "")
	if !equalParts(a.Pins, map[string]decimal.Decimal{"g1": d("10")}) {
		t.Fatalf("pins %s, want g1:10 (and 20 on unallocated)", partsString(a.Pins))
	}
	s.want(usageOp("u1", "30.01"), StatusRefused, ReasonInsufficient) // 50 − 20 spendable
	// A negative adjustment takes the free unallocated first: there is none.
	s.want(Op{Kind: OpAdjust, Line: defaultLine, ID: "a1", Amount: d("5"), Reason: "gift"}, StatusAccepted, "")
	if a := s.want(Op{Kind: OpAdjust, Line: defaultLine, ID: "a2", Amount: d("-7"), Reason: "fix"}, StatusAccepted, ""); len(nonZeroParts(a.Parts)) != 0 {
		t.Fatalf("the adjustment took %s from grants; g1 is all pinned", partsString(a.Parts))
	}
	twenty := d("25")
	s.want(Op{Kind: OpCapture, Line: defaultLine, ID: "r1", CaptureAmount: &twenty}, StatusAccepted, "")
	s.totals("10", "25", "0", "-2", "0", "-17")
	if got := s.line().Unallocated; !got.Equal(d("-17")) {
		t.Fatalf("unallocated %s, want 5 − 7 − 15 = −17", got)
	}
}

func TestModelAutoReloadConfiguredBelowTheThreshold(t *testing.T) {
	s := newScenario(t)
	s.want(grantOp("g1", "10", nil), StatusAccepted, "")
	s.want(Op{Kind: OpAutoReload, Line: defaultLine, Enabled: true, Threshold: d("50"), Amount: d("100")}, StatusAccepted, "")
	// Fits the spendable 10: decided first, the reload follows it.
	a := s.want(usageOp("u1", "4"), StatusAccepted, "")
	if !a.Reload.Equal(d("100")) || !equalParts(a.Parts, map[string]decimal.Decimal{"g1": d("4")}) {
		t.Fatalf("got %s, want g1 paying 4 and a reload of 100 after", a)
	}
	// 106 ≥ 50 re-armed it at once; 60 leaves 46 < 50: one more.
	if a := s.want(usageOp("u2", "60"), StatusAccepted, ""); !a.Reload.Equal(d("100")) {
		t.Fatalf("reload %s, want 100", a.Reload)
	}
}

func TestModelSubscriptionPeriodsAndCancel(t *testing.T) {
	s := newScenario(t)
	start := s.now.Add(24 * time.Hour)
	s.want(Op{Kind: OpSubscribe, Line: defaultLine, ID: "s1", Amount: d("30"), StartsAt: start, Rollover: false}, StatusAccepted, "")
	s.totals("0", "0", "0", "0", "0", "0")
	// Periods 0 and 1 pass while the line is idle: both are allocated at
	// the next write, period 0 expiring at once.
	s.now = periodStart(start, 1).Add(time.Minute)
	s.want(usageOp("u1", "1"), StatusAccepted, "")
	s.totals("60", "1", "30", "0", "0", "29")
	// Canceled in period 1: it ends at period 2's start, which allocates
	// nothing.
	s.want(Op{Kind: OpCancel, Line: "", ID: "s1"}, StatusAccepted, "")
	s.want(Op{Kind: OpCancel, Line: defaultLine, ID: "s1"}, StatusDuplicate, "")
	s.now = periodStart(start, 3)
	s.want(usageOp("u2", "0"), StatusAccepted, "")
	s.totals("60", "1", "59", "0", "0", "0")
	// Canceled before it starts: it never allocates.
	s.want(Op{Kind: OpSubscribe, Line: defaultLine, ID: "s2", Amount: d("30"), StartsAt: s.now.Add(time.Hour)}, StatusAccepted, "")
	s.want(Op{Kind: OpCancel, Line: defaultLine, ID: "s2"}, StatusAccepted, "")
	s.now = s.now.Add(48 * time.Hour)
	s.want(usageOp("u3", "0"), StatusAccepted, "")
	s.totals("60", "1", "59", "0", "0", "0")
}
