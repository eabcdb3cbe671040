package sim

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Status is how a write ended, as the client sees it.
type Status string

const (
	StatusAccepted  Status = "accepted"
	StatusDuplicate Status = "duplicate"
	StatusRefused   Status = "refused"
)

// Reasons a write is refused. The recorded ones (insufficient credits,
// occurred in future) are stored as events and answer every retry the same.
const (
	ReasonInsufficient = "insufficient_credits"
	ReasonFuture       = "occurred_in_future"
	ReasonNotFound     = "not_found"
	ReasonClosed       = "closed"
	ReasonConflict     = "conflict"
	ReasonExpired      = "expired"
	ReasonExceedsHold  = "exceeds_hold"
	ReasonCanceled     = "canceled"
	// ReasonInvalid is followed by ":" and the field named (invalid:amount).
	ReasonInvalid = "invalid"
)

func invalid(field string) string { return ReasonInvalid + ":" + field }

// Answer is one write's outcome with the amounts it moved. For a duplicate,
// Reason is the original outcome's ("" when it was accepted).
type Answer struct {
	Status Status
	Reason string

	// What an accepted write moved (zero when not applicable).
	Amount   decimal.Decimal // debited, held, captured, voided
	Released decimal.Decimal // the part of a hold a capture gave back
	// Parts are the grants that paid a debit, capture or negative
	// adjustment, or took a reversal back: grant id → amount. The part of no
	// grant (unallocated) is left out, as the events leave it out.
	Parts map[string]decimal.Decimal
	// Pins are the grants a hold pinned (grant id → amount), compared only
	// when the engine's answer shows them.
	Pins      map[string]decimal.Decimal
	Reload    decimal.Decimal // the auto-reload grant the write caused
	ExpiresAt time.Time       // a hold's end
	// Detailed is false when the amounts are unknown (the engine answered a
	// duplicate without reading the original back).
	Detailed bool
}

func (a Answer) String() string {
	s := string(a.Status)
	if a.Reason != "" {
		s += "(" + a.Reason + ")"
	}
	if !a.Detailed {
		return s
	}
	var extra []string
	if !a.Amount.IsZero() {
		extra = append(extra, "amount="+a.Amount.String())
	}
	if !a.Released.IsZero() {
		extra = append(extra, "released="+a.Released.String())
	}
	if len(a.Parts) > 0 {
		extra = append(extra, "parts="+partsString(a.Parts))
	}
	if !a.Reload.IsZero() {
		extra = append(extra, "reload="+a.Reload.String())
	}
	if !a.ExpiresAt.IsZero() {
		extra = append(extra, "expires="+stamp(a.ExpiresAt))
	}
	if len(extra) == 0 {
		return s
	}
	return s + " " + strings.Join(extra, " ")
}

func partsString(parts map[string]decimal.Decimal) string {
	var out []string
	for _, id := range slices.Sorted(maps.Keys(parts)) {
		out = append(out, id+":"+parts[id].String())
	}
	return "{" + strings.Join(out, " ") + "}"
}

// nonZeroParts drops zero entries: a representation may list a grant that
// paid nothing.
func nonZeroParts(parts map[string]decimal.Decimal) map[string]decimal.Decimal {
	out := map[string]decimal.Decimal{}
	for id, v := range parts {
		if !v.IsZero() {
			out[id] = v
		}
	}
	return out
}

func equalParts(a, b map[string]decimal.Decimal) bool {
	a, b = nonZeroParts(a), nonZeroParts(b)
	if len(a) != len(b) {
		return false
	}
	for id, v := range a {
		if w, ok := b[id]; !ok || !w.Equal(v) {
			return false
		}
	}
	return true
}

// compareAnswer says how the engine's answer differs from the model's, ""
// when they agree. retried is true when a fault made the driver send the
// op again: an accepted write may then come back as a duplicate of itself.
func compareAnswer(kind OpKind, model, engine Answer, retried bool) string {
	if retried && engine.Status == StatusDuplicate && model.Status != StatusDuplicate {
		// The first try landed and its answer was lost: the retry gets the
		// original outcome, as a duplicate.
		if model.Status == StatusAccepted && engine.Reason == "" || model.Status == StatusRefused && engine.Reason == model.Reason {
			return ""
		}
	}
	if kind == OpReserve && model.Status == StatusDuplicate && model.Reason != "" {
		// A refused reservation's retry answers the refusal again (402),
		// which does not say it is a repeat.
		model = Answer{Status: StatusRefused, Reason: model.Reason}
	}
	if model.Status != engine.Status || model.Reason != engine.Reason {
		return fmt.Sprintf("model %s, engine %s", model, engine)
	}
	if !model.Detailed || !engine.Detailed {
		return ""
	}
	var diffs []string
	if !model.Amount.Equal(engine.Amount) {
		diffs = append(diffs, fmt.Sprintf("amount %s != %s", model.Amount, engine.Amount))
	}
	if !model.Released.Equal(engine.Released) {
		diffs = append(diffs, fmt.Sprintf("released %s != %s", model.Released, engine.Released))
	}
	if !equalParts(model.Parts, engine.Parts) {
		diffs = append(diffs, fmt.Sprintf("parts %s != %s", partsString(nonZeroParts(model.Parts)), partsString(nonZeroParts(engine.Parts))))
	}
	if engine.Pins != nil && !equalParts(model.Pins, engine.Pins) {
		diffs = append(diffs, fmt.Sprintf("pins %s != %s", partsString(nonZeroParts(model.Pins)), partsString(nonZeroParts(engine.Pins))))
	}
	if !model.Reload.Equal(engine.Reload) {
		diffs = append(diffs, fmt.Sprintf("auto-reload %s != %s", model.Reload, engine.Reload))
	}
	if !model.ExpiresAt.Equal(engine.ExpiresAt) {
		diffs = append(diffs, fmt.Sprintf("expires_at %s != %s", stamp(model.ExpiresAt), stamp(engine.ExpiresAt)))
	}
	if len(diffs) == 0 {
		return ""
	}
	return fmt.Sprintf("model %s, engine %s: %s", model, engine, strings.Join(diffs, ", "))
}
