package httpapi_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/creditd/creditd/internal/stack"
)

// fuzzRoutes are the API's JSON-body routes, each decoded by its own type.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/v1/grants"}, {"POST", "/v1/usage"}, {"POST", "/v1/reservations"}, {"POST", "/v1/reservations/r/capture"},
	{"POST", "/v1/adjustments"}, {"PUT", "/v1/auto-reload"}, {"PUT", "/v1/credit-lines/default"}, {"POST", "/v1/subscriptions"},
	{"PUT", "/v1/settings"}, {"PUT", "/v1/notices"}, {"POST", "/v1/grants/g/void"}, {"PATCH", "/v1/grants/g"},
	{"POST", "/v1/usage/u/reverse"}, {"POST", "/v1/tenants"},
}

// FuzzRequestBodies sends any bytes to every JSON route of a running
// creditd: the answer is a success or a 4xx problem, never a 5xx.
func FuzzRequestBodies(f *testing.F) {
	for i := range fuzzRoutes {
		for _, body := range []string{`{}`, `{"amount":"1"}`, `{"amount":1e400}`, `{"events":[{"id":"x","amount":"1"}]}`, `{"amount":"1","metadata":{"a":"b"}}`,
			`{"reason":"r"}`, `{"expires_at":null}`, `{"thresholds":["1"],"webhook_url":"http://127.0.0.1:1/x"}`, `{"currency_config":{"a":[1,2]}}`, `[`, `"\u0000"`} {
			f.Add(uint8(i), []byte(body))
		}
	}
	s := stack.Start(f)
	_, key := s.Tenant("fuzz")
	s.Must(http.StatusCreated, http.MethodPost, "/v1/grants", key, map[string]any{"grant_id": "g", "amount": "1000000"})
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		token := key
		if r.path == "/v1/tenants" {
			token = stack.AdminToken
		}
		req, err := http.NewRequest(r.method, s.Server.URL+r.path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := s.Server.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s with %q: %d %s", r.method, r.path, body, resp.StatusCode, answer)
		}
	})
}
