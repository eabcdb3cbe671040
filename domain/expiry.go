package domain

import (
	"maps"
	"slices"
	"time"
)

// DecideExpiries returns the events owed at now: GrantExpired for each grant
// past its expiry with credits left (the remainder expires),
// ReservationReleased{expired} for each hold past its TTL, and the
// allocation grants of subscription periods that have started.
func DecideExpiries(l *Line, now time.Time) []Event {
	var events []Event
	for _, g := range l.Grants {
		if g.ExpiresAt != nil && !now.Before(*g.ExpiresAt) {
			events = append(events, GrantExpired{GrantID: g.GrantID, Amount: g.Remaining})
		}
	}
	// Map order is random; sort so a decision is the same on every replay.
	for _, id := range slices.Sorted(maps.Keys(l.Subscriptions)) {
		events = append(events, dueAllocations(l.Subscriptions[id], now)...)
	}
	for _, id := range slices.Sorted(maps.Keys(l.Reservations)) {
		h := l.Reservations[id]
		if !now.Before(h.ExpiresAt) {
			events = append(events, ReservationReleased{ReservationID: h.ReservationID, Amount: h.Amount, Reason: ReleaseExpired})
		}
	}
	return events
}
