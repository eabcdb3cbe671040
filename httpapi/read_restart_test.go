package httpapi_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/stack"
)

// checkAllReads checks every read of m's tenant against its model; pct is
// the expected change of stats from 2026-03-10 to today.
func checkAllReads(t *testing.T, s *stack.Stack, m *tenantModel, pct string) {
	t.Helper()
	checkBalance(t, read(t, s, "/v1/balance", m.key), m.id, m.currency, m.snapshot())
	ledger := read(t, s, "/v1/ledger?limit=100", m.key)
	want := newestFirst(m.ledger, nil)
	wantInt(t, ledger, "total", int64(len(want)))
	entries := list(t, ledger["entries"], "entries")
	if len(entries) != len(want) {
		t.Fatalf("%d ledger entries, want %d", len(entries), len(want))
	}
	for i := range want {
		checkLedgerEntry(t, entries[i], want[i])
	}
	from, to := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), m.now().Truncate(24*time.Hour)
	wide := "?from=2026-01-01&to=" + to.Format(time.DateOnly)
	checkUsage(t, s, m.key, "/v1/usage"+wide+"&granularity=day&group_by=credit_type,module", m.usage,
		usageQuery{from: from, to: to, granularity: "day", groupBy: []string{"credit_type", "module"}})
	checkStats(t, s, m.key, "?from=2026-03-10&to="+to.Format(time.DateOnly), m.usage, time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), to, pct)
	checkSummary(t, read(t, s, "/v1/summary", m.key), m, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), m.now())
}

// TestReadRestart checks that the read models answer the same after a
// restart, without counting anything twice, and keep up with writes made
// after it.
func TestReadRestart(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(readEpoch)
	m := newTenant(t, s, "restart", "USD")
	m.grant("g1", "", "300", nil)
	m.grant("g-exp", "", "40", map[string]any{"expires_at": readEpoch.Add(time.Hour).Format(time.RFC3339)})
	m.grant("g2", "gpu", "100", nil)
	s.Clock.Advance(time.Minute)
	m.use(
		usageEv{id: "u1", at: time.Date(2026, 3, 5, 9, 0, 0, 0, time.UTC), amount: "8", quantity: "1", module: "search"},
		usageEv{id: "u2", at: time.Date(2026, 3, 12, 9, 0, 0, 0, time.UTC), amount: "12.5", quantity: "2", module: "chat", failed: true},
	)
	m.use(usageEv{id: "u3", creditType: "gpu", amount: "4", module: "render"})
	m.reserve(usageEv{id: "captured", creditType: "gpu", amount: "10", module: "render"})
	s.Clock.Advance(time.Minute)
	m.capture("captured", "6")
	m.adjust("a1", "gpu", "2.5", "goodwill", "")
	m.useRejected(usageEv{id: "no", creditType: "gpu", amount: "1000"}, "insufficient_credits")
	// g-exp paid for u1 and u2 (it expires first): 40 − 8 − 12.5 is left.
	m.expire("default", "g-exp", "19.5", readEpoch.Add(time.Hour+time.Minute))
	// Held after the expiry: a hold made before it would have pinned what
	// was left of g-exp, and kept it from expiring.
	m.reserve(usageEv{id: "open", amount: "30", module: "batch"})
	s.Sync()
	// By hand: stats from 2026-03-10 to today spend 12.5 + 4 + 6 against
	// the 8 of 2026-03-05 in the six days before: up 181.25 %.
	pct := "181.3"

	t.Run("before the restart every read matches the writes", func(t *testing.T) {
		checkAllReads(t, s, m, pct)
	})
	paths := []string{"/v1/balance", "/v1/ledger?limit=100", "/v1/usage?from=2026-01-01&granularity=day&group_by=module,success",
		"/v1/stats?from=2026-03-01", "/v1/summary"}
	before := map[string][]byte{}
	for _, p := range paths {
		before[p] = fetch(t, s, http.MethodGet, p, m.key, nil).Body
	}

	s = s.Restart()
	m.s = s
	s.Sync()

	t.Run("after a restart every read matches the writes, none counted twice", func(t *testing.T) {
		checkAllReads(t, s, m, pct)
	})

	t.Run("after a restart every read answers exactly as before", func(t *testing.T) {
		for _, p := range paths {
			after := fetch(t, s, http.MethodGet, p, m.key, nil).Body
			if !bytes.Equal(before[p], after) {
				t.Errorf("GET %s changed across the restart:\nbefore %s\nafter  %s", p, before[p], after)
			}
		}
	})

	s.Clock.Advance(time.Minute)
	m.grant("g3", "gpu", "25", nil)
	m.use(usageEv{id: "u4", amount: "7", quantity: "3", module: "search"})
	m.capture("open", "11.25")
	s.Sync()
	// By hand: 7 and 11.25 more make 40.75 against 8: up 409.375 %.
	pct = "409.4"

	t.Run("writes after the restart are reflected", func(t *testing.T) {
		checkAllReads(t, s, m, pct)
		// By hand: default is 340 − 8 − 12.5 − 19.5 − 7 − 11.25.
		total := obj(t, obj(t, read(t, s, "/v1/balance?credit_type=default", m.key), "b")["total"], "total")
		wantDec(t, total, "balance", dec("281.75"))
		wantDec(t, total, "reserved", dec("0"))
	})

	s = s.Restart()
	m.s = s
	s.Sync()

	t.Run("a second restart right after the last write changes nothing", func(t *testing.T) {
		checkAllReads(t, s, m, pct)
	})
}
