package domain

import (
	"time"

	"github.com/shopspring/decimal"
)

// ConfigureAutoReload sets a line's auto-reload: when a debit leaves
// available below Threshold, a grant of Amount is added, once per crossing.
type ConfigureAutoReload struct {
	Enabled   bool
	Threshold decimal.Decimal
	Amount    decimal.Decimal
}

// Validate reports every malformed field at once.
func (c ConfigureAutoReload) Validate() error {
	var v validator
	v.amount("threshold", c.Threshold, ValidateNonNegative)
	if c.Enabled {
		v.amount("amount", c.Amount, ValidatePositive)
	} else {
		v.amount("amount", c.Amount, ValidateNonNegative)
	}
	return v.err()
}

// DecideConfigureAutoReload returns the event that records the setting, or
// none when the line already has exactly this setting (a repeated PUT).
func DecideConfigureAutoReload(l *Line, c ConfigureAutoReload) ([]Event, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	current := l.AutoReload
	if current.Enabled == c.Enabled && current.Threshold.Equal(c.Threshold) && current.Amount.Equal(c.Amount) {
		return nil, nil
	}
	return []Event{AutoReloadConfigured{Enabled: c.Enabled, Threshold: c.Threshold, Amount: c.Amount}}, nil
}

// AutoReloadGrantPrefix starts the id of every auto-reload grant; client
// grant ids may not use it, so the two never collide.
const AutoReloadGrantPrefix = "auto_reload:"

// autoReloadAfter returns the auto_reload grant owed after a debit of amount
// decided at now, or nil: when the debit leaves Free(now) below the
// threshold and the reload is armed. trigger is the debit's id and makes the
// grant id deterministic, so a replayed decision yields the same grant.
func autoReloadAfter(l *Line, amount decimal.Decimal, trigger string, now time.Time) []Event {
	// A zero debit (a failed request, say) spends nothing: it crosses
	// nothing, even on a line an expiry took below the threshold.
	if !amount.IsPositive() || !reloadArmed(l) || !sub(l.Free(now), amount).LessThan(l.AutoReload.Threshold) {
		return nil
	}
	return reloadGrant(l, trigger, now)
}

// reloadFirst fires an armed auto-reload before a debit or hold of amount
// that the line cannot pay at now, so a line that fell to zero without a
// debit (an expiry, a void, a correction) is not stuck. It returns the line
// to decide on (a reloaded copy when it fired) and the reload's events.
func reloadFirst(l *Line, amount decimal.Decimal, trigger string, now time.Time) (*Line, []Event) {
	if !amount.IsPositive() || !reloadArmed(l) || !amount.GreaterThan(l.Spendable(now)) {
		return l, nil
	}
	events := reloadGrant(l, trigger, now)
	if len(events) == 0 {
		return l, nil
	}
	reloaded := l.Clone()
	reloaded.Observe(now)
	for _, e := range events {
		reloaded.Apply(e)
	}
	return reloaded, events
}

// reloadArmed reports whether a reload may fire on l. The callers ask it
// before the free credits they compare, which cost decimal arithmetic on
// every debit of the many lines without an auto-reload.
func reloadArmed(l *Line) bool {
	return l.AutoReload.Enabled && l.ReloadArmed && l.AutoReload.Amount.IsPositive()
}

// reloadGrant is the auto_reload grant of an armed reload, or nil. A reload
// that would leave any of the line's totals past LineTotalMax does not fire.
func reloadGrant(l *Line, trigger string, now time.Time) []Event {
	if !reloadArmed(l) {
		return nil
	}
	ar := l.AutoReload
	events := []Event{CreditsGranted{
		GrantID: AutoReloadGrantPrefix + trigger, Amount: ar.Amount, Source: SourceAutoReload,
		EffectiveAt: now.UTC(), Description: "auto-reload", Trigger: trigger,
	}}
	if checkTotals(l, events, "") != nil {
		return nil
	}
	return events
}

// ConfigureLine sets a line's overdraft limit: how far below zero available
// may go.
type ConfigureLine struct {
	OverdraftLimit decimal.Decimal
}

// DecideConfigureLine returns the event recording the setting, or none if
// unchanged.
func DecideConfigureLine(l *Line, c ConfigureLine) ([]Event, error) {
	var v validator
	v.amount("overdraft_limit", c.OverdraftLimit, ValidateNonNegative)
	if err := v.err(); err != nil {
		return nil, err
	}
	if l.OverdraftLimit.Equal(c.OverdraftLimit) {
		return nil, nil
	}
	return []Event{CreditLineConfigured{OverdraftLimit: c.OverdraftLimit}}, nil
}
