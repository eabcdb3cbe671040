package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/internal/stack"
)

const openrouterCreditsPath = "/compat/openrouter/api/v1/credits"

// TestCompatOpenrouter checks the openrouter profile (seed 004) against the
// compat scenario: total credits (granted + adjusted − expired) and total
// usage.
func TestCompatOpenrouter(t *testing.T) {
	t.Parallel()
	w := buildCompatScenario(t, "openrouter")
	s, key := w.s, w.m.key

	t.Run("the answer has the seed's members and types", func(t *testing.T) {
		checkShape(t, "openrouter", "credits", fetch(t, s, http.MethodGet, openrouterCreditsPath, key, nil))
	})

	t.Run("total credits are granted plus adjusted minus expired and not yet effective, total usage is used", func(t *testing.T) {
		data := obj(t, read(t, s, openrouterCreditsPath, key)["data"], "data")
		total := w.total()
		wantDec(t, data, "total_credits", total.granted.Add(total.adjusted).Sub(total.expired).Sub(w.book.notYetEffective(w.now())))
		wantDec(t, data, "total_usage", total.used)
		// By hand: 58140 − 4.5 − 560.75 − g-future's 100 (effective on
		// 1 April); usage 436.5 + 10 + 19.5 and the 42.75 captured.
		wantNumber(t, data, "total_credits", "57474.75")
		wantNumber(t, data, "total_usage", "508.75")
	})

	t.Run("unknown query parameters are ignored", func(t *testing.T) {
		want := fetch(t, s, http.MethodGet, openrouterCreditsPath, key, nil)
		got := fetch(t, s, http.MethodGet, openrouterCreditsPath+"?_=1700000000&utm_source=mail&utm_campaign=x", key, nil)
		if got.Status != http.StatusOK || string(got.Body) != string(want.Body) {
			t.Errorf("with unknown parameters: %d %s; without: %d %s", got.Status, got.Body, want.Status, want.Body)
		}
	})

	t.Run("a bad or missing key is a 401 in the seed API's error object", func(t *testing.T) {
		checkOpenRouterError(t, fetch(t, s, http.MethodGet, openrouterCreditsPath, badKey, nil), http.StatusUnauthorized)
		checkOpenRouterError(t, fetch(t, s, http.MethodGet, openrouterCreditsPath, "", nil), http.StatusUnauthorized)
	})

	t.Run("a 400 is an error object too, its message naming the parameter", func(t *testing.T) {
		m := checkOpenRouterError(t, fetch(t, s, http.MethodGet, openrouterCreditsPath+"?min_position=soon", key, nil), http.StatusBadRequest)
		if !strings.Contains(m, "query.min_position") {
			t.Errorf("message %q does not name query.min_position", m)
		}
	})

	t.Run("read models that are late answer a 503 error object", func(t *testing.T) {
		r := fetch(t, s, http.MethodGet, openrouterCreditsPath+positionNeverReached, key, nil)
		checkOpenRouterError(t, r, http.StatusServiceUnavailable)
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("the 503 has no Retry-After")
		}
	})
}

// TestCompatOpenrouterServerError: a broken database answers a 500 in the
// error object, with nothing internal in its message.
func TestCompatOpenrouterServerError(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	_, key := s.Tenant("openrouter-broken")
	s.Sync()
	breakReadModels(t, s, "lines")
	m := checkOpenRouterError(t, fetch(t, s, http.MethodGet, openrouterCreditsPath, key, nil), http.StatusInternalServerError)
	if strings.Contains(m, "lines") || strings.Contains(m, "SQL") {
		t.Errorf("the message %q tells what failed inside", m)
	}
}

// checkOpenRouterError checks that r is the seed API's error answer, which
// its SDK maps to a typed error by code: application/json holding only
// {"error": {"code": <status>, "message": "…"}}. It returns the message.
func checkOpenRouterError(t *testing.T, r response, status int) string {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	m := r.object(t)
	if len(m) != 1 {
		t.Errorf("the answer has members %v, want only error: %s", sortedKeys(m), r.Body)
	}
	e := obj(t, m["error"], "error")
	if len(e) != 2 {
		t.Errorf("error has members %v, want code and message: %s", sortedKeys(e), r.Body)
	}
	wantInt(t, e, "code", int64(status))
	message, _ := e["message"].(string)
	if message == "" {
		t.Errorf("error.message = %#v, want a non-empty string: %s", e["message"], r.Body)
	}
	return message
}

// TestCompatOpenrouterExample is a small scenario worked by hand (the seed
// gives no numbers): credits bought, used, held, captured, adjusted and
// expired.
func TestCompatOpenrouterExample(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(compatEpoch)
	w := newCompatWorld(t, s, "openrouter-example", "USD")
	w.grant("g1", "", "100", nil)
	w.grant("g2", "", "20", map[string]any{"expires_at": compatEpoch.Add(time.Hour).Format(time.RFC3339)})
	w.use(usageEv{id: "chat-1", at: compatEpoch.Add(-time.Minute), amount: "12.5", module: "chat"})
	w.reserve(usageEv{id: "job", amount: "5", module: "chat"})
	w.capture("job", "2.25")
	w.adjust("bonus", "", "10", "goodwill", "")
	w.advance(2 * time.Hour) // g2 expires: 20 − 12.5 − 2.25 = 5.25 left of it
	// Held after the expiry (before it, the hold would pin g2's 5.25).
	w.reserve(usageEv{id: "open", amount: "30", module: "chat"})
	s.Sync()

	t.Run("the credits are 124.75 and the usage 14.75", func(t *testing.T) {
		got := read(t, s, openrouterCreditsPath, w.m.key)
		if len(got) != 1 {
			t.Errorf("the answer has members %v, want only data", sortedKeys(got))
		}
		data := obj(t, got["data"], "data")
		if len(data) != 2 {
			t.Errorf("data has members %v, want total_credits and total_usage", sortedKeys(data))
		}
		// 100 + 20 granted, + 10 adjusted, − 5.25 expired; the open hold of 30 counts in neither.
		wantNumber(t, data, "total_credits", "124.75")
		wantNumber(t, data, "total_usage", "14.75")
		total := w.total()
		wantDec(t, data, "total_credits", total.granted.Add(total.adjusted).Sub(total.expired))
		wantDec(t, data, "total_usage", total.used)
	})

	t.Run("a grant counts once it takes effect, as in the other profiles", func(t *testing.T) {
		w.grant("next-week", "", "1000", map[string]any{"effective_at": w.now().Add(7 * 24 * time.Hour).Format(time.RFC3339)})
		s.Sync()
		data := obj(t, read(t, s, openrouterCreditsPath, w.m.key)["data"], "data")
		wantNumber(t, data, "total_credits", "124.75")
		w.advance(7 * 24 * time.Hour)
		data = obj(t, read(t, s, openrouterCreditsPath, w.m.key)["data"], "data")
		// The hold "open" ended with the same week: a release, which
		// changes neither figure.
		wantNumber(t, data, "total_credits", "1124.75")
		wantNumber(t, data, "total_usage", "14.75")
	})
}

// notYetEffective sums the grants that cannot pay yet at now: effective
// later, untouched until then.
func (b *grantBook) notYetEffective(now time.Time) decimal.Decimal {
	var sum decimal.Decimal
	for _, g := range b.grants {
		if now.Before(g.effective) {
			sum = sum.Add(g.remaining)
		}
	}
	return sum
}
