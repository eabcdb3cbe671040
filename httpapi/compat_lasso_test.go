package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/internal/stack"
)

const lassoStatsPath = "/compat/lasso/credits/stats"

// lassoRanked is one expected entry of a by_* list.
type lassoRanked struct {
	key   string
	total decimal.Decimal
}

// expectRanked sums records of days from..to by key, drops zero totals and
// the empty key, and sorts by total descending (then key).
func expectRanked(recs []usageRec, from, to time.Time, key func(usageRec) string) []lassoRanked {
	sums := map[string]decimal.Decimal{}
	for _, r := range recs {
		if d := r.day(); !d.Before(from) && !d.After(to) {
			sums[key(r)] = sums[key(r)].Add(r.credits)
		}
	}
	var out []lassoRanked
	for k, v := range sums {
		// Usage without the dimension counts in the totals only.
		if !v.IsZero() && k != "" {
			out = append(out, lassoRanked{k, v})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].total.Cmp(out[j].total); c != 0 {
			return c > 0
		}
		return out[i].key < out[j].key
	})
	return out
}

// wantJSONEqual checks that got, as JSON, equals want.
func wantJSONEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	norm := func(v any) any {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var out any
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if g, w := norm(got), norm(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s = %v, want %v", what, g, w)
	}
}

// changePct is (spent − previous) / previous × 100 to one decimal, "" when
// previous is zero.
func changePct(spent, previous decimal.Decimal) string {
	if previous.IsZero() {
		return ""
	}
	return spent.Sub(previous).Mul(decimal.NewFromInt(100)).Div(previous).Round(1).String()
}

