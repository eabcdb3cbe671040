package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/internal/openapicheck"
	"github.com/creditd/creditd/internal/testnats"
)

// adminToken is the admin token every test server is configured with.
const adminToken = "admin-secret"

// fakeClock is a settable clock shared by an engine and its test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// env is one real stack: an embedded JetStream, an engine on it and the
// HTTP API served over a real listener.
type env struct {
	clock  *fakeClock
	engine *commands.Engine
	srv    *httptest.Server
	// last is the highest position seen, for checking that positions grow.
	last uint64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	nats := testnats.Start(t, t.TempDir())
	clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	engine, err := commands.New(context.Background(), nats.Store, commands.Options{Clock: clock.Now, CheckInvariants: true})
	if err != nil {
		t.Fatalf("new engine: %v", err)
	}
	t.Cleanup(engine.Close)
	srv := httptest.NewServer(openapicheck.Wrap(t, httpapi.New(httpapi.Config{Writer: engine, AdminToken: adminToken, Clock: clock.Now})))
	t.Cleanup(srv.Close)
	return &env{clock: clock, engine: engine, srv: srv}
}

// response is an answer read whole.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// raw marks a request body sent as is, not marshalled.
type raw string

// call sends a request to the write-side server; see send.
func (e *env) call(t *testing.T, method, path, token string, body any, headers ...string) response {
	t.Helper()
	return send(t, e.srv, method, path, token, body, headers...)
}

// send sends a request to srv and reads the answer whole. body is nil (no
// body), raw (sent verbatim), []byte, or a value marshalled to JSON;
// headers come in name, value pairs.
func send(t *testing.T, srv *httptest.Server, method, path, token string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case raw:
		rd = strings.NewReader(string(b))
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal body: %v", err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// object decodes a JSON object, keeping numbers as their exact text.
func (r response) object(t *testing.T) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %q: %v", r.Body, err)
	}
	return m
}

// want fails unless the status is status, and returns the decoded body.
func (r response) want(t *testing.T, status int) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); status < 400 && ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	return r.object(t)
}

// problemDoc is an RFC 7807 problem as the API writes it.
type problemDoc struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Instance  string `json:"instance"`
	RequestID string `json:"request_id"`
	Errors    []struct {
		Location string `json:"location"`
		Message  string `json:"message"`
		Value    any    `json:"value"`
	} `json:"errors"`
}

func (p problemDoc) locations() []string {
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Location)
	}
	return out
}

// problem checks that r is a well-formed problem of the given status and
// returns it: the problem media type, every member present, status and
// request id agreeing with the response, and each of locations named by an
// error with a message.
func (r response) problem(t *testing.T, status int, locations ...string) problemDoc {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json; body %s", ct, r.Body)
	}
	members := r.object(t)
	for _, name := range []string{"type", "title", "status", "detail", "instance", "request_id"} {
		if v, ok := members[name]; !ok || v == "" {
			t.Errorf("problem lacks %q: %s", name, r.Body)
		}
	}
	var p problemDoc
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatalf("decode problem %q: %v", r.Body, err)
	}
	if p.Status != status {
		t.Errorf("problem status %d, response status %d", p.Status, status)
	}
	if p.Title != http.StatusText(status) {
		t.Errorf("problem title %q, want %q", p.Title, http.StatusText(status))
	}
	if !strings.HasPrefix(p.Type, "urn:creditd:problem:") {
		t.Errorf("problem type %q is not a creditd URN", p.Type)
	}
	if id := r.Header.Get("X-Request-Id"); id == "" || p.RequestID != id {
		t.Errorf("problem request_id %q, X-Request-Id header %q", p.RequestID, id)
	}
	for _, loc := range locations {
		found := false
		for _, e := range p.Errors {
			if e.Location == loc {
				found = true
				if e.Message == "" {
					t.Errorf("error at %s has no message", loc)
				}
			}
		}
		if !found {
			t.Errorf("problem errors %v do not name %s; body %s", p.locations(), loc, r.Body)
		}
	}
	return p
}

