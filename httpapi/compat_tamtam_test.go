package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/internal/stack"
)

const tamtamCreditsPath = "/compat/tamtam/api/v2/credits"

// errorModelMembers are the members the seed's ErrorModel allows
// (additionalProperties: false), and errorDetailMembers those of its
// ErrorDetail.
var (
	errorModelMembers  = map[string]bool{"type": true, "title": true, "status": true, "detail": true, "instance": true, "errors": true}
	errorDetailMembers = map[string]bool{"location": true, "message": true, "value": true}
)

// checkErrorModel checks that r is a problem of status holding the seed's
// ErrorModel members and nothing else (no request_id), each of its JSON type.
func checkErrorModel(t *testing.T, r response, status int) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	m := r.object(t)
	for k := range m {
		if !errorModelMembers[k] {
			t.Errorf("the problem has the member %q, which the seed's ErrorModel does not allow: %s", k, r.Body)
		}
	}
	for _, k := range []string{"type", "title", "detail", "instance"} {
		if v, ok := m[k].(string); !ok || v == "" {
			t.Errorf("%s = %#v, want a non-empty string: %s", k, m[k], r.Body)
		}
	}
	wantInt(t, m, "status", int64(status))
	wantString(t, m, "title", http.StatusText(status))
	if v, present := m["errors"]; present && v != nil {
		items, ok := v.([]any)
		if !ok {
			t.Fatalf("errors = %#v, want an array or null", v)
		}
		for _, it := range items {
			detail := obj(t, it, "errors[]")
			for k := range detail {
				if !errorDetailMembers[k] {
					t.Errorf("an error detail has the member %q, which the seed's ErrorDetail does not allow: %s", k, r.Body)
				}
			}
			for _, k := range []string{"location", "message"} {
				if _, ok := detail[k].(string); !ok {
					t.Errorf("errors[].%s = %#v, want a string", k, detail[k])
				}
			}
		}
	}
	return m
}

// fetchAuth GETs path with the Authorization header as given.
func fetchAuth(t *testing.T, s *stack.Stack, path, authorization string) response {
	t.Helper()
	return fetch(t, s, http.MethodGet, path, "", nil, "Authorization", authorization)
}

