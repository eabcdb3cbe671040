package sim

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/shopspring/decimal"
)

// LineState is what both sides are compared on after every step: a line's
// totals, its grants with credits left and its open holds.
type LineState struct {
	Granted, Used, Expired, Adjusted, Reserved decimal.Decimal
	Balance, Available, Unallocated, Overdraft decimal.Decimal
	// Grants holds the grants with credits left (remaining > 0, pinned
	// parts included).
	Grants map[string]GrantState
	// Holds are the open reservations: id → amount held.
	Holds map[string]decimal.Decimal
}

// GrantState is one grant's amounts.
type GrantState struct {
	Amount, Remaining decimal.Decimal
}

// Totals are the numbers the read models keep per line.
type Totals struct {
	Granted, Used, Expired, Adjusted, Reserved, Balance decimal.Decimal
}

func (s LineState) totals() Totals {
	return Totals{Granted: s.Granted, Used: s.Used, Expired: s.Expired, Adjusted: s.Adjusted, Reserved: s.Reserved, Balance: s.Balance}
}

func (t Totals) String() string {
	return fmt.Sprintf("granted=%s used=%s expired=%s adjusted=%s reserved=%s balance=%s",
		t.Granted, t.Used, t.Expired, t.Adjusted, t.Reserved, t.Balance)
}

// diffTotals lists the totals that differ, empty when none.
func diffTotals(want, got Totals) []string {
	var diffs []string
	field := func(name string, w, g decimal.Decimal) {
		if !w.Equal(g) {
			diffs = append(diffs, fmt.Sprintf("%s %s != %s", name, w, g))
		}
	}
	field("granted", want.Granted, got.Granted)
	field("used", want.Used, got.Used)
	field("expired", want.Expired, got.Expired)
	field("adjusted", want.Adjusted, got.Adjusted)
	field("reserved", want.Reserved, got.Reserved)
	field("balance", want.Balance, got.Balance)
	return diffs
}

// diffStates lists every difference between the model's state (want) and
// the engine's (got), empty when they agree.
func diffStates(want, got LineState) []string {
	diffs := diffTotals(want.totals(), got.totals())
	field := func(name string, w, g decimal.Decimal) {
		if !w.Equal(g) {
			diffs = append(diffs, fmt.Sprintf("%s %s != %s", name, w, g))
		}
	}
	field("available", want.Available, got.Available)
	field("unallocated", want.Unallocated, got.Unallocated)
	field("overdraft", want.Overdraft, got.Overdraft)
	for _, id := range slices.Sorted(maps.Keys(want.Grants)) {
		w := want.Grants[id]
		g, ok := got.Grants[id]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("grant %s remaining %s != absent", id, w.Remaining))
		case !w.Remaining.Equal(g.Remaining) || !w.Amount.Equal(g.Amount):
			diffs = append(diffs, fmt.Sprintf("grant %s remaining %s/%s != %s/%s", id, w.Remaining, w.Amount, g.Remaining, g.Amount))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(got.Grants)) {
		if _, ok := want.Grants[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("grant %s absent != remaining %s", id, got.Grants[id].Remaining))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(want.Holds)) {
		if g, ok := got.Holds[id]; !ok || !g.Equal(want.Holds[id]) {
			diffs = append(diffs, fmt.Sprintf("hold %s %s != %s", id, want.Holds[id], holdText(got.Holds, id)))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(got.Holds)) {
		if _, ok := want.Holds[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("hold %s absent != %s", id, got.Holds[id]))
		}
	}
	return diffs
}

func holdText(holds map[string]decimal.Decimal, id string) string {
	if h, ok := holds[id]; ok {
		return h.String()
	}
	return "absent"
}

// checkInvariants returns the rules of domain/README.md a line state breaks:
// every grant's remaining in (0, amount], the totals identity, reserved as
// the sum of the holds, and available ≥ −overdraft unless the line had a
// negative adjustment or a lowered limit (exempt).
func checkInvariants(s LineState, exempt bool) []string {
	var broken []string
	sum := s.Unallocated
	for _, id := range slices.Sorted(maps.Keys(s.Grants)) {
		g := s.Grants[id]
		if !g.Remaining.IsPositive() || g.Remaining.GreaterThan(g.Amount) {
			broken = append(broken, fmt.Sprintf("grant %s remaining %s outside (0, %s]", id, g.Remaining, g.Amount))
		}
		sum = sum.Add(g.Remaining)
	}
	balance := s.Granted.Add(s.Adjusted).Sub(s.Used).Sub(s.Expired)
	if !balance.Equal(s.Balance) {
		broken = append(broken, fmt.Sprintf("balance %s != granted + adjusted − used − expired = %s", s.Balance, balance))
	}
	if !sum.Equal(s.Balance) {
		broken = append(broken, fmt.Sprintf("balance %s != Σ grants' remaining + unallocated = %s", s.Balance, sum))
	}
	held := decimal.Zero
	for _, h := range s.Holds {
		held = held.Add(h)
	}
	if !held.Equal(s.Reserved) {
		broken = append(broken, fmt.Sprintf("reserved %s != Σ open holds %s", s.Reserved, held))
	}
	if !s.Available.Equal(s.Balance.Sub(s.Reserved)) {
		broken = append(broken, fmt.Sprintf("available %s != balance − reserved %s", s.Available, s.Balance.Sub(s.Reserved)))
	}
	if !exempt && s.Available.LessThan(s.Overdraft.Neg()) {
		broken = append(broken, fmt.Sprintf("available %s below −overdraft %s", s.Available, s.Overdraft.Neg()))
	}
	return broken
}

func joinProblems(problems []string) string { return strings.Join(problems, "; ") }
