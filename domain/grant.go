package domain

import (
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Grant adds credits to a line.
type Grant struct {
	GrantID  string
	Amount   decimal.Decimal
	Source   Source
	Priority int
	// EffectiveAt is when the grant starts paying; zero means now.
	EffectiveAt   time.Time
	ExpiresAt     *time.Time
	CostPerCredit *decimal.Decimal
	Currency      string
	Description   string
	Reference     string
	Metadata      map[string]string
}

// Validate reports every malformed field at once.
func (c Grant) Validate() error {
	var v validator
	v.id("grant_id", c.GrantID, true)
	if strings.HasPrefix(c.GrantID, AutoReloadGrantPrefix) || strings.HasPrefix(c.GrantID, SubscriptionGrantPrefix) {
		v.add("grant_id", "must not start with "+AutoReloadGrantPrefix+" or "+SubscriptionGrantPrefix+" (reserved)", c.GrantID)
	}
	v.amount("amount", c.Amount, ValidatePositive)
	switch {
	case c.Source == SourceAutoReload:
		// Only the engine writes it: a client's auto_reload grant would
		// disarm the line's reload as if it had fired.
		v.add("source", "auto_reload is written only by the engine's auto-reload", string(c.Source))
	case !c.Source.Valid():
		v.add("source", "must be one of purchase, subscription, promotional, manual", string(c.Source))
	}
	if c.ExpiresAt != nil && !c.EffectiveAt.IsZero() && !c.ExpiresAt.After(c.EffectiveAt) {
		v.add("expires_at", "must be after effective_at", c.ExpiresAt.Format(time.RFC3339Nano))
	}
	if c.CostPerCredit != nil {
		v.amount("cost_per_credit", *c.CostPerCredit, ValidateNonNegative)
	}
	v.text("currency", c.Currency, 8, false)
	v.text("description", c.Description, TextLengthMax, false)
	v.text("reference", c.Reference, TextLengthMax, false)
	v.stringMap("metadata", c.Metadata, MetadataKeysMax, CustomKeyLengthMax, TextLengthMax)
	return v.err()
}

// Fingerprint identifies the request for idempotency.
func (c Grant) Fingerprint() uint64 {
	var f fingerprinter
	f = f.str("grant").str(c.GrantID).dec(c.Amount).str(string(c.Source)).str(itoa(c.Priority)).time(c.EffectiveAt)
	if c.ExpiresAt != nil {
		f = f.time(*c.ExpiresAt)
	} else {
		f = f.str("-")
	}
	if c.CostPerCredit != nil {
		f = f.dec(*c.CostPerCredit)
	} else {
		f = f.str("-")
	}
	return f.str(c.Currency).str(c.Description).str(c.Reference).stringMap(c.Metadata).sum()
}

// DecideGrant returns the CreditsGranted event for c. A grant whose expiry is
// already past is refused with ErrInvalidCommand: it could never pay.
func DecideGrant(l *Line, c Grant, now time.Time) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	effective := c.EffectiveAt
	if effective.IsZero() {
		effective = now
	}
	if _, ok := l.Grant(c.GrantID); ok {
		return nil, &FieldError{Location: "grant_id", Message: "is already a grant of this line", Value: c.GrantID}
	}
	if c.ExpiresAt != nil && !c.ExpiresAt.After(now) {
		return nil, &FieldError{Location: "expires_at", Message: "is in the past", Value: c.ExpiresAt.Format(time.RFC3339Nano)}
	}
	events := []Event{CreditsGranted{
		GrantID: c.GrantID, Amount: c.Amount, Source: c.Source, Priority: c.Priority,
		EffectiveAt: effective.UTC(), ExpiresAt: utcPtr(c.ExpiresAt), CostPerCredit: c.CostPerCredit,
		Currency: c.Currency, Description: c.Description, Reference: c.Reference, Metadata: c.Metadata,
		Fingerprint: c.Fingerprint(),
	}}
	if err := checkTotals(l, events, "amount"); err != nil {
		return nil, err
	}
	return events, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
