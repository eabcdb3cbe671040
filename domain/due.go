package domain

import (
	"maps"
	"slices"
	"time"
)

// DecideDue returns the events owed at now, which a writer applies before
// it decides any write on the line, so no decision depends on whether a
// background sweep has run (domain/README.md, "Due work first"). In order:
//  1. the allocations of subscription periods that have started;
//  2. each hold past its TTL is released (reason expired), and what it had
//     pinned on a grant that has since expired or been voided goes with it;
//  3. each grant past its expiry loses its unpinned remainder.
//
// A grant's effective_at needs no event: Free and Spendable are computed at
// the decision instant.
func DecideDue(l *Line, now time.Time) []Event {
	_, events := Due(l, now)
	return events
}

// Due is DecideDue that also returns the line as those events leave it: a
// copy when anything is due, l itself otherwise. A writer decides a write
// on that line, and stores the due events only with the write, so a
// refused write stores nothing.
func Due(l *Line, now time.Time) (*Line, []Event) {
	if due, ok := l.NextDue(); !ok || due.After(now) {
		return l, nil
	}
	// Later steps decide on the state the earlier ones leave; due work is
	// rare next to writes, so a copy here is cheap where it matters.
	work := l.Clone()
	var events []Event
	emit := func(es ...Event) {
		for _, e := range es {
			work.Apply(e)
		}
		events = append(events, es...)
	}
	// Map order is random; sort so a decision is the same on every replay.
	for _, id := range slices.Sorted(maps.Keys(work.Subscriptions)) {
		emit(dueAllocations(work, work.Subscriptions[id], now)...)
	}
	for _, id := range slices.Sorted(maps.Keys(work.Reservations)) {
		h := work.Reservations[id]
		if !now.Before(h.ExpiresAt) {
			emit(ReservationReleased{ReservationID: h.ReservationID, Amount: h.Amount, Reason: ReleaseExpired})
			emit(forfeits(work, h.Pinned, "reservation:"+h.ReservationID, now)...)
		}
	}
	for _, g := range slices.Clone(work.Grants) {
		if g.ExpiredAt(now) && !g.Voided && g.Unpinned().IsPositive() {
			emit(GrantExpired{GrantID: g.GrantID, Amount: g.Unpinned()})
		}
	}
	return work, events
}

// forfeits returns what goes at once of credits given back, by a hold's
// release or a reversal, to grants that can no longer keep them: expired
// (GrantExpired) or voided (GrantVoided). Parts with no grant stay
// unallocated.
func forfeits(l *Line, parts []Burn, trigger string, now time.Time) []Event {
	var events []Event
	for _, p := range parts {
		if p.GrantID == "" || !p.Amount.IsPositive() {
			continue
		}
		g, ok := l.Grant(p.GrantID)
		switch {
		case !ok:
		case g.Voided:
			events = append(events, GrantVoided{GrantID: p.GrantID, Amount: p.Amount, Reason: "credits given back to a voided grant", Trigger: trigger})
		case g.ExpiredAt(now):
			events = append(events, GrantExpired{GrantID: p.GrantID, Amount: p.Amount, Trigger: trigger})
		}
	}
	return events
}
