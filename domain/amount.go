package domain

import (
	"fmt"
	"math"

	"github.com/shopspring/decimal"
)

// AmountScaleMax is the number of decimal places an amount may carry. Six
// places (a micro-credit) is the read models' fixed unit, so every stored sum
// stays an exact integer there.
const AmountScaleMax = 6

// amountMagnitudeLimit bounds |amount| below 10^12 credits: in micro-credits
// that is below 10^18, so any single amount fits an int64 read-model column
// with room for sums of a few amounts of that size.
var amountMagnitudeLimit = decimal.New(1, 12)

// ValidateAmount reports whether d is a well-formed credit amount: at most six
// decimal places and an absolute value below 10^12. It returns
// ErrAmountPrecision or ErrAmountMagnitude.
func ValidateAmount(d decimal.Decimal) error {
	// The common case without the arithmetic below, which allocates (it
	// runs for every usage event): at most six places, and |coefficient| <
	// 10^NumDigits makes |d| < 10^(NumDigits+exponent) <= 10^12.
	if exp := int(d.Exponent()); exp >= -AmountScaleMax && exp <= 0 && d.NumDigits()+exp <= 12 {
		return nil
	}
	if !d.Equal(d.Truncate(AmountScaleMax)) {
		return fmt.Errorf("%w: %s has more than %d decimal places", ErrAmountPrecision, d.String(), AmountScaleMax)
	}
	if d.Abs().GreaterThanOrEqual(amountMagnitudeLimit) {
		return fmt.Errorf("%w: %s is not below 10^12 in absolute value", ErrAmountMagnitude, d.String())
	}
	return nil
}

// ValidatePositive is ValidateAmount plus amount > 0.
func ValidatePositive(d decimal.Decimal) error {
	if !d.IsPositive() {
		return fmt.Errorf("%w: must be greater than 0", ErrAmountNotPositive)
	}
	return ValidateAmount(d)
}

// ValidateNonNegative is ValidateAmount plus amount >= 0.
func ValidateNonNegative(d decimal.Decimal) error {
	if d.IsNegative() {
		return fmt.Errorf("%w: must not be negative", ErrAmountNegative)
	}
	return ValidateAmount(d)
}

// add and sub are a + b and a − b, exact as shopspring/decimal's Add and Sub
// (which they call), without the allocations those make when the answer is
// an operand: a zero operand, or (sub) the very same decimal twice. Every
// operation of the package makes a new big.Int, and more when the exponents
// differ; a usage decision's totals are mostly such cases (no holds, no
// overdraft, no unallocated credits, a burn that takes what is left), and it
// runs for every usage event. Returning an operand is safe because a
// decimal's value never changes once made. A result may carry another
// exponent than Add's would (1E+3 rather than 1000): nothing reads it but
// through the value (String trims, the encoders and Micro write values).
func add(a, b decimal.Decimal) decimal.Decimal {
	switch {
	case b.IsZero():
		return a
	case a.IsZero():
		return b
	}
	return a.Add(b)
}

func sub(a, b decimal.Decimal) decimal.Decimal {
	switch {
	case b.IsZero():
		return a
	case a == b:
		// The same coefficient and exponent: the same decimal.
		return decimal.Zero
	}
	return a.Sub(b)
}

// belowTenPow reports whether |d| < 10^n without arithmetic when the
// coefficient's digit count proves it (|coefficient| < 10^NumDigits), and
// exactly otherwise.
func belowTenPow(d decimal.Decimal, n int) bool {
	if d.NumDigits()+int(d.Exponent()) <= n {
		return true
	}
	return d.Abs().LessThan(decimal.New(1, int32(n)))
}

// micro returns d in millionths of a credit, and false when that is not
// exact (more than six decimal places) or not within an int64. It does
// not allocate: the coefficient is read as an int64 only when its digit
// count says it fits.
func micro(d decimal.Decimal) (int64, bool) {
	exp := int(d.Exponent())
	if exp < -6 || exp > 12 || d.NumDigits() > 18 {
		return 0, false
	}
	coef := d.CoefficientInt64()
	scale := pow10[exp+6]
	if coef > math.MaxInt64/scale || coef < math.MinInt64/scale {
		return 0, false
	}
	return coef * scale, true
}

// pow10 holds 10^0 to 10^18.
var pow10 = [...]int64{1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000,
	10_000_000_000, 100_000_000_000, 1_000_000_000_000, 10_000_000_000_000, 100_000_000_000_000,
	1_000_000_000_000_000, 10_000_000_000_000_000, 100_000_000_000_000_000, 1_000_000_000_000_000_000}