// checkLassoStats checks a stats answer for the days from..to against the
// world's model.
func checkLassoStats(t *testing.T, got map[string]any, w *compatWorld, fromText, toText string) {
	t.Helper()
	from, err1 := time.Parse(time.DateOnly, fromText)
	to, err2 := time.Parse(time.DateOnly, toText)
	if err1 != nil || err2 != nil {
		t.Fatalf("dates %q %q", fromText, toText)
	}
	recs := w.m.usage
	days := int(to.Sub(from)/(24*time.Hour)) + 1
	period := obj(t, got["period"], "period")
	wantString(t, period, "from", fromText)
	wantString(t, period, "to", toText)

	// Summary.
	summary := obj(t, got["summary"], "summary")
	spent := expectSpent(recs, from, to)
	previous := expectSpent(recs, from.AddDate(0, 0, -days), from.AddDate(0, 0, -1))
	wantDec(t, summary, "total_spent", spent)
	wantDec(t, summary, "previous_period_spent", previous)
	if pct := changePct(spent, previous); pct == "" {
		wantNull(t, summary, "previous_period_change_pct")
	} else {
		wantNumber(t, summary, "previous_period_change_pct", pct)
	}
	now := w.now()
	var allocation decimal.Decimal
	var periodEnd string
	var cost map[string]any
	for _, sub := range w.subs {
		if now.Before(sub.starts) || (sub.cancelAt != nil && !now.Before(*sub.cancelAt)) {
			continue
		}
		allocation = allocation.Add(sub.credits)
		if periodEnd == "" {
			_, end := sub.currentPeriod(now)
			periodEnd = end.Format("2006-01-02T15:04:05.000Z")
			cost = map[string]any{"amount": sub.price.Div(sub.credits), "currency": sub.currency, "monthly_fee": sub.price, "monthly_credits": sub.credits}
		}
	}
	// The tenant's currency_config wins over the subscription: its
	// monthly_credits are the allocation, and with a monthly fee in the
	// display currency they price a credit.
	if credits, ok := configDecimal(w.currencyConfig, "monthly_credits"); ok {
		allocation = credits
		if fee, ok := configDecimal(w.currencyConfig, "monthly_fee_"+strings.ToLower(w.m.currency)); ok {
			cost = map[string]any{"amount": fee.Div(credits), "currency": w.m.currency, "monthly_fee": fee, "monthly_credits": credits}
		}
	}
	if periodEnd == "" {
		// Without a subscription the period is the calendar month.
		month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
		periodEnd = month.AddDate(0, 1, 0).Format("2006-01-02T15:04:05.000Z")
	}
	wantString(t, summary, "period_end", periodEnd)
	if allocation.IsZero() {
		wantNull(t, summary, "monthly_allocation")
	} else {
		wantDec(t, summary, "monthly_allocation", allocation)
	}
	if cost != nil {
		gotCost := obj(t, summary["cost_per_credit"], "cost_per_credit")
		for _, k := range []string{"amount", "monthly_fee", "monthly_credits"} {
			wantDec(t, gotCost, k, cost[k].(decimal.Decimal))
		}
		wantString(t, gotCost, "currency", cost["currency"].(string))
	}

	// Daily: every day of the range, ascending, split by module and user;
	// a day without spend is there at zero.
	type split struct {
		total          decimal.Decimal
		module, byUser map[string]decimal.Decimal
	}
	byDay := map[string]*split{}
	for _, r := range recs {
		if d := r.day(); d.Before(from) || d.After(to) {
			continue
		}
		k := r.day().Format(time.DateOnly)
		if byDay[k] == nil {
			byDay[k] = &split{module: map[string]decimal.Decimal{}, byUser: map[string]decimal.Decimal{}}
		}
		byDay[k].total = byDay[k].total.Add(r.credits)
		byDay[k].module[r.module] = byDay[k].module[r.module].Add(r.credits)
		byDay[k].byUser[r.user] = byDay[k].byUser[r.user].Add(r.credits)
	}
	var dates []string
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		k := d.Format(time.DateOnly)
		dates = append(dates, k)
		if byDay[k] == nil {
			byDay[k] = &split{module: map[string]decimal.Decimal{}, byUser: map[string]decimal.Decimal{}}
		}
	}
	daily := list(t, got["daily"], "daily")
	if len(daily) != len(dates) {
		t.Fatalf("daily has %d days, want the %d from %s to %s", len(daily), len(dates), fromText, toText)
	}
	for i, d := range dates {
		wantString(t, daily[i], "date", d)
		wantDec(t, daily[i], "total", byDay[d].total)
		for name, want := range map[string]map[string]decimal.Decimal{"by_module": byDay[d].module, "by_user": byDay[d].byUser} {
			gotSplit := obj(t, daily[i][name], d+" "+name)
			n := 0
			for k, v := range want {
				if !v.IsZero() && k != "" {
					n++
					wantDec(t, gotSplit, k, v)
				}
			}
			if len(gotSplit) != n {
				t.Errorf("%s %s = %v, want %d keys", d, name, gotSplit, n)
			}
		}
	}

	// by_module, by_service, by_user: every value, by total descending.
	for _, part := range []struct {
		list, key string
		of        func(usageRec) string
	}{
		{"by_module", "module_key", func(r usageRec) string { return r.module }},
		{"by_service", "service_type", func(r usageRec) string { return r.service }},
		{"by_user", "user_id", func(r usageRec) string { return r.user }},
	} {
		want := expectRanked(recs, from, to, part.of)
		gotList := list(t, got[part.list], part.list)
		if len(gotList) != len(want) {
			t.Errorf("%s has %d entries, want %v: %v", part.list, len(gotList), want, got[part.list])
			continue
		}
		for i, e := range want {
			if len(gotList[i]) != 2 {
				t.Errorf("%s[%d] = %v, want only %s and total", part.list, i, gotList[i], part.key)
			}
			wantString(t, gotList[i], part.key, e.key)
			wantDec(t, gotList[i], "total", e.total)
		}
	}

	// The lasso section: module lasso's credits, quantity and tables.
	lasso := obj(t, got["lasso"], "lasso")
	var credits, products decimal.Decimal
	type table struct{ name, id string }
	tables := map[table]*[2]decimal.Decimal{}
	for _, r := range recs {
		if d := r.day(); d.Before(from) || d.After(to) || r.module != "lasso" {
			continue
		}
		credits, products = credits.Add(r.credits), products.Add(r.quantity)
		if id := r.custom["table_id"]; id != "" {
			k := table{r.custom["table_name"], id}
			if tables[k] == nil {
				tables[k] = &[2]decimal.Decimal{}
			}
			tables[k][0], tables[k][1] = tables[k][0].Add(r.credits), tables[k][1].Add(r.quantity)
		}
	}
	wantDec(t, lasso, "credits_spent", credits)
	wantDec(t, lasso, "products_enhanced", products)
	perProduct := decimal.Zero
	if products.IsPositive() {
		perProduct = credits.Div(products).Round(2)
	}
	wantDec(t, lasso, "credits_per_product", perProduct)
	byTable := list(t, lasso["by_table"], "lasso.by_table")
	if len(byTable) != len(tables) {
		t.Errorf("by_table has %d tables, want %d: %v", len(byTable), len(tables), lasso["by_table"])
	}
	for _, bt := range byTable {
		id, _ := bt["table_id"].(string)
		name, _ := bt["name"].(string)
		want := tables[table{name, id}]
		if want == nil {
			t.Errorf("unexpected table %v", bt)
			continue
		}
		wantDec(t, bt, "total", want[0])
		wantDec(t, bt, "products", want[1])
	}

	// The tenant's stored display configuration, as set.
	config := w.currencyConfig
	if config == nil {
		config = map[string]any{}
	}
	wantJSONEqual(t, "currency_config", got["currency_config"], config)
}

