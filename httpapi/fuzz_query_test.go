package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/creditd/creditd/internal/stack"
)

// fuzzReadRoutes are the native reads that take query parameters.
var fuzzReadRoutes = []string{"/v1/ledger", "/v1/usage", "/v1/stats", "/v1/balance"}

// FuzzQueryStrings sends any query string to every native read of a
// running creditd: the answer is a success or a 400 problem naming a
// query. location, never a 5xx.
func FuzzQueryStrings(f *testing.F) {
	for i := range fuzzReadRoutes {
		for _, query := range []string{"", "limit=2", "limit=abc", "limit=2&limit=3", "module=x;y", "%zz", "module=%ff", "cursor=a&offset=1",
			"from=2026-01-01&to=2026-02-01", "group_by=module,user_id&module=a&module=b", "type=debit&type=credit", "credit_type=x y", "custom.k=v", "=", "&&", "a=%2"} {
			f.Add(uint8(i), query)
		}
	}
	s := stack.Start(f)
	_, key := s.Tenant("fuzz")
	f.Fuzz(func(t *testing.T, route uint8, query string) {
		if strings.ContainsAny(query, "# \t\r\n") || strings.ContainsFunc(query, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
			t.Skip("not a query a client can send in a request line")
		}
		if values, err := url.ParseQuery(query); err == nil && values.Has("min_position") {
			// A position the read models have not reached is a 503 by
			// design (retry later), after a 5 s wait.
			t.Skip("min_position waits")
		}
		path := fuzzReadRoutes[int(route)%len(fuzzReadRoutes)]
		req, err := http.NewRequest(http.MethodGet, s.Server.URL+path, nil)
		if err != nil {
			t.Skip(err)
		}
		req.URL.RawQuery = query
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := s.Server.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode >= 500:
			t.Fatalf("GET %s?%s: %d %s", path, query, resp.StatusCode, answer)
		case resp.StatusCode >= 400:
			var p struct {
				Status int `json:"status"`
				Errors []struct {
					Location string `json:"location"`
				} `json:"errors"`
			}
			if resp.Header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(answer, &p) != nil || p.Status != resp.StatusCode {
				t.Fatalf("GET %s?%s: %d is no problem: %s", path, query, resp.StatusCode, answer)
			}
			if len(p.Errors) == 0 {
				t.Fatalf("GET %s?%s: %d names no location: %s", path, query, resp.StatusCode, answer)
			}
			for _, e := range p.Errors {
				if !strings.HasPrefix(e.Location, "query.") || e.Location == "query." {
					t.Fatalf("GET %s?%s: location %q is not a query parameter: %s", path, query, e.Location, answer)
				}
			}
		}
	})
}
