package domain

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

func TestValidateAmount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, amount string
		want         error
	}{
		{"zero_is_well_formed", "0", nil},
		{"a_whole_number_is_well_formed", "42", nil},
		{"six_decimal_places_are_allowed", "0.000001", nil},
		{"negative_amounts_with_six_places_are_allowed", "-12.345678", nil},
		{"trailing_zeros_beyond_six_places_do_not_count", "1.1234560", nil},
		{"the_largest_amount_below_10^12_is_allowed", "999999999999.999999", nil},
		{"the_most_negative_amount_above_-10^12_is_allowed", "-999999999999.999999", nil},
		{"seven_decimal_places_are_refused", "1.1234567", ErrAmountPrecision},
		{"a_tenth_of_a_micro_credit_is_refused", "0.0000001", ErrAmountPrecision},
		{"negative_seven_decimal_places_are_refused", "-0.0000001", ErrAmountPrecision},
		{"exponent_notation_with_too_many_places_is_refused", "1e-7", ErrAmountPrecision},
		{"exactly_10^12_is_refused", "1000000000000", ErrAmountMagnitude},
		{"exactly_-10^12_is_refused", "-1000000000000", ErrAmountMagnitude},
		{"10^12_in_exponent_notation_is_refused", "1e12", ErrAmountMagnitude},
		{"far_beyond_10^12_is_refused", "123456789012345678", ErrAmountMagnitude},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateAmount(d(tt.amount))
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("ValidateAmount(%s) = %v, want %v", tt.amount, err, tt.want)
			}
		})
	}
}

func TestValidatePositive(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, amount string
		want         error
	}{
		{"one_micro_credit_is_positive", "0.000001", nil},
		{"a_large_amount_is_positive", "999999999999", nil},
		{"zero_is_not_positive", "0", ErrAmountNotPositive},
		{"a_negative_amount_is_not_positive", "-1", ErrAmountNotPositive},
		{"a_positive_amount_with_seven_places_is_refused", "0.0000001", ErrAmountPrecision},
		{"a_positive_amount_of_10^12_is_refused", "1e12", ErrAmountMagnitude},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidatePositive(d(tt.amount))
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("ValidatePositive(%s) = %v, want %v", tt.amount, err, tt.want)
			}
		})
	}
}

func TestValidateNonNegative(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, amount string
		want         error
	}{
		{"zero_is_allowed", "0", nil},
		{"a_positive_amount_is_allowed", "3.5", nil},
		{"a_negative_amount_is_refused", "-0.000001", ErrAmountNegative},
		{"a_huge_negative_amount_is_refused_as_negative", "-1e15", ErrAmountNegative},
		{"seven_decimal_places_are_refused", "1.0000001", ErrAmountPrecision},
		{"10^12_is_refused", "1000000000000", ErrAmountMagnitude},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := ValidateNonNegative(d(tt.amount))
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("ValidateNonNegative(%s) = %v, want %v", tt.amount, err, tt.want)
			}
		})
	}
}