// TestCompatLasso checks the lasso profile (seed 003) against the compat
// scenario: spend over whole days against the period before, the
// subscription allocation and cost, daily and ranked splits, the Lasso
// tables and the tenant's currency_config.
func TestCompatLasso(t *testing.T) {
	t.Parallel()
	w := buildCompatScenario(t, "lasso")
	s, key := w.s, w.m.key
	stats := func(from, to string) string { return lassoStatsPath + q("from", from, "to", to) }

	t.Run("the answer has the seed's members and types", func(t *testing.T) {
		checkShape(t, "lasso", "stats", fetch(t, s, http.MethodGet, stats("2026-03-01", "2026-03-15"), key, nil))
	})

	t.Run("the first half of March is compared with the fifteen days before it", func(t *testing.T) {
		got := read(t, s, stats("2026-03-01", "2026-03-15"), key)
		checkLassoStats(t, got, w, "2026-03-01", "2026-03-15")
		// By hand: March spent 358.75 against February's u5 150: +139.2 %.
		summary := obj(t, got["summary"], "summary")
		wantDec(t, summary, "total_spent", dec("358.75"))
		wantDec(t, summary, "previous_period_spent", dec("150"))
		wantNumber(t, summary, "previous_period_change_pct", "139.2")
		// sub-pro is canceled at its period end but still allocates now.
		wantDec(t, summary, "monthly_allocation", dec("50000"))
		wantString(t, summary, "period_end", "2026-03-18T00:00:00.000Z")
		cost := obj(t, summary["cost_per_credit"], "cost_per_credit")
		wantDec(t, cost, "amount", dec("0.02"))
		wantString(t, cost, "currency", "EUR")
		// The lasso module: u1, u2, u3, u6 and the capture; 48 products.
		lasso := obj(t, got["lasso"], "lasso")
		wantDec(t, lasso, "credits_spent", dec("295.95"))
		wantDec(t, lasso, "products_enhanced", dec("48"))
		wantNumber(t, lasso, "credits_per_product", "6.17")
		var keys []string
		for _, e := range list(t, got["by_service"], "by_service") {
			keys = append(keys, e["service_type"].(string))
		}
		if fmt.Sprint(keys) != "[ai_field api translate accounts]" {
			t.Errorf("by_service order %v", keys)
		}
	})

	t.Run("other ranges, with and without spend before them", func(t *testing.T) {
		for _, c := range []struct{ from, to string }{
			{"2026-03-10", "2026-03-10"}, // u2 and u3 (23:59:59.5) against nothing the day before
			{"2026-03-11", "2026-03-15"}, // against 6–10 March
			{"2026-02-20", "2026-03-15"}, // u5's day starts it; nothing before
			{"2026-01-01", "2026-01-31"}, // nothing at all
			{"2026-03-15", "2026-03-15"},
		} {
			t.Run(c.from+" to "+c.to, func(t *testing.T) {
				checkLassoStats(t, read(t, s, stats(c.from, c.to), key), w, c.from, c.to)
			})
		}
		got := read(t, s, stats("2026-02-20", "2026-03-15"), key)
		wantNull(t, obj(t, got["summary"], "summary"), "previous_period_change_pct")
	})

	t.Run("from and to are required YYYY-MM-DD dates", func(t *testing.T) {
		badRead(t, s, lassoStatsPath+q("to", "2026-03-15"), key, "query.from")
		badRead(t, s, lassoStatsPath+q("from", "2026-03-01"), key, "query.to")
		badRead(t, s, lassoStatsPath, key, "query.from")
		badRead(t, s, stats("2026-02-30", "2026-03-15"), key, "query.from")
		badRead(t, s, stats("2026-03-01", "15/03/2026"), key, "query.to")
		badRead(t, s, stats("2026-03-01T00:00:00Z", "2026-03-15"), key, "query.from")
	})

	t.Run("unknown query parameters are ignored", func(t *testing.T) {
		want := fetch(t, s, http.MethodGet, stats("2026-03-01", "2026-03-15"), key, nil)
		got := fetch(t, s, http.MethodGet, stats("2026-03-01", "2026-03-15")+"&_=1700000000&utm_source=mail&page=3", key, nil)
		if got.Status != http.StatusOK || string(got.Body) != string(want.Body) {
			t.Errorf("with unknown parameters: %d %s; without: %d %s", got.Status, got.Body, want.Status, want.Body)
		}
		// A known parameter keeps its rules.
		badRead(t, s, lassoStatsPath+"?from=2026-03-01&to=tomorrow&utm_source=mail", key, "query.to")
	})

	t.Run("from after to is a 400", func(t *testing.T) {
		badRead(t, s, stats("2026-03-15", "2026-03-14"), key, "query.from")
	})

	t.Run("a range may span 1830 days, not 1831", func(t *testing.T) {
		to := time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)
		longest := to.AddDate(0, 0, -1829).Format(time.DateOnly)
		tooLong := to.AddDate(0, 0, -1830).Format(time.DateOnly)
		got := read(t, s, stats(longest, "2026-03-15"), key)
		checkLassoStats(t, got, w, longest, "2026-03-15")
		r := fetch(t, s, http.MethodGet, stats(tooLong, "2026-03-15"), key, nil)
		r.problem(t, http.StatusBadRequest, "query.from")
	})

	t.Run("a bad or missing key is a 401", func(t *testing.T) {
		fetch(t, s, http.MethodGet, stats("2026-03-01", "2026-03-15"), badKey, nil).problem(t, http.StatusUnauthorized)
		fetch(t, s, http.MethodGet, stats("2026-03-01", "2026-03-15"), "", nil).problem(t, http.StatusUnauthorized)
	})

	t.Run("read models that are late are a 500, the seed's status for a server error", func(t *testing.T) {
		// The seed's table has 400, 401 and 500: no 503.
		r := fetch(t, s, http.MethodGet, stats("2026-03-01", "2026-03-15")+"&"+positionNeverReached[1:], key, nil)
		r.problem(t, http.StatusInternalServerError)
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("the 500 lost the Retry-After of the 503 it stands for")
		}
	})

	t.Run("without a subscription or settings, allocation is null, the period is the month and currency_config is empty", func(t *testing.T) {
		fresh := &compatWorld{t: t, s: s, m: newTenant(t, s, "lasso-fresh", "USD"), book: newGrantBook()}
		fresh.grant("g", "", "100", nil)
		fresh.use(usageEv{id: "x", at: at(3, 14, 10, 0), amount: "12.5", quantity: "4", module: "lasso", service: "ai_field", user: "u1",
			custom: map[string]string{"table_id": "t1", "table_name": "Only table"}})
		s.Sync()
		got := read(t, s, stats("2026-03-01", "2026-03-15"), fresh.m.key)
		checkLassoStats(t, got, fresh, "2026-03-01", "2026-03-15")
		summary := obj(t, got["summary"], "summary")
		wantNull(t, summary, "monthly_allocation")
		// The calendar month is the period without a subscription.
		wantString(t, summary, "period_end", "2026-04-01T00:00:00.000Z")
		// Nothing before: no percentage is true.
		wantNull(t, summary, "previous_period_change_pct")
		daily := list(t, got["daily"], "daily")
		if len(daily) != 15 {
			t.Fatalf("daily has %d days, want the 15 of 1 to 15 March", len(daily))
		}
		zero := daily[0]
		wantString(t, zero, "date", "2026-03-01")
		wantNumber(t, zero, "total", "0")
		for _, split := range []string{"by_module", "by_user"} {
			if m := obj(t, zero[split], split); len(m) != 0 {
				t.Errorf("a day without spend has %s %v, want {}", split, m)
			}
		}
		if c := obj(t, got["currency_config"], "currency_config"); len(c) != 0 {
			t.Errorf("currency_config = %v, want {}", c)
		}
		wantNumber(t, obj(t, got["lasso"], "lasso"), "credits_per_product", "3.13") // 12.5 / 4 = 3.125
	})
}

