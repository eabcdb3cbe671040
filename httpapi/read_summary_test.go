package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/stack"
)

// checkSummary checks a summary answer against the tenant's model; month
// is the first day of the current UTC month and apiUse when the last
// authenticated request was made.
func checkSummary(t *testing.T, got map[string]any, m *tenantModel, month, apiUse time.Time) {
	t.Helper()
	wantInt(t, got, "tenant_id", m.id)
	wantString(t, got, "name", m.name)
	wantString(t, got, "email", m.email)
	wantString(t, got, "currency", m.currency)
	wantTime(t, got, "created_at", m.created)
	wantTime(t, got, "last_api_use_at", apiUse)
	wantTime(t, got, "last_usage_at", m.lastUsageAt)
	checkBalance(t, obj(t, got["balance"], "balance"), m.id, m.currency, m.snapshot())
	var thisMonth, lifetime usageAgg
	for _, r := range m.usage {
		lifetime.add(r)
		if !r.at.Before(month) {
			thisMonth.add(r)
		}
	}
	checkTotals(t, obj(t, got["usage_this_month"], "usage_this_month"), thisMonth, "usage_this_month")
	checkTotals(t, obj(t, got["lifetime"], "lifetime"), lifetime, "lifetime")
	wantInt(t, got, "rejected_debits", int64(m.rejected))
}

// TestReadSummary checks GET /v1/summary: the tenant's profile, when it
// last used the API, its balance, this month's and lifetime usage and its
// rejected debits.
func TestReadSummary(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(readEpoch)
	m := newTenant(t, s, "summit", "GBP")
	month := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

	s.Clock.Advance(time.Minute)
	m.grant("g1", "", "500", nil)
	m.grant("g2", "gpu", "100", nil)
	s.Clock.Advance(time.Minute)
	m.use(
		usageEv{id: "feb", at: time.Date(2026, 2, 20, 9, 0, 0, 0, time.UTC), amount: "10", quantity: "1", module: "search"},
		usageEv{id: "mar-2", at: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), amount: "20", module: "search", failed: true},
		usageEv{id: "last-day-of-feb", at: time.Date(2026, 2, 28, 23, 59, 59, 999999000, time.UTC), amount: "0.5", module: "search"},
	)
	m.use(usageEv{id: "mar-15", creditType: "gpu", at: readEpoch.Add(-time.Hour), amount: "5.5", quantity: "2", module: "render"})
	s.Clock.Advance(time.Minute)
	m.reserve(usageEv{id: "job", amount: "10", module: "batch"})
	s.Clock.Advance(time.Minute)
	m.capture("job", "3")
	m.adjust("fix", "default", "-1", "correction", "")
	m.useRejected(usageEv{id: "too-much", creditType: "gpu", amount: "1000", module: "render"}, "insufficient_credits")
	m.useRejected(usageEv{id: "from-the-future", amount: "1", at: m.now().Add(10 * time.Minute)}, "occurred_in_future")
	s.Sync()
	s.Clock.Advance(10 * time.Minute)

	t.Run("the summary shows the profile, balance, usage this month and lifetime, and rejected debits", func(t *testing.T) {
		now := m.now()
		got := read(t, s, "/v1/summary", m.key)
		checkSummary(t, got, m, month, now)
		// By hand: this month is 20 + 5.5 + 3 (the capture) in 3 requests,
		// one failed; lifetime adds February's 10 and 0.5.
		checkTotals(t, obj(t, got["usage_this_month"], "usage_this_month"),
			usageAgg{credits: dec("28.5"), quantity: dec("2"), requests: 3, successful: 2, failed: 1}, "usage_this_month")
		checkTotals(t, obj(t, got["lifetime"], "lifetime"),
			usageAgg{credits: dec("39"), quantity: dec("3"), requests: 5, successful: 4, failed: 1}, "lifetime")
		wantInt(t, got, "rejected_debits", 2)
		wantDec(t, obj(t, got["balance"], "balance")["total"].(map[string]any), "balance", dec("560"))
	})

	t.Run("last_api_use_at follows the latest authenticated request", func(t *testing.T) {
		s.Clock.Advance(time.Minute)
		first := m.now()
		read(t, s, "/v1/balance", m.key)
		s.Clock.Advance(time.Minute)
		got := read(t, s, "/v1/summary", m.key)
		wantTime(t, got, "last_api_use_at", first.Add(time.Minute))
		// A request without a valid key does not count as use.
		s.Clock.Advance(time.Minute)
		fetch(t, s, http.MethodGet, "/v1/summary", "cdk_wrong", nil).problem(t, http.StatusUnauthorized)
		checkSummary(t, read(t, s, "/v1/summary", m.key), m, month, m.now())
	})

	t.Run("the summary takes no parameters but min_position", func(t *testing.T) {
		badRead(t, s, "/v1/summary?month=2026-02", m.key, "query.month")
		read(t, s, "/v1/summary?min_position=1", m.key)
	})
}