// TestCompatTamtam checks the tamtam profile (seed 002) against the compat
// scenario: per credit line, the usage of its current period, what it can
// spend now and their sum, as int32 integers; errors in the seed's exact
// ErrorModel.
func TestCompatTamtam(t *testing.T) {
	t.Parallel()
	w := buildCompatScenario(t, "tamtam")
	s, key := w.s, w.m.key

	t.Run("the answer has the seed's members and types", func(t *testing.T) {
		checkShape(t, "tamtam", "credits", fetch(t, s, http.MethodGet, tamtamCreditsPath, key, nil))
	})

	t.Run("each line shows its current period's usage and what it can spend now, in integers", func(t *testing.T) {
		got := read(t, s, tamtamCreditsPath, key)
		checkTamtamLines(t, got, w)
		// By hand. default: sub-pro's period 18 February to 18 March holds
		// u1..u7 and the capture, 498.75 (u5 of 20 February included);
		// spendable: balance 52076 − 15 held − g-future's 100 not yet
		// effective = 51961. MaxKeyAccountsUnlocked, without a
		// subscription: March, u-keys 10 of g-keys 5000. legacy: nothing
		// used in March, nothing left: not listed.
		byType := tamtamByType(t, got)
		if _, present := byType["legacy"]; present {
			t.Errorf("the legacy line, with nothing used this month and nothing left, is listed: %v", byType["legacy"])
		}
		wantTamtamLine(t, byType["default"], "499", "51961", "52460")
		wantTamtamLine(t, byType["MaxKeyAccountsUnlocked"], "10", "4990", "5000")
	})

	t.Run("the bare key in Authorization is accepted as well as a Bearer one", func(t *testing.T) {
		bare := fetchAuth(t, s, tamtamCreditsPath, key)
		bearer := fetchAuth(t, s, tamtamCreditsPath, "Bearer "+key)
		if bare.Status != http.StatusOK || bearer.Status != http.StatusOK {
			t.Fatalf("bare key: %d %s; Bearer: %d %s", bare.Status, bare.Body, bearer.Status, bearer.Body)
		}
		if string(bare.Body) != string(bearer.Body) {
			t.Errorf("the bare key answers %s, the Bearer key %s", bare.Body, bearer.Body)
		}
	})

	t.Run("a bad or missing key is a 401 in the seed's ErrorModel, without request_id", func(t *testing.T) {
		for name, auth := range map[string]string{"bare": badKey, "bearer": "Bearer " + badKey, "missing": "", "two words": "Token " + key} {
			t.Run(name, func(t *testing.T) {
				m := checkErrorModel(t, fetchAuth(t, s, tamtamCreditsPath, auth), http.StatusUnauthorized)
				if _, present := m["request_id"]; present {
					t.Errorf("the problem carries request_id")
				}
				wantString(t, m, "instance", tamtamCreditsPath)
			})
		}
	})

	t.Run("a 400 is in the seed's ErrorModel as well, with its error details", func(t *testing.T) {
		m := checkErrorModel(t, fetch(t, s, http.MethodGet, tamtamCreditsPath+"?min_position=soon", key, nil), http.StatusBadRequest)
		details, _ := m["errors"].([]any)
		if len(details) != 1 || obj(t, details[0], "errors[0]")["location"] != "query.min_position" {
			t.Errorf("errors = %v, want one naming query.min_position", m["errors"])
		}
	})

	t.Run("read models that are late answer a 503 in the seed's ErrorModel", func(t *testing.T) {
		r := fetch(t, s, http.MethodGet, tamtamCreditsPath+positionNeverReached, key, nil)
		checkErrorModel(t, r, http.StatusServiceUnavailable)
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("the 503 has no Retry-After")
		}
	})

	t.Run("another method or an unknown path is in the seed's ErrorModel", func(t *testing.T) {
		checkErrorModel(t, fetch(t, s, http.MethodPost, tamtamCreditsPath, key, nil), http.StatusMethodNotAllowed)
		checkErrorModel(t, fetch(t, s, http.MethodDelete, tamtamCreditsPath, "", nil), http.StatusMethodNotAllowed)
		checkErrorModel(t, fetch(t, s, http.MethodGet, "/compat/tamtam/api/v2/credit", key, nil), http.StatusNotFound)
	})

	t.Run("unknown query parameters are ignored", func(t *testing.T) {
		want := fetch(t, s, http.MethodGet, tamtamCreditsPath, key, nil)
		got := fetch(t, s, http.MethodGet, tamtamCreditsPath+"?page=2&_=1700000000&utm_source=mail", key, nil)
		if got.Status != http.StatusOK || string(got.Body) != string(want.Body) {
			t.Errorf("with unknown parameters: %d %s; without: %d %s", got.Status, got.Body, want.Status, want.Body)
		}
	})

	t.Run("a tenant without grants has an empty list", func(t *testing.T) {
		fresh := newTenant(t, s, "tamtam-fresh", "USD")
		s.Sync()
		r := fetch(t, s, http.MethodGet, tamtamCreditsPath, fresh.key, nil)
		got := r.want(t, http.StatusOK)
		if items, ok := got["credits"].([]any); !ok || len(items) != 0 {
			t.Errorf("credits = %#v, want []", got["credits"])
		}
	})

	t.Run("a new month without a subscription starts from zero used; a grant that takes effect counts", func(t *testing.T) {
		// Last, as it moves the clock on: 1 April 2026 brings g-future in;
		// sub-pro ended with its period on 18 March, so the default line's
		// period is April, without usage yet.
		w.advance(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).Sub(w.now()))
		got := read(t, s, tamtamCreditsPath, key)
		checkTamtamLines(t, got, w)
		// By hand: g-main 2000 and g-future 100; r-open's week ended on 22
		// March, its 15 went with sub-pro's expired grant.
		wantTamtamLine(t, tamtamByType(t, got)["default"], "0", "2100", "2100")
	})
}

