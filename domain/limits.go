package domain

import (
	"fmt"
	"math"

	"github.com/shopspring/decimal"
)

// LineTotalMax bounds each of a line's totals: granted, used, expired,
// adjusted (either sign), reserved and the balance (either sign), in
// credits. Read models keep them as int64 micro-credits, where 10^12
// credits is 10^18 and even the sum of four of them stays below 2^63, so
// no total and no balance computed from them can wrap
// (docs/decisions.md). A client write that would pass it is refused.
var LineTotalMax = decimal.New(1, lineTotalDigits)

const lineTotalDigits = 12

// withinLineTotal reports |v| <= LineTotalMax, without arithmetic below
// 10^12 (belowTenPow).
func withinLineTotal(v decimal.Decimal) bool {
	return belowTenPow(v, lineTotalDigits) || !v.Abs().GreaterThan(LineTotalMax)
}

func totalError(location, name string, v decimal.Decimal) error {
	return &FieldError{Location: location, Message: fmt.Sprintf("would take the line's %s total to %s, past the limit of %s credits", name, v, LineTotalMax)}
}

// total names a quantity LineTotalMax bounds, the balance aside.
type total int

const (
	totalGranted total = iota
	totalUsed
	totalExpired
	totalAdjusted
	totalReserved
	totalCount
)

var totalNames = [totalCount]string{"granted", "used", "expired", "adjusted", "reserved"}

// totalsOf are l's totals, indexed by total.
func totalsOf(l *Line) [totalCount]decimal.Decimal {
	return [totalCount]decimal.Decimal{l.Granted, l.Used, l.Expired, l.Adjusted, l.Reserved}
}

// moveTotals calls move for each total e changes, with the amount added
// (subtracted when negate), until move returns false, and reports whether
// none did. It is the one place that says which event moves which total,
// for both ways of checking them.
func moveTotals(e Event, move func(t total, amount decimal.Decimal, negate bool) bool) bool {
	switch e := e.(type) {
	case CreditsGranted:
		return move(totalGranted, e.Amount, false)
	case UsageDebited:
		return move(totalUsed, e.Amount, false)
	case CreditsReserved:
		return move(totalReserved, e.Amount, false)
	case ReservationCaptured:
		return move(totalReserved, e.Amount, true) && move(totalReserved, e.Released, true) && move(totalUsed, e.Amount, false)
	case ReservationReleased:
		return move(totalReserved, e.Amount, true)
	case CreditsAdjusted:
		return move(totalAdjusted, e.Amount, false)
	case GrantExpired:
		return move(totalExpired, e.Amount, false)
	case GrantVoided:
		return move(totalAdjusted, e.Amount, true)
	case UsageReversed:
		return move(totalUsed, e.Amount, true)
	}
	return true
}

// checkTotals returns a FieldError at location when applying events to l
// would take one of its totals past LineTotalMax. It adds the events'
// amounts instead of applying them, so it costs nothing per debit.
func checkTotals(l *Line, events []Event, location string) error {
	if within, exact := totalsWithinMicro(l, events); exact && within {
		return nil
	}
	return checkTotalsDecimal(l, events, location)
}

// checkTotalsDecimal is checkTotals in decimal arithmetic: exact for any
// amount, and what names the total past the limit.
func checkTotalsDecimal(l *Line, events []Event, location string) error {
	t := totalsOf(l)
	for _, e := range events {
		moveTotals(e, func(k total, amount decimal.Decimal, negate bool) bool {
			if negate {
				t[k] = sub(t[k], amount)
			} else {
				t[k] = add(t[k], amount)
			}
			return true
		})
	}
	for k, value := range t {
		if !withinLineTotal(value) {
			return totalError(location, totalNames[k], value)
		}
	}
	granted, used, expired, adjusted := t[totalGranted], t[totalUsed], t[totalExpired], t[totalAdjusted]
	// Four totals each below 10^11 keep the balance below 4×10^11: the
	// common case skips computing it.
	if belowTenPow(granted, lineTotalDigits-1) && belowTenPow(adjusted, lineTotalDigits-1) &&
		belowTenPow(used, lineTotalDigits-1) && belowTenPow(expired, lineTotalDigits-1) {
		return nil
	}
	if balance := sub(sub(add(granted, adjusted), used), expired); !withinLineTotal(balance) {
		return totalError(location, "balance", balance)
	}
	return nil
}

// totalsWithinMicro is checkTotals' answer in int64 millionths of a credit,
// without the allocations of decimal arithmetic (a new big.Int per sum):
// every debit is checked. exact is false when a total or an amount is not
// a whole number of millionths within an int64, or a sum would wrap; the
// caller then decides in decimals. Totals at most LineTotalMax are at most
// 10^18 millionths, and the balance, a sum of four of them, stays below
// 2^63.
func totalsWithinMicro(l *Line, events []Event) (within, exact bool) {
	var m [totalCount]int64
	for k, d := range totalsOf(l) {
		if m[k], exact = micro(d); !exact {
			return false, false
		}
	}
	move := func(k total, amount decimal.Decimal, negate bool) bool { return addMicro(&m[k], amount, negate) }
	for _, e := range events {
		if !moveTotals(e, move) {
			return false, false
		}
	}
	for _, v := range m {
		if v > lineTotalMaxMicro || v < -lineTotalMaxMicro {
			return false, true
		}
	}
	balance := m[totalGranted] + m[totalAdjusted] - m[totalUsed] - m[totalExpired]
	return balance <= lineTotalMaxMicro && balance >= -lineTotalMaxMicro, true
}

// lineTotalMaxMicro is LineTotalMax in millionths.
const lineTotalMaxMicro = 1_000_000_000_000_000_000

// addMicro adds d (subtracts it when negate) to *t in millionths; false
// when d is not a whole number of millionths in an int64 or the sum wraps.
func addMicro(t *int64, d decimal.Decimal, negate bool) bool {
	m, ok := micro(d)
	if !ok {
		return false
	}
	if negate {
		if m == math.MinInt64 {
			return false
		}
		m = -m
	}
	sum := *t + m
	if (m > 0 && sum < *t) || (m < 0 && sum > *t) {
		return false
	}
	*t = sum
	return true
}
