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

// lineTotals are the quantities LineTotalMax bounds.
type lineTotals struct {
	granted, used, expired, adjusted, reserved decimal.Decimal
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
	t := lineTotals{l.Granted, l.Used, l.Expired, l.Adjusted, l.Reserved}
	for _, e := range events {
		switch e := e.(type) {
		case CreditsGranted:
			t.granted = add(t.granted, e.Amount)
		case UsageDebited:
			t.used = add(t.used, e.Amount)
		case CreditsReserved:
			t.reserved = add(t.reserved, e.Amount)
		case ReservationCaptured:
			t.reserved = sub(t.reserved, add(e.Amount, e.Released))
			t.used = add(t.used, e.Amount)
		case ReservationReleased:
			t.reserved = sub(t.reserved, e.Amount)
		case CreditsAdjusted:
			t.adjusted = add(t.adjusted, e.Amount)
		case GrantExpired:
			t.expired = add(t.expired, e.Amount)
		case GrantVoided:
			t.adjusted = sub(t.adjusted, e.Amount)
		case UsageReversed:
			t.used = sub(t.used, e.Amount)
		}
	}
	for _, q := range []struct {
		name  string
		value decimal.Decimal
	}{{"granted", t.granted}, {"used", t.used}, {"expired", t.expired}, {"adjusted", t.adjusted}, {"reserved", t.reserved}} {
		if !withinLineTotal(q.value) {
			return totalError(location, q.name, q.value)
		}
	}
	// Four totals each below 10^11 keep the balance below 4×10^11: the
	// common case skips computing it.
	if belowTenPow(t.granted, lineTotalDigits-1) && belowTenPow(t.adjusted, lineTotalDigits-1) &&
		belowTenPow(t.used, lineTotalDigits-1) && belowTenPow(t.expired, lineTotalDigits-1) {
		return nil
	}
	if balance := sub(sub(add(t.granted, t.adjusted), t.used), t.expired); !withinLineTotal(balance) {
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
	var granted, used, expired, adjusted, reserved int64
	for _, v := range [...]struct {
		to *int64
		d  decimal.Decimal
	}{{&granted, l.Granted}, {&used, l.Used}, {&expired, l.Expired}, {&adjusted, l.Adjusted}, {&reserved, l.Reserved}} {
		if *v.to, exact = micro(v.d); !exact {
			return false, false
		}
	}
	ok := true
	for _, e := range events {
		switch e := e.(type) {
		case CreditsGranted:
			ok = addMicro(&granted, e.Amount, false)
		case UsageDebited:
			ok = addMicro(&used, e.Amount, false)
		case CreditsReserved:
			ok = addMicro(&reserved, e.Amount, false)
		case ReservationCaptured:
			ok = addMicro(&reserved, e.Amount, true) && addMicro(&reserved, e.Released, true) && addMicro(&used, e.Amount, false)
		case ReservationReleased:
			ok = addMicro(&reserved, e.Amount, true)
		case CreditsAdjusted:
			ok = addMicro(&adjusted, e.Amount, false)
		case GrantExpired:
			ok = addMicro(&expired, e.Amount, false)
		case GrantVoided:
			ok = addMicro(&adjusted, e.Amount, true)
		case UsageReversed:
			ok = addMicro(&used, e.Amount, true)
		}
		if !ok {
			return false, false
		}
	}
	for _, v := range [...]int64{granted, used, expired, adjusted, reserved} {
		if v > lineTotalMaxMicro || v < -lineTotalMaxMicro {
			return false, true
		}
	}
	balance := granted + adjusted - used - expired
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
