package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

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

// TestDashboardInChromium logs in with a tenant key in a real headless
// Chromium and checks that the numbers on screen are the API's.
func TestDashboardInChromium(t *testing.T) {
	t.Parallel()
	browser := chromiumPath(t)
	s := stack.Start(t)
	_, key := s.Tenant("acme")
	today := time.Now().UTC()
	must := func(method, path string, body any) map[string]any {
		return s.Must(http.StatusCreated, method, path, key, body)
	}
	must(http.MethodPost, "/v1/grants", map[string]any{"grant_id": "g1", "amount": "500", "expires_at": today.Add(10 * 24 * time.Hour).Format(time.RFC3339)})
	must(http.MethodPost, "/v1/grants", map[string]any{"grant_id": "g2", "amount": "40", "credit_type": "gpu"})
	var events []any
	for i := range 14 {
		events = append(events, map[string]any{"id": fmt.Sprintf("u%d", i), "amount": fmt.Sprintf("%d.5", i+1),
			"module": []string{"search", "enrich"}[i%2], "service": []string{"api", "batch", "api"}[i%3], "user_id": fmt.Sprintf("user-%d", i%4),
			"timestamp": today.Add(-time.Duration(i) * 24 * time.Hour).Format(time.RFC3339)})
	}
	s.Must(http.StatusOK, http.MethodPost, "/v1/usage", key, map[string]any{"events": events})
	must(http.MethodPost, "/v1/reservations", map[string]any{"reservation_id": "r1", "amount": "25"})
	s.Sync()

	balance := s.Must(http.StatusOK, http.MethodGet, "/v1/balance", key, nil)
	stats := s.Must(http.StatusOK, http.MethodGet, "/v1/stats?from="+today.AddDate(0, 0, -29).Format(time.DateOnly)+"&to="+today.Format(time.DateOnly), key, nil)
	ledger := s.Must(http.StatusOK, http.MethodGet, "/v1/ledger?limit=10", key, nil)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Headless,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1200, 1400))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	defer cancelTimeout()

	err := chromedp.Do(ctx,
		chromedp.Navigate(s.Server.URL+"/dashboard"),
		chromedp.WaitVisible("#api-key"),
		chromedp.SendKeys("#api-key", key),
		chromedp.Click("#login-button"),
		chromedp.WaitVisible(`body[data-ready="true"]`),
	)
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	read := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return v
	}
	rows := read(`[...document.querySelectorAll("#balances tbody tr")].map(tr => [...tr.children].map(td => td.textContent).join("|")).join("\n")`)
	spent := read(`document.getElementById("spent").textContent`)
	topService := read(`document.querySelector("#top-services li").dataset.total`)
	bars := read(`String(document.querySelectorAll("#chart rect").length)`)
	page := read(`document.getElementById("page").textContent`)
	screenshot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shot := filepath.Join(t.TempDir(), "dashboard.png")
	if err := os.WriteFile(shot, screenshot, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
	if keep := os.Getenv("CREDITD_DASHBOARD_SCREENSHOT"); keep != "" {
		os.WriteFile(keep, screenshot, 0o600)
	}

	var want []string
	for _, l := range balance["lines"].([]any) {
		line := l.(map[string]any)
		want = append(want, fmt.Sprintf("%v|%v|%v|%v|%v", line["credit_type"], line["available"], line["reserved"], line["used"], line["expiring_soon"]))
	}
	if rows != strings.Join(want, "\n") {
		t.Errorf("balance rows on screen:\n%s\nthe API says:\n%s", rows, strings.Join(want, "\n"))
	}
	if spent != fmt.Sprint(stats["spent"]) {
		t.Errorf("spent on screen %q, the API says %v", spent, stats["spent"])
	}
	if top := stats["top_services"].([]any)[0].(map[string]any); topService != fmt.Sprint(top["total"]) {
		t.Errorf("top service on screen %s, the API says %v", topService, top["total"])
	}
	cells := 0
	for _, d := range stats["daily"].([]any) {
		cells += len(d.(map[string]any)["by_module"].(map[string]any))
	}
	if bars != fmt.Sprint(cells) {
		t.Errorf("%s chart bars, the API has %d day-module cells", bars, cells)
	}
	if wantPage := fmt.Sprintf("1–10 of %v", ledger["total"]); page != wantPage {
		t.Errorf("ledger pager %q, want %q", page, wantPage)
	}
	if expiring := balance["lines"].([]any)[0].(map[string]any)["expiring_soon"]; fmt.Sprint(expiring) == "0" {
		t.Errorf("the grant expiring in 10 days shows no credits expiring soon")
	}
}
