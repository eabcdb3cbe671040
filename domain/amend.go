package domain

import (
	"fmt"
	"time"
)

// VoidGrant takes a grant's remaining credits off the line, with a reason.
type VoidGrant struct {
	GrantID string
	Reason  string
}

// Fingerprint identifies the request for idempotency: the grant and the
// reason, so the same void id with another reason is a conflict.
func (c VoidGrant) Fingerprint() uint64 {
	var f fingerprinter
	return f.str("void").str(c.GrantID).str(c.Reason).sum()
}

// DecideVoidGrant returns the GrantVoided event for the grant's unpinned
// credits; what open holds pinned is voided when they give it back. Errors:
// ErrGrantNotFound (no grant with credits left by that id, or voided
// already), a *FieldError for a missing reason.
func DecideVoidGrant(l *Line, c VoidGrant) ([]Event, error) {
	var v validator
	v.text("reason", c.Reason, TextLengthMax, true)
	if err := v.err(); err != nil {
		return nil, err
	}
	i := l.grantIndex(c.GrantID)
	if i < 0 || l.Grants[i].Voided {
		return nil, fmt.Errorf("%w: %s has no credits left on this line", ErrGrantNotFound, c.GrantID)
	}
	return []Event{GrantVoided{GrantID: c.GrantID, Amount: l.Grants[i].Unpinned(), Reason: c.Reason}}, nil
}

// ChangeGrantExpiry moves a grant's expiry; nil removes it.
type ChangeGrantExpiry struct {
	GrantID   string
	ExpiresAt *time.Time
}

// DecideChangeGrantExpiry returns the GrantExpiryChanged event, none when
// the expiry is already that. Errors: ErrGrantExpired for a grant whose
// expiry has passed at now (its credits are gone, or go when its holds
// end: no change brings them back), ErrGrantNotFound, a *FieldError for an
// expiry not after now and the grant's start (expire it by voiding).
func DecideChangeGrantExpiry(l *Line, c ChangeGrantExpiry, now time.Time) ([]Event, error) {
	g, ok := l.Grant(c.GrantID)
	if ok && g.ExpiredAt(now) {
		return nil, fmt.Errorf("%w: %s expired at %s", ErrGrantExpired, c.GrantID, g.ExpiresAt.Format(time.RFC3339Nano))
	}
	if i := l.grantIndex(c.GrantID); i < 0 || g.Voided {
		return nil, fmt.Errorf("%w: %s has no credits left on this line", ErrGrantNotFound, c.GrantID)
	}
	if c.ExpiresAt != nil && (!c.ExpiresAt.After(now) || !c.ExpiresAt.After(g.EffectiveAt)) {
		return nil, &FieldError{Location: "expires_at", Message: "must be after now and after the grant's effective_at", Value: c.ExpiresAt.Format(time.RFC3339Nano)}
	}
	if (g.ExpiresAt == nil && c.ExpiresAt == nil) || (g.ExpiresAt != nil && c.ExpiresAt != nil && g.ExpiresAt.Equal(*c.ExpiresAt)) {
		return nil, nil
	}
	return []Event{GrantExpiryChanged{GrantID: c.GrantID, ExpiresAt: utcPtr(c.ExpiresAt)}}, nil
}
