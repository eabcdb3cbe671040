package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/creditd/creditd/internal/stack"
	"github.com/creditd/creditd/projections"
)

// compatRoutes lists the compat profiles' GET routes the served document
// describes, each with its documented query parameters, so that a new
// profile route is covered by the tests below without being named in them.
func compatRoutes(t *testing.T, s *stack.Stack) map[string][]string {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(s.Do(http.MethodGet, "/openapi.json", "", nil).Body, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for path, ops := range doc.Paths {
		op, ok := ops["get"]
		if !strings.HasPrefix(path, "/compat/") || !ok {
			continue
		}
		out[path] = []string{}
		for _, p := range op.Parameters {
			if p.In == "query" {
				out[path] = append(out[path], p.Name)
			}
		}
	}
	return out
}

// compatQueryValues are valid values of the profiles' required query
// parameters.
var compatQueryValues = map[string]string{"from": "2026-03-01", "to": "2026-03-15", "start_date": "2026-03-01", "end_date": "2026-03-15"}

// TestCompatProfilesIgnoreUnknownQueryParameters walks every compat route
// with a cache buster and a tracking parameter added: the seeds' clients
// send such parameters, and their APIs answer as without them. The native
// API keeps refusing them.
func TestCompatProfilesIgnoreUnknownQueryParameters(t *testing.T) {
	t.Parallel()
	w := buildCompatScenario(t, "unknown-params")
	s, key := w.s, w.m.key
	routes := compatRoutes(t, s)
	profiles := map[string]bool{}
	for path := range routes {
		profiles[strings.Split(path, "/")[2]] = true
	}
	if len(profiles) != 5 {
		t.Fatalf("the document lists the profiles %v, want the five", sortedKeys(profiles))
	}
	paths := sortedKeys(routes)
	for _, path := range paths {
		t.Run(path, func(t *testing.T) {
			var known []string
			for _, name := range routes[path] {
				if v, ok := compatQueryValues[name]; ok {
					known = append(known, name+"="+v)
				}
			}
			plain := path
			if len(known) > 0 {
				plain += "?" + strings.Join(known, "&")
			}
			sep := "?"
			if len(known) > 0 {
				sep = "&"
			}
			withJunk := plain + sep + "_=1&utm_source=x"
			want := fetch(t, s, http.MethodGet, plain, key, nil)
			got := fetch(t, s, http.MethodGet, withJunk, key, nil)
			if want.Status != http.StatusOK {
				t.Fatalf("%s: status %d: %s", plain, want.Status, want.Body)
			}
			if got.Status != http.StatusOK {
				t.Fatalf("%s: status %d, want 200 as without the unknown parameters: %s", withJunk, got.Status, got.Body)
			}
			if string(got.Body) != string(want.Body) {
				t.Errorf("%s answers\n%s\nwithout the unknown parameters\n%s", withJunk, got.Body, want.Body)
			}
		})
	}

	t.Run("the native API still refuses an unknown parameter", func(t *testing.T) {
		fetch(t, s, http.MethodGet, "/v1/balance?_=1", key, nil).problem(t, http.StatusBadRequest, "query._")
	})
}

// breakReadModels drops read-model tables behind the projection's back, so
// that the reads of the profiles fail as a broken database would: a 500.
func breakReadModels(t *testing.T, s *stack.Stack, tables ...string) {
	t.Helper()
	for _, table := range tables {
		if _, err := projections.WriterForTests(s.DB).Exec("DROP TABLE " + table); err != nil {
			t.Fatalf("drop %s: %v", table, err)
		}
	}
}

// positionNeverReached is a min_position the read models do not reach
// within the 5 s a read waits for it: a 503 on the native API.
const positionNeverReached = "?min_position=999999999"

// TestCompatProfilesAnswerUnknownPathsAndMethodsInTheirErrorShape: a
// client of a profile that calls a path or a method its seed does not have
// still gets its seed's error shape.
func TestCompatProfilesAnswerUnknownPathsAndMethodsInTheirErrorShape(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(compatEpoch)
	_, key := s.Tenant("shapes")
	for _, c := range []struct {
		profile, route string
		check          func(t *testing.T, r response, status int)
	}{
		{"tamtam", tamtamCreditsPath, func(t *testing.T, r response, status int) { checkErrorModel(t, r, status) }},
		{"openrouter", openrouterCreditsPath, func(t *testing.T, r response, status int) { checkOpenRouterError(t, r, status) }},
		{"lasso", lassoStatsPath, func(t *testing.T, r response, status int) { r.problem(t, status) }},
	} {
		t.Run(c.profile, func(t *testing.T) {
			c.check(t, fetch(t, s, http.MethodPost, c.route, key, nil), http.StatusMethodNotAllowed)
			c.check(t, fetch(t, s, http.MethodGet, "/compat/"+c.profile+"/no/such/route", key, nil), http.StatusNotFound)
		})
	}
	t.Run("a path that only starts like a profile's is the native API's", func(t *testing.T) {
		fetch(t, s, http.MethodGet, "/compat/tamtamx/api", key, nil).problem(t, http.StatusNotFound)
		fetch(t, s, http.MethodGet, "/compat/openrouterx", key, nil).problem(t, http.StatusNotFound)
	})
}