// TestCompatTamtamSeedExample reproduces the seed's example line:
// 5000 total, 10 used, 4990 remaining.
func TestCompatTamtamSeedExample(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(compatEpoch)
	m := newTenant(t, s, "tamtam-seed", "USD")
	m.grant("keys", "MaxKeyAccountsUnlocked", "5000", nil)
	m.use(usageEv{id: "k1", creditType: "MaxKeyAccountsUnlocked", at: compatEpoch.Add(-time.Hour), amount: "10", module: "keys"})
	s.Sync()

	t.Run("the answer is the seed's example line, integers and all", func(t *testing.T) {
		r := fetch(t, s, http.MethodGet, tamtamCreditsPath, m.key, nil)
		got := decodeAny(t, r.Body)
		var want any = map[string]any{"credits": []any{map[string]any{"credit_type": "MaxKeyAccountsUnlocked",
			"remaining_credits": json.Number("4990"), "total_credits": json.Number("5000"), "used_credits": json.Number("10")}}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("answer %s, want %v", r.Body, want)
		}
	})
}

// TestCompatTamtamServerError: a broken database answers a 500 in the
// seed's ErrorModel, with nothing internal in it.
func TestCompatTamtamServerError(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	_, key := s.Tenant("tamtam-broken")
	s.Sync()
	breakReadModels(t, s, "lines", "grants")
	m := checkErrorModel(t, fetch(t, s, http.MethodGet, tamtamCreditsPath, key, nil), http.StatusInternalServerError)
	if detail, _ := m["detail"].(string); strings.Contains(detail, "lines") || strings.Contains(detail, "grants") {
		t.Errorf("the detail %q tells what failed inside", detail)
	}
}

// TestCompatTamtamCurrentPeriod works the seed's "in current period" by
// hand on a line without a subscription, whose period is the calendar
// month: usage of this month whichever grant paid it, what can be spent
// now, and their sum.
func TestCompatTamtamCurrentPeriod(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(compatEpoch) // 15 March 2026, 12:00
	w := newCompatWorld(t, s, "tamtam-period", "USD")
	w.grant("soon", "", "100", map[string]any{"expires_at": "2026-03-15T13:00:00Z"})
	w.grant("main", "", "1000", nil)
	w.grant("later", "", "500", map[string]any{"effective_at": "2026-03-22T00:00:00Z"})
	// Both paid by soon, which expires first; last month's is not this
	// month's usage.
	w.use(usageEv{id: "february", at: time.Date(2026, 2, 27, 10, 0, 0, 0, time.UTC), amount: "40", module: "chat"},
		usageEv{id: "today", at: compatEpoch.Add(-10 * time.Minute), amount: "30", module: "chat"})
	w.adjust("goodwill", "", "25.5", "goodwill", "")
	w.advance(2 * time.Hour) // soon expires with its 30 left
	w.reserve(usageEv{id: "hold", amount: "50", module: "chat"})
	s.Sync()

	got := read(t, s, tamtamCreditsPath, w.m.key)
	// used: today's 30, though soon, which paid it, has expired;
	// remaining: main 1000 − 50 held + 25.5 adjusted, later not yet
	// effective = 975.5, shown 975; total 30 + 975.
	wantTamtamLine(t, tamtamByType(t, got)["default"], "30", "975", "1005")
	checkTamtamLines(t, got, w)
}

// TestCompatTamtamSubscriptionPeriod: a line with a subscription counts
// the usage of the subscription's current period, to the microsecond of
// its start, less what was reversed.
func TestCompatTamtamSubscriptionPeriod(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(compatEpoch)
	w := newCompatWorld(t, s, "tamtam-subscription", "USD")
	// The period runs from 1 March 10:30 to 1 April 10:30.
	w.subscribe(subModel{id: "team", ct: "seats", credits: dec("1000"), price: dec("50"), currency: "EUR",
		starts: time.Date(2026, 2, 1, 10, 30, 0, 0, time.UTC)})
	day := func(d, h, m int) time.Time { return time.Date(2026, 3, d, h, m, 0, 0, time.UTC) }
	w.use(usageEv{id: "before", creditType: "seats", at: day(1, 10, 29), amount: "7", module: "seat"},
		usageEv{id: "first", creditType: "seats", at: day(1, 10, 30), amount: "11.25", module: "seat"},
		usageEv{id: "edge-undone", creditType: "seats", at: day(1, 12, 0), amount: "13", module: "seat"},
		usageEv{id: "mid", creditType: "seats", at: day(10, 8, 0), amount: "17", module: "seat"},
		usageEv{id: "mid-undone", creditType: "seats", at: day(10, 9, 0), amount: "19", module: "seat"},
		usageEv{id: "other-line", at: day(10, 9, 0), amount: "0", module: "seat"})
	for _, id := range []string{"edge-undone", "mid-undone"} {
		fetch(t, s, http.MethodPost, "/v1/usage/"+id+"/reverse", w.m.key, map[string]any{"reason": "test"}).want(t, http.StatusOK)
	}
	s.Sync()

	got := read(t, s, tamtamCreditsPath, w.m.key)
	// used: first 11.25 + mid 17 = 28.25, shown 29; 7 of 1 March 10:29
	// was the period before. remaining: the allocations of February and
	// March (the first expired on 1 March) 1000 − (7 + 11.25 + 17) kept
	// = 964.75, shown 964.
	wantTamtamLine(t, tamtamByType(t, got)["seats"], "29", "964", "993")
}