// ValidateAmount's shortcut for common amounts agrees with the exact
// checks at every edge of precision and magnitude.
func TestValidateAmountShortcutAgreesWithTheArithmetic(t *testing.T) {
	t.Parallel()
	exact := func(d decimal.Decimal) bool {
		return d.Equal(d.Truncate(AmountScaleMax)) && d.Abs().LessThan(amountMagnitudeLimit)
	}
	values := []string{"0", "-0", "1", "0.000001", "0.0000001", "1.5000000", "1.5000001", "999999999999.999999",
		"-999999999999.999999", "1000000000000", "-1000000000000", "999999999999.9999990", "99999999999.9999999",
		"1e11", "1e12", "9.99999999999e11", "123456789012345678901234567890", "0.000000000000000000001", "1e-6", "1e-7",
		"100000000000.000000", "0.001"}
	for _, text := range values {
		d, err := decimal.NewFromString(text)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []decimal.Decimal{d, d.Neg(), decimal.New(d.CoefficientInt64(), d.Exponent()-1)} {
			if got, want := ValidateAmount(v) == nil, exact(v); got != want {
				t.Errorf("ValidateAmount(%s) valid=%v, want %v", v, got, want)
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		v := decimal.New(rng.Int64N(1<<62)>>rng.IntN(62)*int64(1-2*rng.IntN(2)), int32(rng.IntN(30)-20))
		if got, want := ValidateAmount(v) == nil, exact(v); got != want {
			t.Fatalf("ValidateAmount(%s) valid=%v, want %v", v, got, want)
		}
	}
}

// add, sub and belowTenPow are checked against shopspring/decimal's own
// arithmetic, which they shortcut: values (not representations) must agree
// for zeros of every exponent, the very same decimal twice, equal values
// of different exponents, and the edges of 10^11 and 10^12.
func TestAmountArithmeticAgreesWithDecimal(t *testing.T) {
	t.Parallel()
	texts := []string{"0", "0.000000", "0E+3", "0.4", "0.400", "1", "1E+3", "1000", "-1000", "-0.000001",
		"99999999999.999999", "100000000000", "-100000000000", "999999999999.999999", "1000000000000",
		"-1000000000000", "1000000000000.000001", "1E+12", "1E+11", "123456789012345678901234567890"}
	var values []decimal.Decimal
	for _, text := range texts {
		values = append(values, decimal.RequireFromString(text))
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		values = append(values, decimal.New(rng.Int64N(1<<62)>>rng.IntN(62)*int64(1-2*rng.IntN(2)), int32(rng.IntN(16)-8)))
	}
	for _, a := range values {
		for _, b := range values {
			if got, want := add(a, b), a.Add(b); !got.Equal(want) {
				t.Fatalf("add(%s, %s) = %s, want %s", a, b, got, want)
			}
			if got, want := sub(a, b), a.Sub(b); !got.Equal(want) {
				t.Fatalf("sub(%s, %s) = %s, want %s", a, b, got, want)
			}
		}
		for _, n := range []int{0, 6, 11, 12, 13} {
			if got, want := belowTenPow(a, n), a.Abs().LessThan(decimal.New(1, int32(n))); got != want {
				t.Fatalf("belowTenPow(%s, %d) = %v, want %v", a, n, got, want)
			}
		}
		if got, want := withinLineTotal(a), !a.Abs().GreaterThan(LineTotalMax); got != want {
			t.Fatalf("withinLineTotal(%s) = %v, want %v", a, got, want)
		}
	}
}

// The balance is bounded too when no single total is past the limit: a
// line granted 10^12 may not be adjusted up by a micro-credit (adjusted
// stays tiny, the balance would pass 10^12), and checkTotals must not skip
// the balance then.
func TestCheckTotalsBoundsTheBalanceOfTotalsWithinTheLimit(t *testing.T) {
	t.Parallel()
	l := lineWith(t, granted("g", "1000000000000"))
	err := checkTotals(l, []Event{CreditsAdjusted{AdjustmentID: "a", Amount: d("0.000001")}}, "amount")
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Location != "amount" || !strings.Contains(fe.Message, "balance") {
		t.Fatalf("adjusting a line at the limit up by 0.000001: %v, want a FieldError at amount naming the balance", err)
	}
	if err := checkTotals(l, []Event{CreditsAdjusted{AdjustmentID: "a", Amount: d("-0.000001")}}, "amount"); err != nil {
		t.Fatalf("adjusting it down: %v", err)
	}
	// Each total below 10^12, the balance past it.
	l = lineWith(t, granted("g", "600000000000"))
	if err := checkTotals(l, []Event{CreditsAdjusted{AdjustmentID: "a", Amount: d("600000000000")}}, "amount"); err == nil || !strings.Contains(err.Error(), "balance") {
		t.Fatalf("adjusting a line granted 6×10^11 up by as much: %v, want the balance refused", err)
	}
	// Totals of 10^11 and more each, the balance within: computed, allowed.
	l = lineWith(t, granted("g1", "600000000000"), granted("g2", "300000000000"))
	if err := checkTotals(l, []Event{UsageDebited{UsageID: "u", Amount: d("200000000000")}}, "amount"); err != nil {
		t.Fatalf("a large debit within every total: %v", err)
	}
}

// micro is exact or refuses: every value it converts is the decimal's own
// in millionths.
func TestMicroIsExactOrRefuses(t *testing.T) {
	t.Parallel()
	for _, text := range []string{"0", "0E+12", "0E-30", "0.000001", "-0.000001", "0.0000001", "1E+12", "1E+13",
		"9223372036854.775807", "9223372036854.775808", "-9223372036854.775808", "-9223372036854.775809",
		"1000000000000", "123456789012345678901234567890", "1.5", "-2.250000"} {
		v := decimal.RequireFromString(text)
		m, ok := micro(v)
		fits := v.Mul(decimal.New(1, 6)).IsInteger() && v.Mul(decimal.New(1, 6)).Abs().LessThanOrEqual(decimal.New(math.MaxInt64, 0))
		if ok && !decimal.New(m, -6).Equal(v) {
			t.Errorf("micro(%s) = %d, not the same value", text, m)
		}
		// Refusing what fits costs only the fast path; it is allowed for
		// more than six places as written (0E-30 is zero) and for more
		// than 18 digits, whose coefficient is not read as an int64.
		if !ok && fits && v.Exponent() >= -6 && v.NumDigits() <= 18 {
			t.Errorf("micro(%s) refused a value that fits", text)
		}
	}
}

// checkTotals' int64 answer is the decimal one: on random lines and events,
// and around the limit, they accept and refuse alike.
func TestCheckTotalsInMicroAgreesWithDecimal(t *testing.T) {
	t.Parallel()
	edges := []string{"0", "0.000001", "0.0000001", "1", "-1", "999999999999.999999", "1000000000000",
		"1000000000000.000001", "-1000000000000", "-1000000000000.000001", "500000000000", "1E+12", "1E+13",
		"4000000000000", "9223372036854.775807", "123456789012345678901234567890", "0.5", "250000000000.5",
		// 9×10^18 millionths: two of them wrap an int64.
		"9000000000000", "-9000000000000"}
	var values []decimal.Decimal
	for _, text := range edges {
		values = append(values, decimal.RequireFromString(text))
	}
	rng := rand.New(rand.NewPCG(5, 6))
	// Mostly up to ±6×10^11 credits with up to six places (sums of a few
	// straddle the limit), some edges, a few of any size and exponent.
	pick := func() decimal.Decimal {
		switch n := rng.IntN(12); {
		case n < 3:
			return values[rng.IntN(len(values))]
		case n < 11:
			places := rng.IntN(7)
			bound := 6 * pow10[11+places-6] * pow10[6]
			return decimal.New(rng.Int64N(2*bound)-bound, int32(-places))
		}
		return decimal.New(rng.Int64N(1<<62)>>rng.IntN(62)*int64(1-2*rng.IntN(2)), int32(rng.IntN(20)-10))
	}
	event := func() Event {
		switch rng.IntN(9) {
		case 0:
			return CreditsGranted{Amount: pick()}
		case 1:
			return UsageDebited{Amount: pick()}
		case 2:
			return CreditsReserved{Amount: pick()}
		case 3:
			return ReservationCaptured{Amount: pick(), Released: pick()}
		case 4:
			return ReservationReleased{Amount: pick()}
		case 5:
			return CreditsAdjusted{Amount: pick()}
		case 6:
			return GrantExpired{Amount: pick()}
		case 7:
			return GrantVoided{Amount: pick()}
		default:
			return UsageReversed{Amount: pick()}
		}
	}
	// Sums that wrap an int64 are left to the decimals, never judged on
	// their wrapped value.
	wrap := &Line{Used: d("9000000000000")}
	if err := checkTotals(wrap, []Event{UsageDebited{Amount: d("9000000000000")}}, "amount"); err == nil {
		t.Fatal("used 9×10^12 plus 9×10^12 passed the limit check")
	}
	refused, exactlyWithin, exactlyPast := 0, 0, 0
	for i := range 20_000 {
		l := &Line{Granted: pick(), Used: pick(), Expired: pick(), Adjusted: pick(), Reserved: pick()}
		events := make([]Event, rng.IntN(4))
		for j := range events {
			events[j] = event()
		}
		got, want := checkTotals(l, events, "amount"), checkTotalsDecimal(l, events, "amount")
		if (got == nil) != (want == nil) {
			t.Fatalf("case %d: line %+v, events %+v: checkTotals %v, in decimals %v", i, l, events, got, want)
		}
		if within, exact := totalsWithinMicro(l, events); exact {
			if within != (want == nil) {
				t.Fatalf("case %d: line %+v, events %+v: within %v in millionths, in decimals %v", i, l, events, within, want)
			}
			if within {
				exactlyWithin++
			} else {
				exactlyPast++
			}
		}
		if want != nil {
			refused++
		}
	}
	// The cases must straddle the limit, and the millionths must decide
	// many on each side.
	if refused < 1000 || refused > 19_000 || exactlyWithin < 500 || exactlyPast < 500 {
		t.Fatalf("of 20,000: %d refused; decided in millionths %d within, %d past", refused, exactlyWithin, exactlyPast)
	}
	t.Logf("of 20,000: %d refused; decided in millionths %d within, %d past", refused, exactlyWithin, exactlyPast)
}

// TestMoveTotalsIsWhatApplyDoes: for an event of every kind that moves a
// total (a grant, a debit, a reservation captured in part and one
// released, adjustments both ways, a void, a reversal, an expiry), the
// limit check's map of which total it moves (moveTotals) is what applying
// it does to the line. TestRandomizedLineProperties checks the same on
// random histories, which hold no voids or reversals.
func TestMoveTotalsIsWhatApplyDoes(t *testing.T) {
	t.Parallel()
	l := NewLine(DefaultCreditType)
	seen := map[string]bool{}
	step := func(events []Event, err error) []Event {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			before := l.Clone()
			want := predictedTotals(before, e)
			apply(t, l, e)
			for k, got := range totalsOf(l) {
				if !got.Equal(want[k]) {
					t.Fatalf("%T moved %s %s -> %s; the limit check counts %s", e, totalNames[k], totalsOf(before)[k], got, want[k])
				}
			}
			seen[string(e.EventType())] = true
		}
		return events
	}
	expiry := t0.Add(time.Hour)
	step(DecideGrant(l, Grant{GrantID: "g1", Amount: d("100"), Source: SourcePurchase}, t0))
	step(DecideGrant(l, Grant{GrantID: "g2", Amount: d("50"), Source: SourcePurchase, Priority: 1}, t0))
	step(DecideGrant(l, Grant{GrantID: "g3", Amount: d("7"), Source: SourcePromotional, ExpiresAt: &expiry}, t0))
	debited := step(DecideUsage(l, RecordUsage{UsageID: "u1", Amount: d("10")}, t0))
	step(DecideReserve(l, Reserve{ReservationID: "r1", Amount: d("20")}, t0))
	step(DecideCapture(l, Capture{ReservationID: "r1", Amount: dp("5")}, t0))
	step(DecideReserve(l, Reserve{ReservationID: "r2", Amount: d("4")}, t0))
	step(DecideRelease(l, "r2", ReleaseReleased, t0))
	step(DecideAdjust(l, Adjust{AdjustmentID: "a1", Amount: d("3"), Reason: "goodwill"}, t0))
	step(DecideAdjust(l, Adjust{AdjustmentID: "a2", Amount: d("-2"), Reason: "correction"}, t0))
	step(DecideVoidGrant(l, VoidGrant{GrantID: "g2", Reason: "refund"}))
	var usage UsageDebited
	for _, e := range debited {
		if u, ok := e.(UsageDebited); ok {
			usage = u
		}
	}
	step(DecideReverseUsage(l, ReverseUsage{UsageID: "u1", Reason: "refund"}, usage, t0))
	step(DecideDue(l, expiry.Add(time.Second)), nil)
	for _, typ := range []EventType{EventCreditsGranted, EventUsageDebited, EventCreditsReserved, EventReservationCaptured,
		EventReservationReleased, EventCreditsAdjusted, EventGrantVoided, EventUsageReversed, EventGrantExpired} {
		if !seen[string(typ)] {
			t.Errorf("no %s event was checked", typ)
		}
	}
}