// TestCompatLassoSeedExample reproduces the seed's example for the first
// quarter of 2025: 4200 spent against 3800, +10.5 %, a 50000-credit monthly
// allocation at 1000 EUR, 0.02 EUR a credit.
func TestCompatLassoSeedExample(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	now := time.Date(2025, 4, 10, 12, 0, 0, 0, time.UTC)
	s.Clock.Set(now)
	w := newCompatWorld(t, s, "lasso-seed", "CZK")
	w.settings("EUR", seedCurrencyConfig())
	// Started 18 January: the periods of 18 January, 18 February and
	// 18 March are allocated at once; the current one ends 18 April.
	w.subscribe(subModel{id: "team", credits: dec("50000"), price: dec("1000"), currency: "EUR", starts: time.Date(2025, 1, 18, 0, 0, 0, 0, time.UTC)})
	day := func(m time.Month, d, h, min, sec int) time.Time {
		return time.Date(2025, m, d, h, min, sec, 0, time.UTC)
	}
	// The 90 days before: 3 October to 31 December 2024.
	w.use(
		usageEv{id: "p0", at: time.Date(2024, 10, 2, 23, 59, 59, 0, time.UTC), amount: "999", module: "export", service: "csv", user: "e7f8..."},
		usageEv{id: "p1", at: time.Date(2024, 10, 3, 0, 0, 0, 0, time.UTC), amount: "1800", module: "export", service: "csv", user: "e7f8..."},
		usageEv{id: "p2", at: time.Date(2024, 12, 31, 23, 59, 59, 0, time.UTC), amount: "2000", module: "lasso", service: "ai_field", user: "5f0e..."},
	)
	summer := map[string]string{"table_id": "9b81...", "table_name": "Summer catalog"}
	winter := map[string]string{"table_id": "77aa...", "table_name": "Winter catalog"}
	w.use(
		usageEv{id: "e1", at: day(1, 1, 9, 0, 0), amount: "120", quantity: "18", module: "lasso", service: "ai_field", user: "5f0e...", custom: summer},
		usageEv{id: "e2", at: day(1, 20, 10, 0, 0), amount: "680", quantity: "102", module: "lasso", service: "ai_field", user: "5f0e...", custom: summer},
		usageEv{id: "e3", at: day(2, 3, 11, 0, 0), amount: "700", quantity: "100", module: "lasso", service: "ai_field", user: "d5e6...", custom: winter},
		usageEv{id: "e4", at: day(2, 14, 12, 0, 0), amount: "750", quantity: "130", module: "lasso", service: "image_gen", user: "a1b2...", custom: winter},
		usageEv{id: "e5", at: day(3, 1, 8, 0, 0), amount: "250", quantity: "50", module: "lasso", service: "image_gen", user: "c3d4...", custom: winter},
		usageEv{id: "e6", at: day(3, 10, 8, 0, 0), amount: "500", quantity: "50", module: "lasso", service: "seo", user: "c3d4..."},
		usageEv{id: "e7", at: day(3, 20, 15, 0, 0), amount: "600", module: "export", service: "csv", user: "e7f8..."},
		usageEv{id: "e8", at: day(3, 31, 23, 59, 59), amount: "600", module: "export", service: "csv", user: "f9a0..."},
		usageEv{id: "after", at: day(4, 1, 0, 0, 0), amount: "77", module: "export", service: "csv", user: "f9a0..."},
	)
	s.Sync()

	got := read(t, s, lassoStatsPath+"?from=2025-01-01&to=2025-03-31", w.m.key)

	t.Run("the summary is the seed's example", func(t *testing.T) {
		period := obj(t, got["period"], "period")
		wantString(t, period, "from", "2025-01-01")
		wantString(t, period, "to", "2025-03-31")
		summary := obj(t, got["summary"], "summary")
		wantNumber(t, summary, "total_spent", "4200")
		wantNumber(t, summary, "previous_period_spent", "3800") // 1800 on 3 October, 2000 on 31 December
		wantNumber(t, summary, "previous_period_change_pct", "10.5")
		wantNumber(t, summary, "monthly_allocation", "50000")
		wantString(t, summary, "period_end", "2025-04-18T00:00:00.000Z")
		cost := obj(t, summary["cost_per_credit"], "cost_per_credit")
		wantNumber(t, cost, "amount", "0.02")
		wantString(t, cost, "currency", "EUR")
		wantNumber(t, cost, "monthly_fee", "1000")
		wantNumber(t, cost, "monthly_credits", "50000")
	})

	t.Run("the splits and the lasso section are the seed's example", func(t *testing.T) {
		daily := list(t, got["daily"], "daily")
		wantString(t, daily[0], "date", "2025-01-01")
		wantNumber(t, daily[0], "total", "120")
		wantNumber(t, obj(t, daily[0]["by_module"], "by_module"), "lasso", "120")
		wantNumber(t, obj(t, daily[0]["by_user"], "by_user"), "5f0e...", "120")
		first := func(name string) map[string]any {
			entries := list(t, got[name], name)
			if len(entries) == 0 {
				t.Fatalf("%s is empty", name)
			}
			return entries[0]
		}
		wantString(t, first("by_module"), "module_key", "lasso")
		wantNumber(t, first("by_module"), "total", "3000")
		wantString(t, first("by_service"), "service_type", "ai_field")
		wantNumber(t, first("by_service"), "total", "1500")
		wantString(t, first("by_user"), "user_id", "5f0e...")
		wantNumber(t, first("by_user"), "total", "800")
		lasso := obj(t, got["lasso"], "lasso")
		wantNumber(t, lasso, "credits_spent", "3000")
		wantNumber(t, lasso, "products_enhanced", "450")
		wantNumber(t, lasso, "credits_per_product", "6.67")
		found := false
		for _, bt := range list(t, lasso["by_table"], "by_table") {
			if bt["table_id"] == "9b81..." {
				found = true
				wantString(t, bt, "name", "Summer catalog")
				wantNumber(t, bt, "total", "800")
				wantNumber(t, bt, "products", "120")
			}
		}
		if !found {
			t.Errorf("by_table lacks 9b81...: %v", lasso["by_table"])
		}
	})

	t.Run("currency_config is the seed's example, as stored", func(t *testing.T) {
		wantJSONEqual(t, "currency_config", got["currency_config"], seedCurrencyConfig())
	})

	t.Run("the whole answer agrees with the model", func(t *testing.T) {
		checkLassoStats(t, got, w, "2025-01-01", "2025-03-31")
	})
}

