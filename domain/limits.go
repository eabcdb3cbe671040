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
var LineTotalMax = decimal.New(1, 12)

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
			t.granted = t.granted.Add(e.Amount)
		case UsageDebited:
			t.used = t.used.Add(e.Amount)
		case CreditsReserved:
			t.reserved = t.reserved.Add(e.Amount)
		case ReservationCaptured:
			t.reserved = t.reserved.Sub(e.Amount.Add(e.Released))
			t.used = t.used.Add(e.Amount)
		case ReservationReleased:
			t.reserved = t.reserved.Sub(e.Amount)
		case CreditsAdjusted:
			t.adjusted = t.adjusted.Add(e.Amount)
		case GrantExpired:
			t.expired = t.expired.Add(e.Amount)
		case GrantVoided:
			t.adjusted = t.adjusted.Sub(e.Amount)
		case UsageReversed:
			t.used = t.used.Sub(e.Amount)
		}
	}
	balance := t.granted.Add(t.adjusted).Sub(t.used).Sub(t.expired)
	for _, q := range []struct {
		name  string
		value decimal.Decimal
	}{{"granted", t.granted}, {"used", t.used}, {"expired", t.expired}, {"adjusted", t.adjusted}, {"reserved", t.reserved}, {"balance", balance}} {
		if q.value.Abs().GreaterThan(LineTotalMax) {
			return &FieldError{Location: location, Message: fmt.Sprintf("would take the line's %s total to %s, past the limit of %s credits", q.name, q.value, LineTotalMax)}
		}
	}
	return nil
}
