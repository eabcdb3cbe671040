package httpapi_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

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
// scenario: per credit line, the active grants' original total, what was
// burned from them and what remains; errors in the seed's exact ErrorModel.
func TestCompatTamtam(t *testing.T) {
	t.Parallel()
	w := buildCompatScenario(t, "tamtam")
	s, key := w.s, w.m.key

	t.Run("the answer has the seed's members and types", func(t *testing.T) {
		checkShape(t, "tamtam", "credits", fetch(t, s, http.MethodGet, tamtamCreditsPath, key, nil))
	})

	t.Run("each line with active grants shows their total, what was burned from them and what remains", func(t *testing.T) {
		got := read(t, s, tamtamCreditsPath, key)
		lines := list(t, got["credits"], "credits")
		want := w.book.active(w.now())
		var names []string
		for ct := range want {
			names = append(names, ct)
		}
		sort.Strings(names)
		if len(lines) != len(names) {
			t.Fatalf("%d lines, want %v: %v", len(lines), names, got["credits"])
		}
		seen := map[string]bool{}
		for _, l := range lines {
			ct, _ := l["credit_type"].(string)
			a, ok := want[ct]
			if !ok || seen[ct] {
				t.Errorf("unexpected or repeated line %v", l)
				continue
			}
			seen[ct] = true
			// Whole values are written as JSON integers.
			wantText(t, l, "total_credits", a.total)
			wantText(t, l, "used_credits", a.used)
			wantText(t, l, "remaining_credits", a.remaining)
		}
		// By hand: MaxKeyAccountsUnlocked 5000, 10 used; default's active
		// grants are sub-pro 50000 and g-main 2000 (g-soon expired, g-future
		// not yet effective), 19.5 (u7) + 4.5 (adj-fix) burned from sub-pro;
		// legacy has none left active.
		byType := map[string]map[string]any{}
		for _, l := range lines {
			byType[l["credit_type"].(string)] = l
		}
		if _, present := byType["legacy"]; present {
			t.Errorf("the legacy line, whose only grant expired, is listed: %v", byType["legacy"])
		}
		if l := byType["MaxKeyAccountsUnlocked"]; l != nil {
			wantNumber(t, l, "total_credits", "5000")
			wantNumber(t, l, "used_credits", "10")
			wantNumber(t, l, "remaining_credits", "4990")
		}
		if l := byType["default"]; l != nil {
			wantNumber(t, l, "total_credits", "52000")
			wantNumber(t, l, "used_credits", "24")
			wantNumber(t, l, "remaining_credits", "51976")
		}
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

	t.Run("a grant stops counting when it expires and starts when it takes effect", func(t *testing.T) {
		// Last, as it moves the clock on: 1 April 2026 brings g-future in;
		// sub-pro's period ended on 18 March (and it was canceled).
		w.advance(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC).Sub(w.now()))
		got := read(t, s, tamtamCreditsPath, key)
		want := w.book.active(w.now())
		lines := list(t, got["credits"], "credits")
		if len(lines) != len(want) {
			t.Errorf("%d lines, want %d: %v", len(lines), len(want), got["credits"])
		}
		for _, l := range lines {
			a := want[l["credit_type"].(string)]
			if a == nil {
				t.Errorf("unexpected line %v", l)
				continue
			}
			wantText(t, l, "total_credits", a.total)
			wantText(t, l, "used_credits", a.used)
			wantText(t, l, "remaining_credits", a.remaining)
			if l["credit_type"] == "default" {
				wantNumber(t, l, "total_credits", "2100") // by hand: g-main and g-future
				wantNumber(t, l, "used_credits", "0")
			}
		}
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