// TestCompatLassoServerError: a broken database answers the seed's 500.
func TestCompatLassoServerError(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	_, key := s.Tenant("lasso-broken")
	s.Sync()
	breakReadModels(t, s, "usage_rollup")
	fetch(t, s, http.MethodGet, lassoStatsPath+"?from=2026-03-01&to=2026-03-15", key, nil).problem(t, http.StatusInternalServerError)
}

// configDecimal reads a number of a currency_config as the test set it.
func configDecimal(config map[string]any, key string) (decimal.Decimal, bool) {
	v, ok := config[key]
	if !ok {
		return decimal.Zero, false
	}
	d, err := decimal.NewFromString(fmt.Sprint(v))
	return d, err == nil
}

// TestCompatLassoCostFromCurrencyConfig: the seed's cost_per_credit is its
// currency_config (monthly_fee_eur 1000 / monthly_credits 50000 = 0.02 EUR)
// and its monthly_allocation the config's monthly_credits. The config wins
// over a subscription's price; without a fee in the display currency the
// subscription prices the credit.
func TestCompatLassoCostFromCurrencyConfig(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(compatEpoch)
	summaryOf := func(t *testing.T, w *compatWorld) map[string]any {
		t.Helper()
		s.Sync()
		got := read(t, s, lassoStatsPath+"?from=2026-03-01&to=2026-03-15", w.m.key)
		checkLassoStats(t, got, w, "2026-03-01", "2026-03-15")
		return obj(t, got["summary"], "summary")
	}
	wantCost := func(t *testing.T, summary map[string]any, amount, currency, fee, credits string) {
		t.Helper()
		cost := obj(t, summary["cost_per_credit"], "cost_per_credit")
		wantNumber(t, cost, "amount", amount)
		wantString(t, cost, "currency", currency)
		wantNumber(t, cost, "monthly_fee", fee)
		wantNumber(t, cost, "monthly_credits", credits)
	}

	t.Run("the config alone gives cost and allocation", func(t *testing.T) {
		w := newCompatWorld(t, s, "lasso-config-only", "CZK")
		w.settings("EUR", seedCurrencyConfig())
		summary := summaryOf(t, w)
		wantCost(t, summary, "0.02", "EUR", "1000", "50000")
		wantNumber(t, summary, "monthly_allocation", "50000")
	})

	t.Run("the display currency picks the fee", func(t *testing.T) {
		w := newCompatWorld(t, s, "lasso-config-czk", "EUR")
		w.settings("CZK", seedCurrencyConfig())
		wantCost(t, summaryOf(t, w), "0.5", "CZK", "25000", "50000")
	})

	t.Run("the config wins over a subscription's price and credits", func(t *testing.T) {
		w := newCompatWorld(t, s, "lasso-config-and-sub", "USD")
		w.settings("EUR", seedCurrencyConfig())
		w.subscribe(subModel{id: "plan", credits: dec("30000"), price: dec("900"), currency: "USD", starts: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)})
		summary := summaryOf(t, w)
		wantCost(t, summary, "0.02", "EUR", "1000", "50000")
		wantNumber(t, summary, "monthly_allocation", "50000")
		wantString(t, summary, "period_end", "2026-04-01T00:00:00.000Z")
	})

	t.Run("without a fee in the display currency the subscription prices the credit", func(t *testing.T) {
		w := newCompatWorld(t, s, "lasso-config-no-fee", "USD")
		w.settings("USD", seedCurrencyConfig())
		w.subscribe(subModel{id: "plan", credits: dec("30000"), price: dec("900"), currency: "USD", starts: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)})
		summary := summaryOf(t, w)
		wantCost(t, summary, "0.03", "USD", "900", "30000")
		wantNumber(t, summary, "monthly_allocation", "50000")
	})

	t.Run("without a config the subscription gives both", func(t *testing.T) {
		w := newCompatWorld(t, s, "lasso-sub-only", "USD")
		w.subscribe(subModel{id: "plan", credits: dec("30000"), price: dec("900"), currency: "USD", starts: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)})
		summary := summaryOf(t, w)
		wantCost(t, summary, "0.03", "USD", "900", "30000")
		wantNumber(t, summary, "monthly_allocation", "30000")
	})
}

