package httpapi_test

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/internal/stack"
)

// ranked is one expected entry of a top list.
type ranked struct {
	key      string
	total    decimal.Decimal
	requests int64
	quantity decimal.Decimal
}

// expectTop ranks records of days from..to by one dimension: total
// descending, then key. Usage without the dimension is in no entry.
func expectTop(recs []usageRec, from, to time.Time, dim string) []ranked {
	by := map[string]*ranked{}
	for _, r := range recs {
		if r.day().Before(from) || r.day().After(to) {
			continue
		}
		k := r.dim(dim)
		if k == "" {
			continue
		}
		if by[k] == nil {
			by[k] = &ranked{key: k}
		}
		by[k].total = by[k].total.Add(r.credits)
		by[k].quantity = by[k].quantity.Add(r.quantity)
		by[k].requests++
	}
	var out []ranked
	for _, v := range by {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].total.Cmp(out[j].total); c != 0 {
			return c > 0
		}
		return out[i].key < out[j].key
	})
	if len(out) > 10 {
		out = out[:10]
	}
	return out
}

// expectSpent sums the credits of records on days from..to.
func expectSpent(recs []usageRec, from, to time.Time) decimal.Decimal {
	var total decimal.Decimal
	for _, r := range recs {
		if !r.day().Before(from) && !r.day().After(to) {
			total = total.Add(r.credits)
		}
	}
	return total
}

// checkStats reads /v1/stats for whole days from..to and checks it against
// recs; pct is the expected change in percent, "" for null.
func checkStats(t *testing.T, s *stack.Stack, key, query string, recs []usageRec, from, to time.Time, pct string) map[string]any {
	t.Helper()
	got := read(t, s, "/v1/stats"+query, key)
	if !strings.Contains(query, "T") { // dates: the range is whole days
		wantTime(t, got, "from", from)
		wantTime(t, got, "to", to.Add(24*time.Hour-time.Microsecond))
	}
	days := int(to.Sub(from)/(24*time.Hour)) + 1
	spent := expectSpent(recs, from, to)
	previous := expectSpent(recs, from.AddDate(0, 0, -days), from.AddDate(0, 0, -1))
	wantDec(t, got, "spent", spent)
	wantDec(t, got, "previous_period_spent", previous)
	if pct == "" {
		if v, present := got["previous_period_change_pct"]; !present || v != nil {
			t.Errorf("previous_period_change_pct = %v, want null", v)
		}
	} else {
		wantDec(t, got, "previous_period_change_pct", dec(pct))
	}

	// Daily: every day with spend, ascending, split by module and user;
	// usage without one is in the day's total only (no "" key).
	type daySplit struct {
		total          decimal.Decimal
		module, byUser map[string]decimal.Decimal
	}
	want := map[string]*daySplit{}
	for _, r := range recs {
		if r.day().Before(from) || r.day().After(to) {
			continue
		}
		d := r.day().Format(time.DateOnly)
		if want[d] == nil {
			want[d] = &daySplit{module: map[string]decimal.Decimal{}, byUser: map[string]decimal.Decimal{}}
		}
		want[d].total = want[d].total.Add(r.credits)
		want[d].module[r.module] = want[d].module[r.module].Add(r.credits)
		want[d].byUser[r.user] = want[d].byUser[r.user].Add(r.credits)
	}
	var wantDays []string
	for d, split := range want {
		if !split.total.IsZero() {
			wantDays = append(wantDays, d)
		}
	}
	sort.Strings(wantDays)
	daily := list(t, got["daily"], "daily")
	if len(daily) != len(wantDays) {
		t.Fatalf("daily has %d days, want %v: %v", len(daily), wantDays, got["daily"])
	}
	for i, d := range wantDays {
		wantString(t, daily[i], "date", d)
		wantDec(t, daily[i], "total", want[d].total)
		for name, split := range map[string]map[string]decimal.Decimal{"by_module": want[d].module, "by_user": want[d].byUser} {
			gotSplit := obj(t, daily[i][name], d+" "+name)
			nonZero := 0
			for k, v := range split {
				if v.IsZero() || k == "" {
					continue
				}
				nonZero++
				wantDec(t, gotSplit, k, v)
			}
			if len(gotSplit) != nonZero {
				t.Errorf("%s %s = %v, want %d keys", d, name, gotSplit, nonZero)
			}
		}
	}

	for name, dim := range map[string]string{"top_modules": "module", "top_services": "service", "top_users": "user_id"} {
		wantTop := expectTop(recs, from, to, dim)
		gotTop := list(t, got[name], name)
		if len(gotTop) != len(wantTop) {
			t.Errorf("%s has %d entries, want %d: %v", name, len(gotTop), len(wantTop), got[name])
			continue
		}
		for i, w := range wantTop {
			wantString(t, gotTop[i], "key", w.key)
			wantDec(t, gotTop[i], "total", w.total)
			wantInt(t, gotTop[i], "requests", w.requests)
			wantDec(t, gotTop[i], "quantity", w.quantity)
		}
	}
	return got
}

