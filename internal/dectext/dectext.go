// Package dectext writes a decimal's text without allocating.
//
// Decimal.String builds its text through big.Int and returns a new string:
// two allocations for every amount fingerprinted or encoded, on every
// usage event. Append writes the same bytes into a caller's buffer.
package dectext

import (
	"strconv"

	"github.com/shopspring/decimal"
)

// expMax bounds the exponents written here: a decimal scaled further
// (never an amount, which has at most six places) is written by
// Decimal.String, which handles any.
const expMax = 64

// Append appends d.String() to b. It writes the text itself for a
// coefficient of at most 18 digits and an exponent within ±64 under
// shopspring/decimal's default settings (TrimTrailingZeros on,
// UseScientificNotation off), and appends d.String() otherwise.
func Append(b []byte, d decimal.Decimal) []byte {
	if d.IsZero() {
		// String writes 0 for a zero whatever its exponent; the zero
		// Decimal (an unset quantity) would allocate a big.Int below.
		return append(b, '0')
	}
	exp := d.Exponent()
	if !decimal.TrimTrailingZeros || decimal.UseScientificNotation || exp > expMax || exp < -expMax || d.NumDigits() > 18 {
		return append(b, d.String()...)
	}
	coef := d.CoefficientInt64()
	switch {
	case exp == 0:
		return strconv.AppendInt(b, coef, 10)
	case exp > 0:
		b = strconv.AppendInt(b, coef, 10)
		for range exp {
			b = append(b, '0')
		}
		return b
	}
	return appendScaled(b, coef, int(-exp))
}

// appendScaled appends coef × 10^-places (places > 0, coef ≠ 0) as
// Decimal.String does: the integer part ("0" when there is none), then the
// fraction without its trailing zeros, after a point if any digit is left.
func appendScaled(b []byte, coef int64, places int) []byte {
	magnitude := uint64(coef)
	if coef < 0 {
		b = append(b, '-')
		magnitude = -magnitude // math.MinInt64 too: its magnitude is 1<<63
	}
	var digitsBuf [20]byte
	digits := strconv.AppendUint(digitsBuf[:0], magnitude, 10)
	leadingZeros := 0
	if len(digits) > places {
		b = append(b, digits[:len(digits)-places]...)
		digits = digits[len(digits)-places:]
	} else {
		b = append(b, '0')
		leadingZeros = places - len(digits)
	}
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
	}
	if len(digits) == 0 {
		return b
	}
	b = append(b, '.')
	for range leadingZeros {
		b = append(b, '0')
	}
	return append(b, digits...)
}