// TestCompatTamtamIntegers: the seed's members are int32 integers. Used
// rounds up and remaining down, so that neither shows more to spend than
// there is, and total is their sum; past int32 each is clamped.
func TestCompatTamtamIntegers(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(compatEpoch)
	w := newCompatWorld(t, s, "tamtam-integers", "USD")
	w.grant("g", "", "50000", nil)
	w.use(usageEv{id: "half", at: compatEpoch.Add(-time.Hour), amount: "12.5", module: "chat"})
	w.reserve(usageEv{id: "quarter", amount: "0.25", module: "chat"})
	w.grant("huge", "huge", "5000000000", nil)
	w.use(usageEv{id: "lots", creditType: "huge", at: compatEpoch.Add(-time.Hour), amount: "3000000000", module: "chat"})
	w.grant("big", "big", "3000000000.5", nil)
	fetch(t, s, http.MethodPut, "/v1/credit-lines/debt", w.m.key, map[string]any{"overdraft_limit": "100"}).want(t, http.StatusOK)
	w.use(usageEv{id: "borrowed", creditType: "debt", at: compatEpoch.Add(-time.Hour), amount: "30.5", module: "chat"})
	s.Sync()

	r := fetch(t, s, http.MethodGet, tamtamCreditsPath, w.m.key, nil)
	for _, number := range jsonNumbers(r.Body) {
		if strings.ContainsAny(number, ".eE") {
			t.Errorf("the answer holds the number %s, not an integer: %s", number, r.Body)
		}
	}
	byType := tamtamByType(t, r.want(t, http.StatusOK))
	// 12.5 used shows 13, 49987.25 left shows 49987: 50000 in all.
	wantTamtamLine(t, byType["default"], "13", "49987", "50000")
	// 3e9 used and 2e9 left: used and total clamped.
	wantTamtamLine(t, byType["huge"], "2147483647", "2000000000", "2147483647")
	wantTamtamLine(t, byType["big"], "0", "2147483647", "2147483647")
	// In debt: −30.5 shows −31, 30.5 used shows 31.
	wantTamtamLine(t, byType["debt"], "31", "-31", "0")
}

// jsonNumbers lists the text of every number in a JSON document.
func jsonNumbers(data []byte) []string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case json.Number:
			out = append(out, x.String())
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	d := json.NewDecoder(strings.NewReader(string(data)))
	d.UseNumber()
	var v any
	if d.Decode(&v) == nil {
		walk(v)
	}
	return out
}

// ---- the model of the tamtam answer ----

// int32Max is the largest value of the seed's int32 members.
const int32Max = 2147483647

// tamtamPeriod is the current period of line ct at now: that of its
// active subscription started first, else the calendar month (UTC).
func tamtamPeriod(w *compatWorld, ct string, now time.Time) (start, end time.Time, subscribed bool) {
	var first *subModel
	for _, sub := range w.subs {
		active := !now.Before(sub.starts) && (sub.cancelAt == nil || now.Before(*sub.cancelAt))
		if ctOr(sub.ct) == ct && active && (first == nil || sub.starts.Before(first.starts)) {
			first = sub
		}
	}
	if first != nil {
		start, end = first.currentPeriod(now)
		return start, end, true
	}
	start = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	return start, start.AddDate(0, 1, 0), false
}

