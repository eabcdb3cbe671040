package domain

import (
	"time"

	"github.com/shopspring/decimal"
)

// Adjust corrects a line by a signed amount, with a reason for the auditor.
type Adjust struct {
	AdjustmentID string
	Amount       decimal.Decimal
	Reason       string
	Reference    string
}

// Validate reports every malformed field at once.
func (c Adjust) Validate() error {
	var v validator
	v.id("adjustment_id", c.AdjustmentID, true)
	v.amount("amount", c.Amount, ValidateAmount)
	if c.Amount.IsZero() {
		v.add("amount", "must not be zero", "0")
	}
	v.text("reason", c.Reason, TextLengthMax, true)
	v.text("reference", c.Reference, TextLengthMax, false)
	return v.err()
}

// Fingerprint identifies the request for idempotency.
func (c Adjust) Fingerprint() uint64 {
	var f fingerprinter
	return f.str("adjust").str(c.AdjustmentID).dec(c.Amount).str(c.Reason).str(c.Reference).sum()
}

// DecideAdjust returns the CreditsAdjusted event. A positive adjustment adds
// unallocated credits; a negative one takes them from the free unallocated
// balance first and then from the active grants' unpinned credits in
// burn-down order, and may
// leave the balance negative: it is a correction, not a purchase, so it is
// never refused for lack of credits.
func DecideAdjust(l *Line, c Adjust, now time.Time) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var burns []Burn
	if c.Amount.IsNegative() {
		// Unallocated credits a hold pinned are not free to take.
		free := l.Unallocated.Sub(l.heldUnallocated())
		fromGrants := c.Amount.Neg().Sub(decimal.Max(free, decimal.Zero))
		if fromGrants.IsPositive() {
			burns = l.planBurn(fromGrants, now)
		}
	}
	events := []Event{CreditsAdjusted{
		AdjustmentID: c.AdjustmentID, Amount: c.Amount, Reason: c.Reason, Reference: c.Reference,
		Burned: burns, Fingerprint: c.Fingerprint(),
	}}
	if err := checkTotals(l, events, "amount"); err != nil {
		return nil, err
	}
	return events, nil
}
