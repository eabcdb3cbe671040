package dectext

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shopspring/decimal"
)

// check holds Append to Decimal.String, after a prefix that must stay.
func check(t testing.TB, d decimal.Decimal) {
	t.Helper()
	got := Append([]byte("kept:"), d)
	if want := "kept:" + d.String(); string(got) != want {
		t.Fatalf("Append(%#v) = %q, Decimal.String %q", d, got, want)
	}
}

// TestAppendIsDecimalString: on edges (zeros of any exponent, int64 and
// 18-digit limits, every exponent at and past ±64) and on random values,
// Append writes what Decimal.String writes.
func TestAppendIsDecimalString(t *testing.T) {
	t.Parallel()
	coefs := []int64{0, 1, -1, 7, 10, -10, 100, 120, 999_999_999_999_999_999, -999_999_999_999_999_999,
		1_000_000_000_000_000_000, math.MaxInt64, math.MinInt64, math.MinInt64 + 1, 2500, 1_000_001}
	for _, coef := range coefs {
		for exp := int32(-70); exp <= 70; exp++ {
			check(t, decimal.New(coef, exp))
		}
	}
	check(t, decimal.Decimal{}) // the zero value: an unset quantity
	for _, text := range []string{"0.000000", "0E+3", "-0.000001", "2.5", "1e12", "123456789012345678901234567890.5", "-0.1200",
		// 19 digits past an int64, either sign: String's own path.
		"9999999999999999999", "-9223372036854775809", "9223372036854775808e-3", "18446744073709551617e-30"} {
		check(t, decimal.RequireFromString(text))
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for range 200_000 {
		coef := rng.Int64() >> rng.IntN(64)
		if rng.IntN(2) == 0 {
			coef = -coef
		}
		check(t, decimal.New(coef, int32(rng.IntN(40)-30)))
	}
}

// TestAppendAllocatesNothing: the common amounts need no allocation.
func TestAppendAllocatesNothing(t *testing.T) {
	var buf [64]byte
	amounts := []decimal.Decimal{decimal.RequireFromString("0.002"), decimal.RequireFromString("1500"), decimal.New(25, 2), decimal.Zero, {}}
	if allocs := testing.AllocsPerRun(100, func() {
		for _, d := range amounts {
			Append(buf[:0], d)
		}
	}); allocs != 0 {
		t.Errorf("%v allocations, want 0", allocs)
	}
}
