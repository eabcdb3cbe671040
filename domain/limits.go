package domain

import (
	"fmt"

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