// spendableNow is what line ct can spend at now (domain/README.md's
// free(now)): the unpinned credits of its active grants, plus its
// unallocated balance, less the holds pinned to no grant.
func (b *grantBook) spendableNow(ct string, now time.Time, holdLine func(id string) string) decimal.Decimal {
	free := b.unallocated[ct]
	for _, g := range b.grants {
		if g.ct == ct && g.activeAt(now) {
			free = free.Add(g.remaining.Sub(g.held))
		}
	}
	for id, pins := range b.pins {
		for _, p := range pins {
			if p.g == nil && holdLine(id) == ct {
				free = free.Sub(p.amount)
			}
		}
	}
	return free
}

// tamtamWant is one line as the profile must show it: exact figures, then
// as written.
type tamtamWant struct {
	used, remaining                 decimal.Decimal
	usedOut, remainingOut, totalOut int64
}

// clampInt32 keeps v within the seed's int32.
func clampInt32(v decimal.Decimal) int64 {
	return max(min(v.IntPart(), int32Max), -int32Max-1)
}

// tamtamExpected is every line the profile must list at the world's now:
// those with an active subscription, usage in their period or credits to
// spend. Used rounds up and remaining down, so neither shows more to
// spend than there is; total is their sum.
func tamtamExpected(w *compatWorld) map[string]tamtamWant {
	now := w.now()
	lines := map[string]bool{}
	for _, g := range w.book.grants {
		lines[g.ct] = true
	}
	for ct := range w.book.unallocated {
		lines[ct] = true
	}
	for _, r := range w.m.usage {
		lines[r.creditType] = true
	}
	holdLine := func(id string) string { return ctOr(w.m.holds[id].creditType) }
	out := map[string]tamtamWant{}
	for ct := range lines {
		start, end, subscribed := tamtamPeriod(w, ct, now)
		var used decimal.Decimal
		for _, r := range w.m.usage {
			if r.creditType == ct && !r.at.Before(start) && r.at.Before(end) {
				used = used.Add(r.credits)
			}
		}
		remaining := w.book.spendableNow(ct, now, holdLine)
		if !subscribed && used.IsZero() && remaining.IsZero() {
			continue
		}
		usedOut, remainingOut := clampInt32(used.Ceil()), clampInt32(remaining.Floor())
		out[ct] = tamtamWant{used: used, remaining: remaining, usedOut: usedOut, remainingOut: remainingOut,
			totalOut: clampInt32(decimal.NewFromInt(usedOut + remainingOut))}
	}
	return out
}

// tamtamByType indexes the answer's lines by credit type.
func tamtamByType(t *testing.T, got map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, l := range list(t, got["credits"], "credits") {
		ct, _ := l["credit_type"].(string)
		if _, seen := out[ct]; seen {
			t.Errorf("the line %q is listed twice", ct)
		}
		out[ct] = l
	}
	return out
}

// checkTamtamLines holds the answer against the model: the same lines,
// each with the model's integers.
func checkTamtamLines(t *testing.T, got map[string]any, w *compatWorld) {
	t.Helper()
	want := tamtamExpected(w)
	byType := tamtamByType(t, got)
	if len(byType) != len(want) {
		t.Errorf("lines %v, want %v", sortedKeys(byType), sortedKeys(want))
	}
	for ct, wl := range want {
		l, ok := byType[ct]
		if !ok {
			t.Errorf("the line %q is missing: %v", ct, got["credits"])
			continue
		}
		wantTamtamLine(t, l, fmt.Sprint(wl.usedOut), fmt.Sprint(wl.remainingOut), fmt.Sprint(wl.totalOut))
	}
}

// wantTamtamLine checks one line's three integers.
func wantTamtamLine(t *testing.T, l map[string]any, used, remaining, total string) {
	t.Helper()
	if l == nil {
		t.Errorf("the line is missing")
		return
	}
	wantNumber(t, l, "used_credits", used)
	wantNumber(t, l, "remaining_credits", remaining)
	wantNumber(t, l, "total_credits", total)
}
