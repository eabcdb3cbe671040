package domain

import (
	"fmt"
	"time"
)

// ReverseUsage gives a usage debit's credits back, with a reason.
type ReverseUsage struct {
	UsageID string
	Reason  string
}

// Fingerprint identifies the request for idempotency: the usage and the
// reason, so the same reversal with another reason is a conflict.
func (c ReverseUsage) Fingerprint() uint64 {
	var f fingerprinter
	return f.str("reverse").str(c.UsageID).str(c.Reason).sum()
}

// DecideReverseUsage returns the UsageReversed event for the original debit
// (read from the log by the caller). Credits go back to the grants that
// paid, with those grants' expiry: what returns to a grant expired by now
// expires at once (GrantExpired), what returns to a voided grant is voided
// at once (GrantVoided), so a reversal never turns expiring credits into
// permanent ones. The part no grant paid returns to the unallocated
// balance. Errors: a *FieldError for a missing reason, or for a balance it
// would take past LineTotalMax.
func DecideReverseUsage(l *Line, c ReverseUsage, original UsageDebited, now time.Time) ([]Event, error) {
	var v validator
	v.text("reason", c.Reason, TextLengthMax, true)
	if err := v.err(); err != nil {
		return nil, err
	}
	if original.UsageID != c.UsageID {
		return nil, fmt.Errorf("%w: the original debit is %q, not %q", ErrInvalidCommand, original.UsageID, c.UsageID)
	}
	var returned []Burn
	for _, b := range original.Burned {
		if _, ok := l.Grant(b.GrantID); ok {
			returned = append(returned, b)
		}
	}
	events := []Event{UsageReversed{UsageID: c.UsageID, Amount: original.Amount, Returned: returned,
		OccurredAt: original.OccurredAt, Dimensions: original.Dimensions, Reason: c.Reason}}
	events = append(events, forfeits(l, returned, "reverse:"+c.UsageID, now)...)
	// The credits given back must leave the balance within LineTotalMax,
	// as every other write's do (the usage id is the request's path).
	if err := checkTotals(l, events, "path.usage_id"); err != nil {
		return nil, err
	}
	return events, nil
}
