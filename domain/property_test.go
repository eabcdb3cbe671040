package domain

import (
	"encoding/json"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// TestRandomizedLineProperties decides random commands against one line and
// applies what they return, checking after every event that:
//   - the invariants hold (apply);
//   - used never decreases;
//   - a debit or hold is only decided within Spendable, and every burn follows
//     the burn-down order over the grants active at the decision time;
//   - each event moves Spendable(now) and Balance by exactly what it says, so
//     Spendable only goes below zero through a negative adjustment or a lower
//     overdraft limit;
//   - auto-reload fires exactly once per crossing of the threshold.
//
// At the end, replaying the log (through JSON) rebuilds the same line.
func TestRandomizedLineProperties(t *testing.T) {
	t.Parallel()
	const steps = 4000
	rng := rand.New(rand.NewPCG(2026, 1))
	p := &propertyRun{t: t, l: NewLine(DefaultCreditType), now: t0, counts: map[string]int{}}

	micro := func(maxCredits int64) decimal.Decimal {
		return decimal.New(rng.Int64N(maxCredits*1_000_000+1), -6)
	}
	within := func(max time.Duration) time.Duration { return time.Duration(rng.Int64N(int64(max) + 1)) }
	seq := 0
	newID := func(prefix string) string {
		seq++
		return prefix + itoa(seq)
	}
	openHold := func() (string, bool) {
		if len(p.l.Reservations) == 0 {
			return "", false
		}
		ids := slices.Sorted(maps.Keys(p.l.Reservations))
		return ids[rng.IntN(len(ids))], true
	}
	weights := []struct {
		op string
		w  int
	}{
		{"grant", 6}, {"usage", 12}, {"reserve", 6}, {"capture", 5}, {"release", 2},
		{"adjust", 2}, {"expiries", 4}, {"overdraft", 1}, {"autoreload", 2},
	}
	total := 0
	for _, w := range weights {
		total += w.w
	}

	for step := range steps {
		if rng.IntN(5) == 0 {
			p.now = p.now.Add(within(20 * time.Minute))
		}
		now := p.now
		r := rng.IntN(total)
		op := ""
		for _, w := range weights {
			if r < w.w {
				op = w.op
				break
			}
			r -= w.w
		}
		p.step = step
		// Due work first, as the writer does before every decision.
		p.l.Observe(now)
		p.decided(DecideDue(p.l, now))
		var ev []Event
		var err error
		switch op {
		case "grant":
			sources := []Source{SourcePurchase, SourceSubscription, SourcePromotional, SourceManual}
			c := Grant{GrantID: newID("g"), Amount: micro(80).Add(d("0.000001")), Source: sources[rng.IntN(len(sources))], Priority: rng.IntN(3)}
			from := now
			switch rng.IntN(3) {
			case 1:
				c.EffectiveAt = now.Add(-within(2 * time.Hour))
			case 2:
				c.EffectiveAt = now.Add(within(30 * time.Minute))
				from = c.EffectiveAt
			}
			if rng.IntN(2) == 0 {
				c.ExpiresAt = tp(from.Add(time.Minute + within(3*time.Hour)))
			}
			ev = must(t)(DecideGrant(p.l, c, now))
		case "usage":
			c := RecordUsage{UsageID: newID("u"), Amount: micro(60)}
			if rng.IntN(10) == 0 {
				c.Amount = decimal.Zero
			}
			switch rng.IntN(4) {
			case 1:
				c.OccurredAt = now.Add(-within(2 * time.Hour))
			case 2:
				c.OccurredAt = now.Add(within(10 * time.Minute))
			}
			ev = must(t)(DecideUsage(p.l, c, now))
		case "reserve":
			c := Reserve{ReservationID: newID("r"), Amount: micro(40).Add(d("0.000001"))}
			if rng.IntN(2) == 0 {
				c.TTL = time.Minute + within(30*time.Minute)
			}
			ev = must(t)(DecideReserve(p.l, c, now))
			if _, refused := ev[len(ev)-1].(ReservationRejected); refused {
				p.counts["reserve refused"]++
			}
		case "capture":
			id, ok := openHold()
			if !ok {
				continue
			}
			held := p.l.Reservations[id].Amount
			c := Capture{ReservationID: id}
			over := false
			switch rng.IntN(4) {
			case 0: // all
			case 1:
				c.Amount = &held
			case 2:
				a := decimal.New(rng.Int64N(held.Shift(6).IntPart()+1), -6)
				c.Amount = &a
			case 3:
				a := held.Add(micro(5)).Add(d("0.000001"))
				c.Amount = &a
				over = true
			}
			ev, err = DecideCapture(p.l, c, now)
			if over {
				if !errors.Is(err, ErrCaptureExceedsHold) {
					t.Fatalf("step %d: capture %s of %s held: err = %v", step, c.Amount, held, err)
				}
				p.counts["capture refused"]++
				continue
			}
			must(t)(ev, err)
		case "release":
			id, ok := openHold()
			if !ok {
				continue
			}
			ev = must(t)(DecideRelease(p.l, id, ReleaseReleased, now))
		case "adjust":
			a := micro(30).Add(d("0.000001"))
			if rng.IntN(2) == 0 {
				a = a.Neg()
			}
			ev = must(t)(DecideAdjust(p.l, Adjust{AdjustmentID: newID("a"), Amount: a, Reason: "random"}, now))
		case "expiries":
			ev = DecideDue(p.l, now)
		case "overdraft":
			limit := decimal.Zero
			if rng.IntN(2) == 0 {
				limit = micro(20)
			}
			ev = must(t)(DecideConfigureLine(p.l, ConfigureLine{OverdraftLimit: limit}))
		case "autoreload":
			c := ConfigureAutoReload{Enabled: rng.IntN(4) != 0, Threshold: micro(50), Amount: micro(50).Add(d("0.000001"))}
			ev = must(t)(DecideConfigureAutoReload(p.l, c))
		}
		p.counts["op "+op]++
		p.decided(ev)
	}

	p.replayThroughJSON()
	for _, need := range []string{
		"event CreditsGranted", "event UsageDebited", "event DebitRejected insufficient_credits",
		"event DebitRejected occurred_in_future", "event CreditsReserved", "event ReservationCaptured",
		"event ReservationReleased released", "event ReservationReleased expired", "event CreditsAdjusted",
		"event GrantExpired", "event CreditLineConfigured", "event AutoReloadConfigured", "auto-reload",
		"reserve refused", "capture refused", "spendable below zero explained", "late usage",
		"event ReservationRejected", "held credits expired on release", "auto-reload before the debit",
	} {
		if p.counts[need] == 0 {
			t.Errorf("the random run never produced %q; widen it", need)
		}
	}
	t.Logf("counts: %v", p.counts)
}

type propertyRun struct {
	t      *testing.T
	l      *Line
	now    time.Time
	step   int
	log    []loggedEvent
	counts map[string]int
	// armed models the once-per-crossing rule independently of the line: a
	// reload may fire only if available has been at or above the threshold
	// (or the setting changed) since the last reload.
	armed bool
}

// loggedEvent is an event and the instant it was decided at, which a replay
// observes as the writer did.
type loggedEvent struct {
	at time.Time
	e  Event
}

func (p *propertyRun) fatalf(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf("step %d at %s: "+format, append([]any{p.step, p.now.Format(time.RFC3339)}, args...)...)
}

// decided checks and applies the events of one decision.
func (p *propertyRun) decided(ev []Event) {
	p.t.Helper()
	l, now := p.l, p.now
	// Arming is judged at the start of every write too: free credits grow
	// with time as grants become effective.
	if l.AutoReload.Enabled && l.Free(now).GreaterThanOrEqual(l.AutoReload.Threshold) {
		p.armed = true
	}
	// Would the rule want a reload before this decision's debit (it could
	// not be paid otherwise) or after it (it crosses the threshold)?
	wantReload := ""
	if len(ev) > 0 {
		var amount decimal.Decimal
		trigger := ""
		for _, e := range ev {
			switch e := e.(type) {
			case UsageDebited:
				amount, trigger = e.Amount, "usage:"+e.UsageID
			case DebitRejected:
				amount, trigger = e.Amount, "usage:"+e.UsageID
			case CreditsReserved:
				amount, trigger = e.Amount, "reservation:"+e.ReservationID
			case ReservationRejected:
				amount, trigger = e.Amount, "reservation:"+e.ReservationID
			}
		}
		if r, ok := ev[len(ev)-1].(DebitRejected); ok && r.Reason == RejectOccurredInFuture {
			trigger = ""
		}
		ar := l.AutoReload
		armed := trigger != "" && ar.Enabled && ar.Amount.IsPositive() && p.armed
		switch {
		case armed && amount.IsPositive() && amount.GreaterThan(l.Spendable(now)):
			wantReload = "auto_reload:" + trigger
		case armed && amount.IsPositive() && l.Free(now).Sub(amount).LessThan(ar.Threshold):
			if _, rejected := ev[len(ev)-1].(DebitRejected); !rejected {
				wantReload = "auto_reload:" + trigger
			}
		}
	}
	gotReload := ""
	for i, e := range ev {
		before := l.Clone()
		s0, b0 := l.Spendable(now), l.Balance()
		spendDelta, balanceDelta := decimal.Zero, decimal.Zero
		explainsDebt := false
		name := string(e.EventType())
		switch e := e.(type) {
		case CreditsGranted:
			balanceDelta = e.Amount
			if (GrantBalance{EffectiveAt: e.EffectiveAt, ExpiresAt: e.ExpiresAt}).ActiveAt(now) {
				spendDelta = e.Amount
			}
			if e.Source == SourceAutoReload {
				p.counts["auto-reload"]++
				if i == 0 {
					p.counts["auto-reload before the debit"]++
				}
				if !p.armed {
					p.fatalf("auto-reload %s fired twice in one crossing", e.GrantID)
				}
				if !strings.HasPrefix(e.GrantID, "auto_reload:") || e.Trigger != strings.TrimPrefix(e.GrantID, "auto_reload:") {
					p.fatalf("auto-reload grant %s has trigger %s", e.GrantID, e.Trigger)
				}
				gotReload = e.GrantID
				p.armed = false
			}
		case UsageDebited:
			if e.Amount.IsPositive() && e.Amount.GreaterThan(s0) {
				p.fatalf("usage %s debited %s with only %s spendable", e.UsageID, e.Amount, s0)
			}
			if e.OccurredAt.Before(now) {
				p.counts["late usage"]++
			}
			p.checkBurns(before, e.Amount, e.Burned)
			spendDelta, balanceDelta = e.Amount.Neg(), e.Amount.Neg()
		case DebitRejected:
			name += " " + e.Reason
			switch e.Reason {
			case RejectInsufficientCredits:
				if !e.Amount.GreaterThan(s0) {
					p.fatalf("usage %s of %s rejected with %s spendable", e.UsageID, e.Amount, s0)
				}
			case RejectOccurredInFuture:
				if !e.OccurredAt.After(now.Add(FutureSkewMax)) {
					p.fatalf("usage %s at %s rejected as future", e.UsageID, e.OccurredAt)
				}
			default:
				p.fatalf("unknown rejection reason %q", e.Reason)
			}
		case CreditsReserved:
			if e.Amount.GreaterThan(s0) {
				p.fatalf("hold %s of %s with only %s spendable", e.ReservationID, e.Amount, s0)
			}
			p.checkBurns(before, e.Amount, slices.DeleteFunc(slices.Clone(e.Pinned), func(b Burn) bool { return b.GrantID == "" }))
			spendDelta = e.Amount.Neg()
		case ReservationRejected:
			if !e.Amount.GreaterThan(s0) {
				p.fatalf("hold %s of %s refused with %s spendable", e.ReservationID, e.Amount, s0)
			}
		case ReservationCaptured:
			h := before.Reservations[e.ReservationID]
			if !e.Amount.Add(e.Released).Equal(h.Amount) || e.Released.IsNegative() {
				p.fatalf("capture %s of %s + released %s != held %s", e.ReservationID, e.Amount, e.Released, h.Amount)
			}
			// The capture spends the hold's pins in order; what it gives
			// back to a grant no longer active does not become spendable.
			burns, rest := spendPins(h.Pinned, e.Amount)
			if err := sameValue(e.Burned, burns); err != nil && len(h.Pinned) > 0 {
				p.fatalf("capture %s burns %s, want the pins %s: %v", e.ReservationID, fmtBurns(e.Burned), fmtBurns(burns), err)
			}
			spendDelta, balanceDelta = e.Released.Sub(inactive(before, rest, now)), e.Amount.Neg()
		case ReservationReleased:
			name += " " + string(e.Reason)
			h := before.Reservations[e.ReservationID]
			if !h.Amount.Equal(e.Amount) {
				p.fatalf("release %s of %s, held %s", e.ReservationID, e.Amount, h.Amount)
			}
			if e.Reason == ReleaseExpired && now.Before(h.ExpiresAt) {
				p.fatalf("hold %s released as expired before its ttl", e.ReservationID)
			}
			spendDelta = e.Amount.Sub(inactive(before, h.Pinned, now))
		case CreditsAdjusted:
			fromGrants := decimal.Zero
			if e.Amount.IsNegative() {
				free := before.Unallocated.Sub(before.heldUnallocated())
				fromGrants = decimal.Max(e.Amount.Neg().Sub(decimal.Max(free, decimal.Zero)), decimal.Zero)
				explainsDebt = true
			}
			p.checkBurns(before, fromGrants, e.Burned)
			spendDelta, balanceDelta = e.Amount, e.Amount
		case GrantExpired:
			i := slices.IndexFunc(before.Grants, func(g GrantBalance) bool { return g.GrantID == e.GrantID })
			if i < 0 {
				p.fatalf("expiry of grant %s the line does not hold", e.GrantID)
			}
			g := before.Grants[i]
			// At the expiry the whole unpinned remainder goes; credits a
			// hold gives back later go as they come back.
			whole := e.Trigger == ""
			if (whole && !g.Unpinned().Equal(e.Amount)) || e.Amount.GreaterThan(g.Unpinned()) || !g.ExpiredAt(now) {
				p.fatalf("grant %s expired %s of %s unpinned, expired %v", e.GrantID, e.Amount, g.Unpinned(), g.ExpiredAt(now))
			}
			if !whole {
				p.counts["held credits expired on release"]++
			}
			balanceDelta = e.Amount.Neg()
		case CreditLineConfigured:
			spendDelta = e.OverdraftLimit.Sub(before.OverdraftLimit)
			explainsDebt = spendDelta.IsNegative()
		case AutoReloadConfigured:
		default:
			p.fatalf("unexpected event %T", e)
		}
		p.counts["event "+name]++

		apply(p.t, l, e)
		p.log = append(p.log, loggedEvent{now, e})
		// The limit check's map of which event moves which total
		// (moveTotals) is what applying the event does.
		want := predictedTotals(before, e)
		for k, got := range totalsOf(l) {
			if !got.Equal(want[k]) {
				p.fatalf("%T moved %s %s -> %s; the limit check counts %s", e, totalNames[k], totalsOf(before)[k], got, want[k])
			}
		}

		if l.Used.LessThan(before.Used) {
			p.fatalf("used went down from %s to %s", before.Used, l.Used)
		}
		s1, b1 := l.Spendable(now), l.Balance()
		if !s1.Equal(s0.Add(spendDelta)) {
			p.fatalf("%T moved spendable %s -> %s, want a change of %s", e, s0, s1, spendDelta)
		}
		if !b1.Equal(b0.Add(balanceDelta)) {
			p.fatalf("%T moved balance %s -> %s, want a change of %s", e, b0, b1, balanceDelta)
		}
		if !s0.IsNegative() && s1.IsNegative() {
			if !explainsDebt {
				p.fatalf("%T took spendable from %s to %s", e, s0, s1)
			}
			p.counts["spendable below zero explained"]++
		}
		if ac, ok := e.(AutoReloadConfigured); ok {
			p.armed = ac.Enabled
		}
		if l.AutoReload.Enabled && l.Free(now).GreaterThanOrEqual(l.AutoReload.Threshold) {
			p.armed = true
		}
	}
	if gotReload != wantReload {
		p.fatalf("auto-reload = %q, want %q (events %+v)", gotReload, wantReload, ev)
	}
}

// inactive sums the parts given back to grants of before that cannot pay
// at now (expired or voided).
func inactive(before *Line, parts []Burn, now time.Time) decimal.Decimal {
	sum := decimal.Zero
	for _, b := range parts {
		if g, ok := before.Grant(b.GrantID); ok && b.GrantID != "" && !g.ActiveAt(now) {
			sum = sum.Add(b.Amount)
		}
	}
	return sum
}

// checkBurns asserts burns take amount from the grants of before that are
// active now, in burn-down order, each used up before the next is touched.
func (p *propertyRun) checkBurns(before *Line, amount decimal.Decimal, burns []Burn) {
	p.t.Helper()
	left := amount
	j := 0
	for _, g := range before.Grants {
		if !left.IsPositive() {
			break
		}
		if !g.ActiveAt(p.now) || !g.Unpinned().IsPositive() {
			continue
		}
		take := decimal.Min(left, g.Unpinned())
		if j >= len(burns) || burns[j].GrantID != g.GrantID || !burns[j].Amount.Equal(take) {
			p.fatalf("burns %s for %s, want %s:%s next", fmtBurns(burns), amount, g.GrantID, take)
		}
		j++
		left = left.Sub(take)
	}
	if j != len(burns) {
		p.fatalf("burns %s for %s take more grants than needed", fmtBurns(burns), amount)
	}
}

// replayThroughJSON rebuilds the line from its log, each event encoded and
// decoded, and compares.
func (p *propertyRun) replayThroughJSON() {
	p.t.Helper()
	replayed := NewLine(DefaultCreditType)
	for i, le := range p.log {
		e := le.e
		replayed.Observe(le.at)
		b, err := json.Marshal(Envelope{TenantID: 1, CreditType: DefaultCreditType, Event: e})
		if err != nil {
			p.t.Fatalf("event %d: %v", i, err)
		}
		var env Envelope
		if err := json.Unmarshal(b, &env); err != nil {
			p.t.Fatalf("event %d: %v", i, err)
		}
		if err := sameValue(env.Event, e); err != nil {
			p.t.Fatalf("event %d (%T) changed in JSON: %v", i, e, err)
		}
		apply(p.t, replayed, env.Event)
	}
	if got, want := snap(replayed), snap(p.l); got != want {
		p.t.Fatalf("replay gives\n%+v\nwant\n%+v", got, want)
	}
	if replayed.ReloadArmed != p.l.ReloadArmed {
		p.t.Fatalf("replay armed %v, want %v", replayed.ReloadArmed, p.l.ReloadArmed)
	}
}
