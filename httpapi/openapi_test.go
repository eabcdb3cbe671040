package httpapi_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/creditd/creditd/internal/openapicheck"
	"github.com/creditd/creditd/internal/stack"
)

// TestOpenAPICheckerCatchesWhatTheDocumentDoesNotDescribe proves the check
// that every test server runs (openapicheck.Wrap): against the served
// document, an answer with an undocumented member or an undocumented status
// is reported, and a request the document refuses is reported when the
// server accepted it; the real answers are not.
func TestOpenAPICheckerCatchesWhatTheDocumentDoesNotDescribe(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	_, key := s.Tenant("doc")
	checker, err := openapicheck.New(s.Do(http.MethodGet, "/openapi.json", "", nil).Body)
	if err != nil {
		t.Fatal(err)
	}
	real := s.Do(http.MethodGet, "/v1/balance", key, nil)
	balance := httptest.NewRequest(http.MethodGet, "/v1/balance", nil)
	balance.Header.Set("Authorization", "Bearer "+key)
	if err := checker.Check(balance, nil, real.Status, real.Header, real.Body); err != nil {
		t.Fatalf("the real answer departs from the document: %v", err)
	}

	// The server under test answers what the document does not say.
	lying := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Query().Get("lie") {
		case "member":
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(strings.Replace(string(real.Body), "{", `{"bogus":1,`, 1)))
		case "status":
			w.WriteHeader(http.StatusTeapot)
			w.Write(real.Body)
		default: // accepts a body the document does not have
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{}`))
		}
	})
	var mu sync.Mutex
	var reported []error
	srv := httptest.NewServer(checker.Handler(lying, func(err error) {
		mu.Lock()
		reported = append(reported, err)
		mu.Unlock()
	}))
	defer srv.Close()
	for _, c := range []struct{ name, method, path, body, want string }{
		{"an_undocumented_member", http.MethodGet, "/v1/balance?lie=member", "", "bogus"},
		{"an_undocumented_status", http.MethodGet, "/v1/balance?lie=status", "", "status is not supported"},
		{"an_accepted_request_the_document_refuses", http.MethodPost, "/v1/grants?lie=request", `{"amount":"1","bogus":true}`, "refuses"},
	} {
		t.Run(c.name, func(t *testing.T) {
			mu.Lock()
			reported = nil
			mu.Unlock()
			req, _ := http.NewRequest(c.method, srv.URL+c.path, strings.NewReader(c.body))
			req.Header.Set("Authorization", "Bearer "+key)
			if c.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			if err := errors.Join(reported...); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("reported %v, want a departure mentioning %q", err, c.want)
			}
		})
	}
}
