package httpapi_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/internal/stack"
)

// chromiumPath finds Debian's chromium; CI installs it (.ci/run), so there
// a missing browser is a failure, elsewhere a skip.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (.ci/run installs it)")
	}
	t.Skip("chromium is not installed: apt-get install chromium")
	return ""
}

// dashboardGateway stands in front of the API as a load balancer would:
// it passes requests on, except on the paths told to fail, which it
// answers with a failure of its own.
type dashboardGateway struct {
	*httptest.Server
	mu       sync.Mutex
	failures map[string]dashboardFailure
}

type dashboardFailure struct {
	status      int
	contentType string
	body        string
}

func newDashboardGateway(t *testing.T, upstream string) *dashboardGateway {
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	g := &dashboardGateway{failures: map[string]dashboardFailure{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		f, failing := g.failures[r.URL.Path]
		g.mu.Unlock()
		if !failing {
			proxy.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", f.contentType)
		w.WriteHeader(f.status)
		w.Write([]byte(f.body))
	}))
	t.Cleanup(g.Close)
	return g
}

// fail makes path answer f until heal.
func (g *dashboardGateway) fail(path string, f dashboardFailure) {
	g.mu.Lock()
	g.failures[path] = f
	g.mu.Unlock()
}

func (g *dashboardGateway) heal() {
	g.mu.Lock()
	clear(g.failures)
	g.mu.Unlock()
}

// dashboardBrowser is one headless Chromium tab.
type dashboardBrowser struct{ ctx context.Context }

func startDashboardBrowser(t *testing.T) *dashboardBrowser {
	browser := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Headless,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1200, 1400))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 120*time.Second)
	t.Cleanup(cancelTimeout)
	// The first run starts the browser, bound to ctx: the bounded waits
	// below run on contexts of their own that end before it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return &dashboardBrowser{ctx: ctx}
}

func (b *dashboardBrowser) do(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		t.Fatalf("chromium: %v", err)
	}
}

// evaluateIn runs js in the page and decodes its value into T.
func evaluateIn[T any](t *testing.T, b *dashboardBrowser, js string) T {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// loads is how many loads the page finished: the first one after a log in
// or reload, then one per range shown.
func (b *dashboardBrowser) loads(t *testing.T) int {
	t.Helper()
	return evaluateIn[int](t, b, `Number(document.body.dataset.loads || 0)`)
}

// waitFor waits a bounded time for selector, so a page that never gets
// there fails its step instead of the whole test's deadline.
func (b *dashboardBrowser) waitFor(t *testing.T, selector string, before ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, dashboardWaitMax)
	defer cancel()
	if err := chromedp.Do(ctx, append(before, chromedp.WaitReady(selector))...); err != nil {
		t.Fatalf("waiting for %s: %v", selector, err)
	}
}

// dashboardWaitMax bounds one wait for the page.
const dashboardWaitMax = 20 * time.Second

// showRange asks the page for the days from to to and waits for the answer.
func (b *dashboardBrowser) showRange(t *testing.T, from, to string) {
	t.Helper()
	next := b.loads(t) + 1
	b.waitFor(t, fmt.Sprintf(`body[data-loads="%d"]`, next), chromedp.SetValue("#from", from), chromedp.SetValue("#to", to), chromedp.Click("#show"))
}

func (b *dashboardBrowser) text(t *testing.T, selector string) string {
	t.Helper()
	return evaluateIn[string](t, b, fmt.Sprintf(`document.querySelector(%q).textContent`, selector))
}

func (b *dashboardBrowser) screenshot(t *testing.T) {
	t.Helper()
	shot, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.TempDir(), "dashboard.png")
	if err := os.WriteFile(path, shot, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	if keep := os.Getenv("CREDITD_DASHBOARD_SCREENSHOT"); keep != "" {
		os.WriteFile(keep, shot, 0o600)
	}
}

