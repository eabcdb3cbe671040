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

// DecideReverseUsage returns the UsageReversed event for the original debit
// (read from the log by the caller). Credits go back to the grants that
// paid, where each still can take them (it has credits left, or was burned
// down to zero and not voided or expired since); the rest goes to the
// unallocated balance. Errors: a *FieldError for a missing reason.
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
		g, depleted := l.Depleted[b.GrantID]
		// A grant burned to zero takes credits back only while it could
		// still pay: past its expiry they would expire at once.
		depleted = depleted && (g.ExpiresAt == nil || now.Before(*g.ExpiresAt))
		if l.grantIndex(b.GrantID) >= 0 || depleted {
			returned = append(returned, b)
		}
	}
	return []Event{UsageReversed{UsageID: c.UsageID, Amount: original.Amount, Returned: returned,
		OccurredAt: original.OccurredAt, Dimensions: original.Dimensions, Reason: c.Reason}}, nil
}
