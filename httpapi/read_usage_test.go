package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/stack"
)

// TestReadUsageReport checks GET /v1/usage: totals, every granularity over
// usage spread across days, months and years, grouping by every dimension
// and by pairs, filtering on every dimension, captures counted as usage,
// and refusals of bad parameters.
func TestReadUsageReport(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(readEpoch)
	m := newTenant(t, s, "usage", "USD")
	m.grant("g-default", "", "100000", nil)
	m.grant("g-gpu", "gpu", "100000", nil)
	day := func(y int, mo time.Month, d, h, min int) time.Time {
		return time.Date(y, mo, d, h, min, 0, 0, time.UTC)
	}
	events := []usageEv{
		{id: "e1", at: day(2025, 12, 31, 23, 30), amount: "1.5", quantity: "3", module: "search", service: "api", user: "u1", workflow: "w1", run: "r1", endpoint: "/q", custom: map[string]string{"region": "eu", "tier": "gold"}},
		{id: "e2", at: day(2026, 1, 1, 0, 10), amount: "2", quantity: "1", module: "search", service: "api", user: "u2", workflow: "w1", run: "r2", endpoint: "/q", failed: true, custom: map[string]string{"region": "us"}},
		{id: "e3", at: day(2026, 1, 20, 9, 0), creditType: "gpu", amount: "10.25", quantity: "2", module: "render", service: "batch", user: "u1", workflow: "w2", run: "r3", endpoint: "/render", custom: map[string]string{"region": "eu"}},
		{id: "e4", at: day(2026, 2, 3, 15, 0), amount: "4", module: "chat", service: "api", user: "u3", endpoint: "/chat"},
		{id: "e5", at: time.Date(2026, 2, 28, 23, 59, 59, 0, time.UTC), amount: "0.75", quantity: "5", module: "search", service: "api", user: "u1", workflow: "w1", run: "r4", endpoint: "/q", custom: map[string]string{"region": "eu", "tier": "silver"}},
		{id: "e6", at: day(2026, 3, 1, 0, 0), creditType: "gpu", amount: "7", quantity: "1", module: "render", service: "batch", user: "u2", workflow: "w2", run: "r5", endpoint: "/render", failed: true, custom: map[string]string{"tier": "gold"}},
		{id: "e7", at: day(2026, 3, 14, 8, 0), amount: "3.5", quantity: "2", module: "chat", service: "api", user: "u1", workflow: "w3", run: "r6", endpoint: "/chat", custom: map[string]string{"region": "us"}},
		{id: "e8", at: day(2026, 3, 15, 10, 0), amount: "0", module: "search", service: "api", user: "u2", endpoint: "/q"},
		{id: "e9", at: day(2026, 3, 15, 11, 0), creditType: "gpu", amount: "12", quantity: "4", module: "chat", service: "batch", user: "u3", workflow: "w3", run: "r7", endpoint: "/chat"},
		{id: "e10", at: day(2026, 3, 2, 6, 0), amount: "1.25", quantity: "1", module: "search", service: "api", user: "u3", workflow: "w1", run: "r8", endpoint: "/q", failed: true, custom: map[string]string{"region": "eu"}},
	}
	m.use(events[:5]...)
	m.use(events[5:]...)
	// A captured hold counts as usage on the day of the capture, with the
	// hold's dimensions; a released one does not count.
	s.Clock.Advance(time.Minute)
	m.reserve(usageEv{id: "hold-1", creditType: "gpu", amount: "20", quantity: "6", module: "render", service: "batch", user: "u3", workflow: "w4", run: "r9", endpoint: "/render", custom: map[string]string{"region": "eu"}})
	m.reserve(usageEv{id: "hold-2", amount: "5", module: "search"})
	s.Clock.Advance(time.Minute)
	m.capture("hold-1", "8.5")
	m.release("hold-2")
	// Refused usage is not usage.
	m.useRejected(usageEv{id: "too-much", amount: "999999", module: "search"}, "insufficient_credits")
	m.useRejected(usageEv{id: "future", amount: "1", module: "search", at: m.now().Add(time.Hour)}, "occurred_in_future")
	s.Sync()
	recs := m.usage
	if len(recs) != 11 {
		t.Fatalf("model has %d usage records", len(recs))
	}

	first, today := day(2025, 12, 1, 0, 0), day(2026, 3, 15, 0, 0)
	wide := "?from=2025-12-01&to=2026-03-15"
	all := usageQuery{from: first, to: today}

	t.Run("totals sum credits, requests, successes, failures and quantity over the range", func(t *testing.T) {
		got := checkUsage(t, s, m.key, "/v1/usage"+wide, recs, all)
		// By hand: 1.5+2+10.25+4+0.75+7+3.5+0+12+1.25 and the capture 8.5.
		totals := obj(t, got["totals"], "totals")
		checkTotals(t, totals, usageAgg{credits: dec("50.75"), quantity: dec("25"), requests: 11, successful: 8, failed: 3}, "totals")
		if rows := list(t, got["rows"], "rows"); len(rows) != 1 {
			t.Errorf("%d rows without granularity or groups, want 1", len(rows))
		}
	})

	t.Run("without from and to the range is the 30 days ending today", func(t *testing.T) {
		checkUsage(t, s, m.key, "/v1/usage", recs, usageQuery{from: day(2026, 2, 14, 0, 0), to: today})
	})

	t.Run("with only to the range is the 30 days ending that day", func(t *testing.T) {
		checkUsage(t, s, m.key, "/v1/usage?to=2026-03-01&granularity=day", recs,
			usageQuery{from: day(2026, 1, 31, 0, 0), to: day(2026, 3, 1, 0, 0), granularity: "day"})
	})

	t.Run("an instant with an offset counts from the UTC day it falls on", func(t *testing.T) {
		got := read(t, s, "/v1/usage"+q("from", "2026-03-15T01:00:00+02:00", "to", "2026-03-15"), m.key)
		// 2026-03-14T23:00Z: the range is the whole of 2026-03-14 and -15.
		totals, _ := expectUsage(recs, usageQuery{from: day(2026, 3, 14, 0, 0), to: today})
		checkTotals(t, obj(t, got["totals"], "totals"), totals, "totals")
		wantTime(t, got, "from", day(2026, 3, 14, 23, 0))
		// By hand: e7, e8, e9 and the capture.
		if totals.requests != 4 {
			t.Fatalf("model: %d requests", totals.requests)
		}
	})

	t.Run("granularity none, day, month and year split the totals by UTC period", func(t *testing.T) {
		for _, g := range []string{"none", "day", "month", "year"} {
			uq := all
			uq.granularity = g
			got := checkUsage(t, s, m.key, "/v1/usage"+wide+"&granularity="+g, recs, uq)
			rows := list(t, got["rows"], "rows")
			want := map[string]int{"none": 1, "day": 9, "month": 4, "year": 2}[g]
			if len(rows) != want {
				t.Errorf("granularity %s: %d rows, want %d", g, len(rows), want)
			}
		}
	})

	t.Run("late usage lands on the day it occurred and a capture on the day it was captured", func(t *testing.T) {
		uq := usageQuery{from: today, to: today, granularity: "day", groupBy: []string{"module"}}
		got := checkUsage(t, s, m.key, "/v1/usage?from=2026-03-15&to=2026-03-15&granularity=day&group_by=module", recs, uq)
		// By hand: e8 (search, 0), e9 (chat, 12) and the capture (render, 8.5).
		checkTotals(t, obj(t, got["totals"], "totals"), usageAgg{credits: dec("20.5"), quantity: dec("10"), requests: 3, successful: 3}, "totals")
		got = checkUsage(t, s, m.key, "/v1/usage?from=2025-12-31&to=2025-12-31", recs, usageQuery{from: day(2025, 12, 31, 0, 0), to: day(2025, 12, 31, 0, 0)})
		checkTotals(t, obj(t, got["totals"], "totals"), usageAgg{credits: dec("1.5"), quantity: dec("3"), requests: 1, successful: 1}, "totals")
	})

	dims := []string{"credit_type", "module", "service", "user_id", "workflow_id", "workflow_run_id", "endpoint", "success", "custom.region", "custom.tier"}

	t.Run("group_by splits by each dimension", func(t *testing.T) {
		for _, d := range dims {
			t.Run("grouping by "+d+" sums each of its values", func(t *testing.T) {
				uq := all
				uq.groupBy = []string{d}
				checkUsage(t, s, m.key, "/v1/usage"+wide+"&group_by="+d, recs, uq)
			})
		}
	})

	t.Run("group_by splits by two dimensions at once, with or without periods", func(t *testing.T) {
		for _, c := range []struct {
			groupBy     []string
			granularity string
		}{
			{[]string{"module", "success"}, ""},
			{[]string{"credit_type", "custom.region"}, ""},
			{[]string{"user_id", "endpoint"}, "month"},
			{[]string{"custom.tier", "service"}, "year"},
			{[]string{"workflow_id", "workflow_run_id"}, "day"},
		} {
			uq := all
			uq.groupBy, uq.granularity = c.groupBy, c.granularity
			path := "/v1/usage" + wide + "&group_by=" + strings.Join(c.groupBy, ",")
			if c.granularity != "" {
				path += "&granularity=" + c.granularity
			}
			checkUsage(t, s, m.key, path, recs, uq)
		}
	})

	t.Run("a filter on each dimension keeps only matching usage", func(t *testing.T) {
		for _, f := range []struct{ name, value string }{
			{"credit_type", "gpu"}, {"credit_type", "default"}, {"module", "search"}, {"service", "batch"}, {"user_id", "u1"},
			{"workflow_id", "w1"}, {"workflow_run_id", "r4"}, {"endpoint", "/q"}, {"success", "false"}, {"success", "true"},
			{"custom.region", "eu"}, {"custom.tier", "gold"}, {"module", "nothing"},
		} {
			t.Run("filtering on "+f.name+"="+f.value+" keeps only that usage", func(t *testing.T) {
				// Alone, grouped by another dimension and grouped by itself.
				uq := all
				uq.filters = map[string][]string{f.name: {f.value}}
				checkUsage(t, s, m.key, "/v1/usage"+wide+"&"+f.name+"="+f.value, recs, uq)
				uq.groupBy = []string{"module"}
				checkUsage(t, s, m.key, "/v1/usage"+wide+"&group_by=module&"+f.name+"="+f.value, recs, uq)
				uq.groupBy = []string{f.name}
				uq.granularity = "month"
				checkUsage(t, s, m.key, "/v1/usage"+wide+"&granularity=month&group_by="+f.name+"&"+f.name+"="+f.value, recs, uq)
			})
		}
	})

	t.Run("a repeated filter keeps usage matching any of its values", func(t *testing.T) {
		uq := all
		uq.filters = map[string][]string{"module": {"search", "chat"}}
		uq.groupBy = []string{"module"}
		checkUsage(t, s, m.key, "/v1/usage"+wide+"&group_by=module&module=search&module=chat", recs, uq)
		uq.groupBy = []string{"success"}
		checkUsage(t, s, m.key, "/v1/usage"+wide+"&group_by=success&module=search&module=chat", recs, uq)
		uq.groupBy = nil
		uq.filters = map[string][]string{"user_id": {"u1", "u3"}}
		checkUsage(t, s, m.key, "/v1/usage"+wide+"&user_id=u1&user_id=u3", recs, uq)
		uq.filters = map[string][]string{"custom.tier": {"gold", "silver"}}
		uq.groupBy = []string{"custom.tier"}
		checkUsage(t, s, m.key, "/v1/usage"+wide+"&group_by=custom.tier&custom.tier=gold&custom.tier=silver", recs, uq)
	})

	t.Run("filters on several dimensions all apply", func(t *testing.T) {
		uq := all
		uq.filters = map[string][]string{"module": {"search"}, "success": {"true"}, "custom.region": {"eu"}}
		uq.granularity = "month"
		got := checkUsage(t, s, m.key, "/v1/usage"+wide+"&granularity=month&module=search&success=true&custom.region=eu", recs, uq)
		// By hand: e1 (2025-12) and e5 (2026-02).
		checkTotals(t, obj(t, got["totals"], "totals"), usageAgg{credits: dec("2.25"), quantity: dec("8"), requests: 2, successful: 2}, "totals")
	})

	t.Run("the captured hold is counted with its dimensions", func(t *testing.T) {
		uq := all
		uq.filters = map[string][]string{"workflow_id": {"w4"}}
		uq.groupBy = []string{"workflow_run_id", "custom.region"}
		got := checkUsage(t, s, m.key, "/v1/usage"+wide+"&workflow_id=w4&group_by=workflow_run_id,custom.region", recs, uq)
		checkTotals(t, obj(t, got["totals"], "totals"), usageAgg{credits: dec("8.5"), quantity: dec("6"), requests: 1, successful: 1}, "totals")
	})

	t.Run("min_position is not taken for a dimension filter", func(t *testing.T) {
		checkUsage(t, s, m.key, fmt.Sprintf("/v1/usage%s&min_position=%d", wide, m.lastPos), recs, all)
	})

	t.Run("an unknown group_by dimension is a 400 naming query.group_by", func(t *testing.T) {
		for _, g := range []string{"colour", "module,colour", "custom.", "custom.a b", "module,module", "credit_type,module,service,user_id,endpoint"} {
			badRead(t, s, "/v1/usage"+q("group_by", g), m.key, "query.group_by")
		}
	})

	t.Run("an unknown parameter is a 400 naming it", func(t *testing.T) {
		badRead(t, s, "/v1/usage?colour=red", m.key, "query.colour")
		badRead(t, s, "/v1/usage?module=search&limit=10", m.key, "query.limit")
	})

	t.Run("a bad granularity or success value is a 400 naming it", func(t *testing.T) {
		badRead(t, s, "/v1/usage?granularity=week", m.key, "query.granularity")
		badRead(t, s, "/v1/usage?granularity=DAY", m.key, "query.granularity")
		badRead(t, s, "/v1/usage?success=maybe", m.key, "query.success")
	})

	t.Run("a range of at most 1830 days is allowed and a longer one is a 400", func(t *testing.T) {
		to := day(2026, 3, 15, 0, 0)
		longest := to.AddDate(0, 0, -1829)
		uq := usageQuery{from: longest, to: to}
		checkUsage(t, s, m.key, "/v1/usage"+q("from", longest.Format(time.DateOnly), "to", to.Format(time.DateOnly)), recs, uq)
		tooLong := to.AddDate(0, 0, -1830)
		badRead(t, s, "/v1/usage"+q("from", tooLong.Format(time.DateOnly), "to", to.Format(time.DateOnly)), m.key, "query.to")
	})

	t.Run("from after to is a 400", func(t *testing.T) {
		badRead(t, s, "/v1/usage?from=2026-03-15&to=2026-03-14", m.key, "query.from")
		badRead(t, s, "/v1/usage?from=2026-04-01", m.key, "query.from")
	})

	t.Run("malformed from and to are 400s naming them", func(t *testing.T) {
		fetch(t, s, http.MethodGet, "/v1/usage?from=March&to=2026-02-30", m.key, nil).problem(t, http.StatusBadRequest, "query.from", "query.to")
	})
}
