package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/stack"
)

// TestReadTenantIsolation checks that every read answers for the key's
// tenant only.
func TestReadTenantIsolation(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(readEpoch)
	a := newTenant(t, s, "alpha", "EUR")
	b := newTenant(t, s, "beta", "JPY")
	a.grant("ga", "", "1000", nil)
	a.grant("ga-gpu", "gpu", "50", nil)
	s.Clock.Advance(time.Minute)
	a.use(
		usageEv{id: "shared-id", amount: "12", quantity: "2", module: "search", user: "u1", custom: map[string]string{"region": "eu"}},
		usageEv{id: "a2", at: time.Date(2026, 3, 10, 8, 0, 0, 0, time.UTC), amount: "3", module: "chat", failed: true},
	)
	a.use(usageEv{id: "a3", creditType: "gpu", amount: "5", module: "render"})
	a.reserve(usageEv{id: "hold", amount: "40", module: "batch"})
	a.adjust("adj", "gpu", "-1", "fix", "")
	a.useRejected(usageEv{id: "a-no", amount: "100000"}, "insufficient_credits")
	s.Sync()
	month := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

	empty := func(t *testing.T, m *tenantModel) {
		t.Helper()
		for _, query := range []string{"", "?credit_type=default", "?credit_type=gpu", "?as_of=2026-03-15"} {
			checkBalance(t, read(t, s, "/v1/balance"+query, m.key), m.id, m.currency, map[string]lineModel{})
		}
		for _, query := range []string{"", "?credit_type=gpu", "?type=debit", "?from=2026-03-01"} {
			got := read(t, s, "/v1/ledger"+query, m.key)
			wantInt(t, got, "total", 0)
			if entries := list(t, got["entries"], "entries"); len(entries) != 0 {
				t.Errorf("ledger%s: %d entries", query, len(entries))
			}
		}
		day := time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)
		from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for _, c := range []struct {
			query string
			uq    usageQuery
		}{
			{"?from=2026-01-01", usageQuery{from: from, to: day}},
			{"?from=2026-01-01&group_by=module", usageQuery{from: from, to: day, groupBy: []string{"module"}}},
			{"?from=2026-01-01&module=search&granularity=day", usageQuery{from: from, to: day, granularity: "day"}},
			{"?from=2026-01-01&custom.region=eu&group_by=user_id", usageQuery{from: from, to: day, groupBy: []string{"user_id"}}},
		} {
			checkUsage(t, s, m.key, "/v1/usage"+c.query, nil, c.uq)
		}
		got := checkStats(t, s, m.key, "?from=2026-03-01", nil, month, day, "")
		wantDec(t, got, "spent", dec("0"))
		wantDec(t, got, "previous_period_spent", dec("0"))
	}

	t.Run("tenant B sees none of A's balances, ledger, usage or stats", func(t *testing.T) {
		empty(t, b)
	})

	t.Run("tenant B's summary is B's own", func(t *testing.T) {
		got := read(t, s, "/v1/summary", b.key)
		checkSummary(t, got, b, month, b.now())
		wantString(t, got, "name", "beta")
		wantString(t, got, "currency", "JPY")
		wantTime(t, got, "last_usage_at", time.Time{})
		wantInt(t, got, "rejected_debits", 0)
	})

	t.Run("tenant A sees all of its own data", func(t *testing.T) {
		checkAllReadsOf(t, s, a, month)
	})

	t.Run("a tenant cannot name another tenant in a read", func(t *testing.T) {
		for _, path := range []string{"/v1/balance", "/v1/ledger", "/v1/stats", "/v1/summary"} {
			badRead(t, s, fmt.Sprintf("%s?tenant_id=%d", path, a.id), b.key, "query.tenant_id")
		}
		badRead(t, s, fmt.Sprintf("/v1/usage?tenant_id=%d", a.id), b.key, "query.tenant_id")
	})

	t.Run("the same ids in B are B's own and leave A unchanged", func(t *testing.T) {
		s.Clock.Advance(time.Minute)
		b.grant("ga", "", "5", nil)
		b.use(usageEv{id: "shared-id", amount: "1.5", module: "search", user: "u1", custom: map[string]string{"region": "eu"}})
		s.Sync()
		checkAllReadsOf(t, s, b, month)
		checkAllReadsOf(t, s, a, month)
	})

	t.Run("every read refuses a missing, unknown, revoked or admin credential", func(t *testing.T) {
		issued := fetch(t, s, http.MethodPost, fmt.Sprintf("/v1/tenants/%d/api-keys", a.id), stack.AdminToken, nil).want(t, http.StatusCreated)
		revoked := issued["api_key"].(string)
		read(t, s, "/v1/balance", revoked)
		fetch(t, s, http.MethodDelete, fmt.Sprintf("/v1/tenants/%d/api-keys/%s", a.id, issued["key_id"]), stack.AdminToken, nil).want(t, http.StatusOK)
		for _, path := range []string{"/v1/balance", "/v1/ledger", "/v1/usage", "/v1/stats", "/v1/summary"} {
			for _, key := range []string{"", "cdk_unknown", revoked, stack.AdminToken} {
				fetch(t, s, http.MethodGet, path, key, nil).problem(t, http.StatusUnauthorized)
			}
		}
	})
}

// checkAllReadsOf checks balance, ledger, usage, stats and summary of m's
// tenant against its model.
func checkAllReadsOf(t *testing.T, s *stack.Stack, m *tenantModel, month time.Time) {
	t.Helper()
	checkBalance(t, read(t, s, "/v1/balance", m.key), m.id, m.currency, m.snapshot())
	ledger := read(t, s, "/v1/ledger", m.key)
	want := newestFirst(m.ledger, nil)
	wantInt(t, ledger, "total", int64(len(want)))
	entries := list(t, ledger["entries"], "entries")
	if len(entries) != len(want) {
		t.Fatalf("%d entries, want %d", len(entries), len(want))
	}
	for i := range want {
		checkLedgerEntry(t, entries[i], want[i])
	}
	day := m.now().Truncate(24 * time.Hour)
	checkUsage(t, s, m.key, "/v1/usage?from=2026-01-01&group_by=module,custom.region", m.usage,
		usageQuery{from: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), to: day, groupBy: []string{"module", "custom.region"}})
	got := read(t, s, "/v1/stats?from=2026-03-01", m.key)
	wantDec(t, got, "spent", expectSpent(m.usage, month, day))
	checkSummary(t, read(t, s, "/v1/summary", m.key), m, month, m.now())
}