// position reads a body's position and checks it is past every position
// seen before in this env.
func (e *env) position(t *testing.T, body map[string]any) uint64 {
	t.Helper()
	p := uintOf(t, body, "position")
	if p == 0 || p <= e.last {
		t.Fatalf("position %d, want > %d: %v", p, e.last, body)
	}
	e.last = p
	return p
}

func uintOf(t *testing.T, m map[string]any, name string) uint64 {
	t.Helper()
	n, ok := m[name].(json.Number)
	if !ok {
		t.Fatalf("%s = %#v, want a number: %v", name, m[name], m)
	}
	var v uint64
	if _, err := fmt.Sscan(n.String(), &v); err != nil {
		t.Fatalf("%s = %s: %v", name, n, err)
	}
	return v
}

// wantNumber checks that member name is a JSON number whose text is want.
func wantNumber(t *testing.T, m map[string]any, name, want string) {
	t.Helper()
	n, ok := m[name].(json.Number)
	if !ok {
		t.Errorf("%s = %#v, want the JSON number %s", name, m[name], want)
		return
	}
	if n.String() != want {
		t.Errorf("%s = %s, want %s", name, n, want)
	}
}

func wantString(t *testing.T, m map[string]any, name, want string) {
	t.Helper()
	if got, _ := m[name].(string); got != want {
		t.Errorf("%s = %#v, want %q", name, m[name], want)
	}
}

// tenant creates a tenant through the API and returns its id and key.
func (e *env) tenant(t *testing.T, name string) (int64, string) {
	t.Helper()
	body := e.call(t, "POST", "/v1/tenants", adminToken, map[string]any{"name": name}).want(t, http.StatusCreated)
	key, _ := body["api_key"].(string)
	if key == "" {
		t.Fatalf("no api_key: %v", body)
	}
	return int64(uintOf(t, body, "tenant_id")), key
}

// grant grants amount on the default line and returns the answer.
func (e *env) grant(t *testing.T, key, id string, amount any) map[string]any {
	t.Helper()
	return e.call(t, "POST", "/v1/grants", key, map[string]any{"grant_id": id, "amount": amount}).want(t, http.StatusCreated)
}

// usage posts one batch of events and returns the answer.
func (e *env) usage(t *testing.T, key string, events ...map[string]any) map[string]any {
	t.Helper()
	return e.call(t, "POST", "/v1/usage", key, map[string]any{"events": events}).want(t, http.StatusOK)
}

// event is a usage event body.
func event(id string, amount any) map[string]any {
	return map[string]any{"id": id, "amount": amount, "module": "search"}
}

// results returns a usage answer's per-event results.
func results(t *testing.T, body map[string]any) []map[string]any {
	t.Helper()
	list, ok := body["results"].([]any)
	if !ok {
		t.Fatalf("results = %#v", body["results"])
	}
	out := make([]map[string]any, len(list))
	for i, r := range list {
		out[i] = r.(map[string]any)
	}
	return out
}

// wantCounts checks a usage answer's totals.
func wantCounts(t *testing.T, body map[string]any, accepted, duplicates, rejected int) {
	t.Helper()
	got := [3]uint64{uintOf(t, body, "accepted"), uintOf(t, body, "duplicates"), uintOf(t, body, "rejected")}
	want := [3]uint64{uint64(accepted), uint64(duplicates), uint64(rejected)}
	if got != want {
		t.Errorf("accepted/duplicates/rejected = %v, want %v: %v", got, want, body)
	}
}

// line reads a tenant's line from the write side.
func (e *env) line(t *testing.T, tenantID int64, creditType string) *domain.Line {
	t.Helper()
	l, _, err := e.engine.Line(context.Background(), tenantID, creditType)
	if err != nil {
		t.Fatalf("line: %v", err)
	}
	return l
}

func decimalOf(t *testing.T, s string) decimal.Decimal {
	t.Helper()
	d, err := decimal.NewFromString(s)
	if err != nil {
		t.Fatalf("decimal %q: %v", s, err)
	}
	return d
}
