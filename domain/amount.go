package domain

import (
	"fmt"

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