// TestCurrencyConfigIsTyped: the members the lasso seed types are checked
// when the settings are written: monthly_fee_<currency> and
// monthly_credits numbers, auto_<currency> booleans. A 400 names each bad
// member and nothing is stored; the tenant's other members are its own.
func TestCurrencyConfigIsTyped(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(compatEpoch)
	w := newCompatWorld(t, s, "typed-config", "EUR")
	w.settings("EUR", seedCurrencyConfig())
	stored := func() any {
		t.Helper()
		s.Sync()
		return read(t, s, lassoStatsPath+"?from=2026-03-01&to=2026-03-15", w.m.key)["currency_config"]
	}
	before := stored()
	for _, c := range []struct {
		name      string
		config    map[string]any
		locations []string
	}{
		{"a boolean as a string", map[string]any{"auto_eur": "no"}, []string{"body.currency_config.auto_eur"}},
		{"a fee as a string", map[string]any{"monthly_fee_eur": "1000"}, []string{"body.currency_config.monthly_fee_eur"}},
		{"credits as a boolean", map[string]any{"monthly_credits": true}, []string{"body.currency_config.monthly_credits"}},
		{"no credits", map[string]any{"monthly_credits": 0}, []string{"body.currency_config.monthly_credits"}},
		{"a negative fee", map[string]any{"monthly_fee_czk": -5}, []string{"body.currency_config.monthly_fee_czk"}},
		{"a null", map[string]any{"auto_czk": nil}, []string{"body.currency_config.auto_czk"}},
		{"a fee without a currency code", map[string]any{"monthly_fee_EUR": 1000, "monthly_fee_": 3}, []string{"body.currency_config.monthly_fee_EUR", "body.currency_config.monthly_fee_"}},
		{"every problem at once", map[string]any{"monthly_fee_eur": "x", "monthly_credits": "y", "auto_eur": 1, "monthly_fee_czk": 25000},
			[]string{"body.currency_config.monthly_fee_eur", "body.currency_config.monthly_credits", "body.currency_config.auto_eur"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := fetch(t, s, http.MethodPut, "/v1/settings", w.m.key, map[string]any{"currency": "USD", "currency_config": c.config})
			p := r.problem(t, http.StatusBadRequest, c.locations...)
			if len(p.Errors) != len(c.locations) {
				t.Errorf("errors %v, want %v", p.locations(), c.locations)
			}
		})
	}
	wantJSONEqual(t, "currency_config after the refused writes", stored(), before)

	t.Run("members the seed does not type are the tenant's own", func(t *testing.T) {
		own := map[string]any{"monthly_fee_eur": 1000.5, "monthly_credits": 50000, "auto_eur": true, "auto_convert": "daily", "rounding": 2}
		fetch(t, s, http.MethodPut, "/v1/settings", w.m.key, map[string]any{"currency_config": own}).want(t, http.StatusOK)
		wantJSONEqual(t, "currency_config", stored(), own)
	})
}