// dashboardDays lists every UTC day from from to to, both included.
func dashboardDays(t *testing.T, from, to string) []string {
	t.Helper()
	first, err := time.Parse(time.DateOnly, from)
	if err != nil {
		t.Fatal(err)
	}
	last, err := time.Parse(time.DateOnly, to)
	if err != nil {
		t.Fatal(err)
	}
	var days []string
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		days = append(days, d.Format(time.DateOnly))
	}
	return days
}

// TestDashboardInChromium logs in with a tenant key in a real headless
// Chromium and checks that what the page shows is what the API says: the
// numbers exactly, the days of the chart at their dates, and what the page
// says when there is nothing to show or a call fails.
func TestDashboardInChromium(t *testing.T) {
	t.Parallel()
	b := startDashboardBrowser(t)
	s := stack.Start(t)
	tenantID, _ := s.Tenant("acme")
	// The browser gets a key of its own, so revoking it is a real 401.
	issued := s.Must(http.StatusCreated, http.MethodPost, fmt.Sprintf("/v1/tenants/%d/api-keys", tenantID), stack.AdminToken, nil)
	key, keyID := issued["api_key"].(string), issued["key_id"].(string)
	gateway := newDashboardGateway(t, s.Server.URL)

	today := time.Now().UTC()
	must := func(method, path string, body any) map[string]any {
		return s.Must(http.StatusCreated, method, path, key, body)
	}
	must(http.MethodPost, "/v1/grants", map[string]any{"grant_id": "g1", "amount": "500", "expires_at": today.Add(10 * 24 * time.Hour).Format(time.RFC3339)})
	must(http.MethodPost, "/v1/grants", map[string]any{"grant_id": "g2", "amount": "40", "credit_type": "gpu"})
	// The largest amount creditd takes: a float shows it as 1000000000000.
	must(http.MethodPost, "/v1/grants", map[string]any{"grant_id": "g3", "amount": "999999999999.999999", "credit_type": "bulk"})
	var events []any
	for i := range 14 {
		events = append(events, map[string]any{"id": fmt.Sprintf("u%d", i), "amount": fmt.Sprintf("%d.5", i+1),
			"module": []string{"search", "enrich"}[i%2], "service": []string{"api", "batch", "api"}[i%3], "user_id": fmt.Sprintf("user-%d", i%4),
			"timestamp": today.Add(-time.Duration(i) * 24 * time.Hour).Format(time.RFC3339)})
	}
	// A range with gaps: usage on Nov 5, Nov 20 and Dec 2 only.
	past := func(id, day, amount, module, service string) map[string]any {
		return map[string]any{"id": id, "amount": amount, "module": module, "service": service, "user_id": "user-" + service,
			"timestamp": day + "T12:00:00Z"}
	}
	events = append(events,
		past("p1", "2024-11-05", "0.1", "search", "api"),
		past("p2", "2024-11-05", "3.25", "enrich", "batch"),
		past("p3", "2024-11-20", "0.2", "search", "api"),
		past("p4", "2024-11-20", "7.000001", "train", "batch"),
		past("p5", "2024-12-02", "4.7", "search", "api"),
		past("p6", "2024-12-02", "12.5", "enrich", "api"),
		past("p7", "2024-12-02", "2.123456", "train", "batch"))
	huge := past("p8", "2024-10-15", "999999999999.999998", "archive", "cold")
	huge["credit_type"] = "bulk"
	tiny := past("p9", "2024-10-16", "0.000001", "archive", "cold")
	tiny["credit_type"] = "bulk"
	events = append(events, huge, tiny)
	recorded := s.Must(http.StatusOK, http.MethodPost, "/v1/usage", key, map[string]any{"events": events})
	if fmt.Sprint(recorded["accepted"]) != fmt.Sprint(len(events)) {
		t.Fatalf("usage not all accepted: %v", recorded)
	}
	must(http.MethodPost, "/v1/reservations", map[string]any{"reservation_id": "r1", "amount": "25"})
	s.Sync()

	stats := func(from, to string) map[string]any {
		return s.Must(http.StatusOK, http.MethodGet, "/v1/stats?from="+from+"&to="+to, key, nil)
	}
	balanceRows := func() string {
		var want []string
		for _, l := range s.Must(http.StatusOK, http.MethodGet, "/v1/balance", key, nil)["lines"].([]any) {
			line := l.(map[string]any)
			want = append(want, fmt.Sprintf("%v|%v|%v|%v|%v", line["credit_type"], line["available"], line["reserved"], line["used"], line["expiring_soon"]))
		}
		return strings.Join(want, "\n")
	}
	const balanceRowsJS = `[...document.querySelectorAll("#balances tbody tr")].map(tr => [...tr.children].map(td => td.textContent).join("|")).join("\n")`

	b.waitFor(t, `body[data-ready="true"]`,
		chromedp.Navigate(gateway.URL+"/dashboard"),
		chromedp.WaitVisible("#api-key"),
		chromedp.SendKeys("#api-key", key),
		chromedp.Click("#login-button"))

	t.Run("the_last_30_days_are_the_apis_numbers", func(t *testing.T) {
		from, to := today.AddDate(0, 0, -29).Format(time.DateOnly), today.Format(time.DateOnly)
		st := stats(from, to)
		ledger := s.Must(http.StatusOK, http.MethodGet, "/v1/ledger?limit=10", key, nil)
		if got, want := evaluateIn[string](t, b, balanceRowsJS), balanceRows(); got != want {
			t.Errorf("balance rows on screen:\n%s\nthe API says:\n%s", got, want)
		}
		if !strings.Contains(evaluateIn[string](t, b, balanceRowsJS), "999999999999.999999") {
			t.Errorf("the bulk line's 999999999999.999999 is not on screen exactly")
		}
		if spent := b.text(t, "#spent"); spent != fmt.Sprint(st["spent"]) {
			t.Errorf("spent on screen %q, the API says %v", spent, st["spent"])
		}
		topService := evaluateIn[string](t, b, `document.querySelector("#top-services li").dataset.total`)
		if top := st["top_services"].([]any)[0].(map[string]any); topService != fmt.Sprint(top["total"]) {
			t.Errorf("top service on screen %s, the API says %v", topService, top["total"])
		}
		cells := 0
		for _, d := range st["daily"].([]any) {
			cells += len(d.(map[string]any)["by_module"].(map[string]any))
		}
		if bars := evaluateIn[int](t, b, `document.querySelectorAll("#chart rect.bar").length`); bars != cells {
			t.Errorf("%d chart bars, the API has %d day-module cells", bars, cells)
		}
		if page, want := b.text(t, "#page"), fmt.Sprintf("1–10 of %v", ledger["total"]); page != want {
			t.Errorf("ledger pager %q, want %q", page, want)
		}
		if expiring := b.text(t, `#balances tbody tr[data-credit-type="default"] td:last-child`); expiring == "0" {
			t.Errorf("the grant expiring in 10 days shows no credits expiring soon")
		}
		if got := evaluateIn[int](t, b, `document.querySelectorAll("#daily tbody tr").length`); got != 30 {
			t.Errorf("the chart's table has %d days, the range has 30", got)
		}
	})

	t.Run("gaps_are_drawn_at_their_dates", func(t *testing.T) {
		const from, to = "2024-11-01", "2024-12-05"
		b.showRange(t, from, to)
		st := stats(from, to)
		days := dashboardDays(t, from, to)
		if len(st["daily"].([]any)) != 3 {
			t.Fatalf("the API lists %d days with spend, the test expects 3: %v", len(st["daily"].([]any)), st["daily"])
		}

		// The table beside the chart: every day of the range, zero days
		// included, each amount as the API wrote it.
		byDay := map[string]map[string]any{}
		moduleSet := map[string]bool{}
		for _, d := range st["daily"].([]any) {
			day := d.(map[string]any)
			byDay[day["date"].(string)] = day
			for m := range day["by_module"].(map[string]any) {
				moduleSet[m] = true
			}
		}
		modules := slices.Sorted(func(yield func(string) bool) {
			for m := range moduleSet {
				if !yield(m) {
					return
				}
			}
		})
		wantRows := []string{strings.Join(append(append([]string{"Date"}, modules...), "Total"), "|")}
		totals := map[string]decimal.Decimal{}
		maxDay := decimal.Zero
		for _, date := range days {
			cells := []string{date}
			day, spent := byDay[date]
			for _, m := range modules {
				v := "0"
				if spent {
					if amount, ok := day["by_module"].(map[string]any)[m]; ok {
						v = fmt.Sprint(amount)
					}
				}
				cells = append(cells, v)
				totals[m] = totals[m].Add(decimal.RequireFromString(v))
			}
			total := "0"
			if spent {
				total = fmt.Sprint(day["total"])
			}
			maxDay = decimal.Max(maxDay, decimal.RequireFromString(total))
			wantRows = append(wantRows, strings.Join(append(cells, total), "|"))
		}
		gotRows := evaluateIn[[]string](t, b, `[...document.querySelectorAll("#daily tr")].map(tr => [...tr.children].map(c => c.textContent).join("|"))`)
		if !slices.Equal(gotRows, wantRows) {
			t.Errorf("the chart's table:\n%s\nthe API's days, filled:\n%s", strings.Join(gotRows, "\n"), strings.Join(wantRows, "\n"))
		}

		// The legend: one entry per module with its exact total.
		var wantLegend []string
		for _, m := range modules {
			wantLegend = append(wantLegend, m+"|"+totals[m].String())
		}
		gotLegend := evaluateIn[[]string](t, b, `[...document.querySelectorAll("#legend li")].map(li => li.querySelector(".name").textContent + "|" + li.querySelector(".total").textContent)`)
		if !slices.Equal(gotLegend, wantLegend) {
			t.Errorf("legend %q, want %q", gotLegend, wantLegend)
		}
		if spent := b.text(t, "#spent"); spent != fmt.Sprint(st["spent"]) {
			t.Errorf("spent on screen %q, the API says %v", spent, st["spent"])
		}

		// Every day has its slot on the date axis, at its date: a slot's
		// centre is a + b·(days since from), gaps and all.
		type slot struct {
			Date  string
			X     float64
			Width float64
		}
		slots := evaluateIn[[]slot](t, b, `[...document.querySelectorAll("#chart rect.slot")].map(r => ({date: r.dataset.date, x: +r.getAttribute("x"), width: +r.getAttribute("width")}))`)
		if len(slots) != len(days) {
			t.Fatalf("%d day slots on the axis, the range has %d days", len(slots), len(days))
		}
		dayWidth := slots[0].Width
		start := slots[0].X
		for i, sl := range slots {
			if sl.Date != days[i] {
				t.Errorf("slot %d is %s, want %s", i, sl.Date, days[i])
			}
			if want := start + float64(i)*dayWidth; math.Abs(sl.X-want) > 0.01 || math.Abs(sl.Width-dayWidth) > 0.01 {
				t.Errorf("slot %s at x=%.2f width %.2f, want x=%.2f width %.2f", sl.Date, sl.X, sl.Width, want, dayWidth)
			}
		}
		if dayWidth*float64(len(days)) < 500 {
			t.Errorf("the %d days take %.0f pixels of the axis", len(days), dayWidth*float64(len(days)))
		}
		type bar struct {
			Date, Module, Label string
			X, Width, Height    float64
		}
		bars := evaluateIn[[]bar](t, b, `[...document.querySelectorAll("#chart rect.bar")].map(r => ({date: r.dataset.date, module: r.dataset.module, label: r.dataset.label, x: +r.getAttribute("x"), width: +r.getAttribute("width"), height: +r.getAttribute("height")}))`)
		var wantBars []string
		for _, date := range days {
			if day, ok := byDay[date]; ok {
				for _, m := range modules {
					if v, ok := day["by_module"].(map[string]any)[m]; ok {
						wantBars = append(wantBars, fmt.Sprintf("%s %s: %v", date, m, v))
					}
				}
			}
		}
		var gotBars []string
		for _, br := range bars {
			gotBars = append(gotBars, br.Date+" "+br.Module+": "+strings.TrimPrefix(br.Label, br.Date+" · "+br.Module+": "))
			i := slices.Index(days, br.Date)
			if centre, want := br.X+br.Width/2, start+(float64(i)+0.5)*dayWidth; math.Abs(centre-want) > 0.01 {
				t.Errorf("bar %s %s centred at x=%.2f, its date is at x=%.2f", br.Date, br.Module, centre, want)
			}
			if !strings.HasPrefix(br.Label, br.Date+" · "+br.Module+": ") {
				t.Errorf("bar label %q names neither its date nor its module", br.Label)
			}
		}
		if !slices.Equal(gotBars, wantBars) {
			t.Errorf("bars:\n%s\nthe API's cells:\n%s", strings.Join(gotBars, "\n"), strings.Join(wantBars, "\n"))
		}

		// Axis labels: dates under the slots they name, amounts from 0 up
		// past the largest day.
		type label struct {
			Date string
			X    float64
			Text string
		}
		dateLabels := evaluateIn[[]label](t, b, `[...document.querySelectorAll("#chart .x-axis text[data-date]")].map(l => ({date: l.dataset.date, x: +l.getAttribute("x"), text: l.textContent}))`)
		if len(dateLabels) < 3 || dateLabels[0].Date != from {
			t.Errorf("date labels %v: want several, the first at %s", dateLabels, from)
		}
		for _, l := range dateLabels {
			i := slices.Index(days, l.Date)
			if i < 0 || math.Abs(l.X-(start+(float64(i)+0.5)*dayWidth)) > 0.01 {
				t.Errorf("date label %q (%s) at x=%.2f is not under its day", l.Text, l.Date, l.X)
			}
		}
		amountLabels := evaluateIn[[]string](t, b, `[...document.querySelectorAll("#chart .y-axis text")].map(l => l.textContent)`)
		if len(amountLabels) < 2 || amountLabels[0] != "0" {
			t.Fatalf("amount labels %q: want 0 and more", amountLabels)
		}
		step := decimal.RequireFromString(amountLabels[1])
		for i, l := range amountLabels {
			if !decimal.RequireFromString(l).Equal(step.Mul(decimal.NewFromInt(int64(i)))) {
				t.Errorf("amount labels %q are not evenly spaced", amountLabels)
				break
			}
		}
		if top := decimal.RequireFromString(amountLabels[len(amountLabels)-1]); top.LessThan(maxDay) || top.GreaterThan(maxDay.Add(step)) {
			t.Errorf("the amount axis ends at %s, the largest day is %s", top, maxDay)
		}

		// Hovering a bar names its date, module and exact amount.
		type point struct{ X, Y float64 }
		at := evaluateIn[point](t, b, `(() => { const r = document.querySelector('#chart rect.bar[data-date="2024-11-20"][data-module="train"]'); r.scrollIntoView({block: "center"}); const box = r.getBoundingClientRect(); return {x: box.x + box.width / 2, y: box.y + box.height / 2}; })()`)
		b.do(t, chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, at.X, at.Y))
		if tip := b.text(t, "#chart-tip"); !strings.Contains(tip, "2024-11-20") || !strings.Contains(tip, "train") || !strings.Contains(tip, "7.000001") {
			t.Errorf("tooltip over Nov 20's train bar says %q", tip)
		}
		b.screenshot(t)
	})

	t.Run("large_amounts_stay_exact", func(t *testing.T) {
		const from, to = "2024-10-01", "2024-10-31"
		b.showRange(t, from, to)
		st := stats(from, to)
		if spent := b.text(t, "#spent"); spent != fmt.Sprint(st["spent"]) || spent != "999999999999.999999" {
			t.Errorf("spent on screen %q, the API says %v", spent, st["spent"])
		}
		label := evaluateIn[string](t, b, `document.querySelector('#chart rect.bar[data-date="2024-10-15"]').dataset.label`)
		if label != "2024-10-15 · archive: 999999999999.999998" {
			t.Errorf("Oct 15's bar says %q", label)
		}
		if got := b.text(t, "#legend li .total"); got != "999999999999.999999" {
			t.Errorf("the archive module's total on screen is %q", got)
		}
		// The page's JSON reader keeps numbers as text and leaves the
		// digits, quotes and escapes inside strings alone.
		const body = `{"say \"1\" \\": "2.5 \\\" 3", "n": [1.50, -0.000001, 1e3, 999999999999.999998], "ok": true}`
		const want = `{"say \"1\" \\":"2.5 \\\" 3","n":["1.50","-0.000001","1e3","999999999999.999998"],"ok":true}`
		if got := evaluateIn[string](t, b, "JSON.stringify(parseExact("+strconv.Quote(body)+"))"); got != want {
			t.Errorf("parseExact(%s) = %s, want %s", body, got, want)
		}
	})

	t.Run("an_empty_range_says_so", func(t *testing.T) {
		b.showRange(t, "2023-01-01", "2023-01-31")
		if got, want := b.text(t, "#stats-state"), "No usage between 2023-01-01 and 2023-01-31."; got != want {
			t.Errorf("empty range says %q, want %q", got, want)
		}
		if bars := evaluateIn[int](t, b, `document.querySelectorAll("#chart rect.bar").length`); bars != 0 {
			t.Errorf("%d bars for a range without usage", bars)
		}
		if spent := b.text(t, "#spent"); spent != "0" {
			t.Errorf("spent on screen %q for a range without usage", spent)
		}
	})

	t.Run("a_failed_call_says_what_failed_and_keeps_the_session", func(t *testing.T) {
		gateway.fail("/v1/balance", dashboardFailure{http.StatusServiceUnavailable, "application/problem+json",
			`{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"the read models are catching up"}`})
		gateway.fail("/v1/summary", dashboardFailure{http.StatusInternalServerError, "application/problem+json",
			`{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"the summary could not be read"}`})
		gateway.fail("/v1/ledger", dashboardFailure{http.StatusBadGateway, "text/html", "<html><body>upstream timed out</body></html>"})
		defer gateway.heal()
		b.waitFor(t, `body[data-ready="true"]`, chromedp.Reload())
		for selector, want := range map[string]string{
			"#balances-state": "Could not load balances: Service Unavailable: the read models are catching up (HTTP 503)",
			"#account-state":  "Could not load the account: Internal Server Error: the summary could not be read (HTTP 500)",
			"#ledger-state":   "Could not load the ledger: Bad Gateway (HTTP 502)",
			"#stats-state":    "",
		} {
			if got := b.text(t, selector); got != want {
				t.Errorf("%s says %q, want %q", selector, got, want)
			}
		}
		if kept := evaluateIn[bool](t, b, `sessionStorage.getItem("creditd-key") !== null && !document.getElementById("app").hidden && document.getElementById("login").hidden`); !kept {
			t.Errorf("a failed call logged the user out")
		}
		if bars := evaluateIn[int](t, b, `document.querySelectorAll("#chart rect.bar").length`); bars == 0 {
			t.Errorf("the calls that worked show nothing")
		}
	})

	t.Run("a_revoked_key_logs_out", func(t *testing.T) {
		s.Must(http.StatusOK, http.MethodDelete, fmt.Sprintf("/v1/tenants/%d/api-keys/%s", tenantID, keyID), stack.AdminToken, nil)
		s.Sync()
		b.waitFor(t, `body[data-ready="true"]`, chromedp.Reload())
		if out := evaluateIn[bool](t, b, `sessionStorage.getItem("creditd-key") === null && document.getElementById("app").hidden && !document.getElementById("login").hidden`); !out {
			t.Errorf("a 401 did not log the user out")
		}
		if got, want := b.text(t, "#login-error"), "Logged out, the API refused this key: Unauthorized: the API key is not valid (HTTP 401)"; got != want {
			t.Errorf("the login form says %q, want %q", got, want)
		}
		next := b.loads(t) + 1
		b.waitFor(t, fmt.Sprintf(`body[data-loads="%d"]`, next), chromedp.SendKeys("#api-key", key), chromedp.Click("#login-button"))
		if got, want := b.text(t, "#login-error"), "Could not log in: Unauthorized: the API key is not valid (HTTP 401)"; got != want {
			t.Errorf("logging in with the revoked key says %q, want %q", got, want)
		}
	})
}