// TestReadStats checks GET /v1/stats: spend over a range, the same-length
// period before it and the change between them, daily splits and the top
// lists.
func TestReadStats(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(readEpoch)
	m := newTenant(t, s, "stats", "USD")
	m.grant("g", "", "100000", nil)
	at := func(d, h int) time.Time { return time.Date(2026, 3, d, h, 0, 0, 0, time.UTC) }
	m.use(
		usageEv{id: "s1", at: at(3, 10), amount: "100", module: "z", service: "s3", user: "u9"},
		usageEv{id: "s2", at: at(4, 9), amount: "2000", quantity: "10", module: "a", service: "api", user: "u2"},
		usageEv{id: "s3", at: at(9, 18), amount: "1800", quantity: "5", module: "b", service: "api", user: "u1"},
		usageEv{id: "s4", at: at(10, 8), amount: "1000", quantity: "1", module: "a", service: "api", user: "u1"},
		usageEv{id: "s5", at: at(12, 12), amount: "1250.5", quantity: "2", module: "b", service: "api", user: "u2"},
		usageEv{id: "s6", at: at(12, 13), amount: "749.5", quantity: "3", module: "a", service: "batch", user: "u1", failed: true},
		usageEv{id: "s7", at: at(15, 9), amount: "1200", quantity: "4", module: "c", service: "batch", user: "u1"},
		usageEv{id: "s8", at: at(15, 10), amount: "0", module: "c", service: "batch", user: "u3"},
	)
	s.Sync()
	recs := m.usage
	day := func(d int) time.Time { return time.Date(2026, 3, d, 0, 0, 0, 0, time.UTC) }

	t.Run("spent is compared with the same-length period just before it", func(t *testing.T) {
		got := checkStats(t, s, m.key, "?from=2026-03-10&to=2026-03-15", recs, day(10), day(15), "10.5")
		// By hand: 4200 against 3800 is up 10.5 %.
		wantDec(t, got, "spent", dec("4200"))
		wantDec(t, got, "previous_period_spent", dec("3800"))
	})

	t.Run("the change is rounded to one decimal, up or down", func(t *testing.T) {
		for _, c := range []struct {
			from, to int
			pct      string
		}{
			{4, 9, "3700"},   // 3800 against 100
			{4, 12, "6700"},  // 6800 against 100
			{13, 15, "-60"},  // 1200 against 3000
			{11, 15, "14.3"}, // 3200 against 2800: 14.2857…
			{16, 16, "-100"}, // 0 against 1200
		} {
			query := fmt.Sprintf("?from=2026-03-%02d&to=2026-03-%02d", c.from, c.to)
			t.Run(fmt.Sprintf("from March %d to March %d the change is %s percent", c.from, c.to, c.pct), func(t *testing.T) {
				checkStats(t, s, m.key, query, recs, day(c.from), day(c.to), c.pct)
			})
		}
	})

	t.Run("the change is null when the previous period spent nothing", func(t *testing.T) {
		checkStats(t, s, m.key, "?from=2026-03-03&to=2026-03-03", recs, day(3), day(3), "")
		checkStats(t, s, m.key, "?from=2026-03-09&to=2026-03-10", recs, day(9), day(10), "")
		got := checkStats(t, s, m.key, "?from=2026-02-01&to=2026-02-05", recs, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 5, 0, 0, 0, 0, time.UTC), "")
		wantDec(t, got, "spent", dec("0"))
		if len(list(t, got["daily"], "daily")) != 0 || len(list(t, got["top_modules"], "top_modules")) != 0 {
			t.Errorf("a range without usage has days or tops: %v", got)
		}
	})

	t.Run("without from and to the range is the 30 days ending today", func(t *testing.T) {
		checkStats(t, s, m.key, "", recs, time.Date(2026, 2, 14, 0, 0, 0, 0, time.UTC), day(15), "")
	})

	t.Run("daily splits are ascending and the top lists are sorted by total", func(t *testing.T) {
		got := checkStats(t, s, m.key, "?from=2026-03-10&to=2026-03-15", recs, day(10), day(15), "10.5")
		var dates []string
		for _, d := range list(t, got["daily"], "daily") {
			dates = append(dates, d["date"].(string))
		}
		if fmt.Sprint(dates) != "[2026-03-10 2026-03-12 2026-03-15]" {
			t.Errorf("daily dates %v", dates)
		}
		for name, keys := range map[string]string{"top_modules": "[a b c]", "top_services": "[api batch]", "top_users": "[u1 u2 u3]"} {
			var got2 []string
			for _, r := range list(t, got[name], name) {
				got2 = append(got2, r["key"].(string))
			}
			if fmt.Sprint(got2) != keys {
				t.Errorf("%s keys %v, want %s", name, got2, keys)
			}
		}
	})

	t.Run("RFC 3339 bounds select the UTC days they fall on", func(t *testing.T) {
		got := checkStats(t, s, m.key, q("from", "2026-03-10T15:00:00Z", "to", "2026-03-15T01:00:00Z"), recs, day(10), day(15), "10.5")
		wantTime(t, got, "from", day(10).Add(15*time.Hour))
		wantTime(t, got, "to", day(15).Add(time.Hour))
	})

	t.Run("bad ranges and unknown parameters are 400s", func(t *testing.T) {
		badRead(t, s, "/v1/stats?from=2026-03-15&to=2026-03-10", m.key, "query.from")
		badRead(t, s, "/v1/stats?from=2020-01-01&to=2026-03-15", m.key, "query.to")
		badRead(t, s, "/v1/stats?from=last-week", m.key, "query.from")
		badRead(t, s, "/v1/stats?module=a", m.key, "query.module")
		fetch(t, s, http.MethodGet, "/v1/stats?granularity=day", m.key, nil).problem(t, http.StatusBadRequest, "query.granularity")
	})
}