// TestEmptyDimensionValuesAreOmitted: usage without a module, service or
// user is left out of the maps and lists keyed by them (no "" key), in the
// lasso profile and in the native statistics alike; every total keeps it.
func TestEmptyDimensionValuesAreOmitted(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(compatEpoch)
	w := newCompatWorld(t, s, "empty-keys", "USD")
	w.grant("g", "", "1000", nil)
	w.use(usageEv{id: "named", at: at(3, 14, 10, 0), amount: "12.5", module: "lasso", service: "ai_field", user: "u1"},
		usageEv{id: "bare", at: at(3, 14, 11, 0), amount: "7.25"},
		usageEv{id: "moduleless", at: at(3, 15, 9, 0), amount: "3", user: "u2"})
	s.Sync()
	noEmptyKey := func(t *testing.T, what string, m map[string]any) {
		t.Helper()
		if _, present := m[""]; present {
			t.Errorf("%s has the key \"\": %v", what, m)
		}
	}
	noEmptyEntry := func(t *testing.T, what, key string, entries []map[string]any) {
		t.Helper()
		for _, e := range entries {
			if e[key] == "" {
				t.Errorf("%s lists %s \"\": %v", what, key, entries)
			}
		}
	}

	t.Run("lasso", func(t *testing.T) {
		got := read(t, s, lassoStatsPath+"?from=2026-03-14&to=2026-03-15", w.m.key)
		checkLassoStats(t, got, w, "2026-03-14", "2026-03-15")
		wantNumber(t, obj(t, got["summary"], "summary"), "total_spent", "22.75")
		daily := list(t, got["daily"], "daily")
		wantNumber(t, daily[0], "total", "19.75")
		wantNumber(t, daily[1], "total", "3")
		for _, d := range daily {
			noEmptyKey(t, "by_module", obj(t, d["by_module"], "by_module"))
			noEmptyKey(t, "by_user", obj(t, d["by_user"], "by_user"))
		}
		noEmptyEntry(t, "by_module", "module_key", list(t, got["by_module"], "by_module"))
		noEmptyEntry(t, "by_service", "service_type", list(t, got["by_service"], "by_service"))
		noEmptyEntry(t, "by_user", "user_id", list(t, got["by_user"], "by_user"))
	})

	t.Run("the native statistics", func(t *testing.T) {
		got := read(t, s, "/v1/stats?from=2026-03-14&to=2026-03-15", w.m.key)
		wantNumber(t, got, "spent", "22.75")
		daily := list(t, got["daily"], "daily")
		if len(daily) != 2 {
			t.Fatalf("daily %v, want 14 and 15 March", got["daily"])
		}
		wantNumber(t, daily[0], "total", "19.75")
		wantNumber(t, daily[1], "total", "3")
		for _, d := range daily {
			noEmptyKey(t, "by_module", obj(t, d["by_module"], "by_module"))
			noEmptyKey(t, "by_user", obj(t, d["by_user"], "by_user"))
		}
		for _, top := range []string{"top_modules", "top_services", "top_users"} {
			noEmptyEntry(t, top, "key", list(t, got[top], top))
		}
	})
}
