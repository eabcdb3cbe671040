package projections_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/internal/stack"
	webhookrules "github.com/creditd/creditd/internal/webhook"
)

// loopbackForTests is what an operator would set to receive webhooks on
// this host during development: http allowed, 127.0.0.1 admitted by name.
var loopbackForTests = stack.Options{Webhooks: webhookrules.Policy{AllowHTTP: true, AllowHosts: []string{"127.0.0.1"}}}

// counter is a receiver that counts requests and answers status.
type counter struct {
	mu       sync.Mutex
	requests int
	status   int
	header   http.Header
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.requests++
	status := c.status
	for k, v := range c.header {
		w.Header()[k] = v
	}
	c.mu.Unlock()
	w.WriteHeader(status)
}

func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests
}

// cross configures a tenant's notices at 50 with url, grants 100 and uses
// 60: one low-balance notice.
func cross(t *testing.T, s *stack.Stack, key, url string) {
	t.Helper()
	s.Must(http.StatusOK, http.MethodPut, "/v1/notices", key, map[string]any{"thresholds": []any{"50"}, "webhook_url": url})
	s.Must(http.StatusCreated, http.MethodPost, "/v1/grants", key, map[string]any{"amount": "100"})
	s.Must(http.StatusOK, http.MethodPost, "/v1/usage", key, map[string]any{"events": []any{map[string]any{"id": "cross", "amount": "60"}}})
}

// delivery is one entry of GET /v1/notices' deliveries.
type delivery struct {
	NoticeID  int64  `json:"notice_id"`
	Status    string `json:"status"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error"`
}

func deliveries(t *testing.T, s *stack.Stack, key string) []delivery {
	t.Helper()
	r := s.Do(http.MethodGet, "/v1/notices", key, nil)
	if r.Status == http.StatusServiceUnavailable {
		return nil // the tenant is not projected yet: none so far
	}
	var out struct {
		Deliveries *[]delivery `json:"deliveries"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil || r.Status != http.StatusOK || out.Deliveries == nil {
		t.Fatalf("GET /v1/notices: %d %s: no deliveries (%v)", r.Status, r.Body, err)
	}
	return *out.Deliveries
}

// waitDelivery waits until the tenant's only notice satisfies ok.
func waitDelivery(t *testing.T, s *stack.Stack, key string, wait time.Duration, what string, ok func(delivery) bool) delivery {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got := deliveries(t, s, key)
		if len(got) == 1 && ok(got[0]) {
			return got[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: deliveries %+v, want %s", wait, got, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWebhookStoredBeforeTheRulesIsNotCalled sets a loopback webhook past
// the HTTP checks, as one stored before them would be: the dispatcher must
// not call it, and says why in GET /v1/notices.
func TestWebhookStoredBeforeTheRulesIsNotCalled(t *testing.T) {
	t.Parallel()
	s := stack.StartWith(t, t.TempDir(), &stack.Clock{}, stack.Options{Webhooks: webhookrules.Policy{AllowHTTP: true}})
	tenant, key := s.Tenant("old")
	hook := &counter{status: http.StatusNoContent}
	receiver := httptest.NewServer(hook)
	defer receiver.Close()
	if _, err := s.Engine.ConfigureNotices(context.Background(), tenant, commands.Notices{Thresholds: []decimal.Decimal{decimal.New(50, 0)}, WebhookURL: receiver.URL + "/v1/tenants"}); err != nil {
		t.Fatal(err)
	}
	s.Must(http.StatusCreated, http.MethodPost, "/v1/grants", key, map[string]any{"amount": "100"})
	s.Must(http.StatusOK, http.MethodPost, "/v1/usage", key, map[string]any{"events": []any{map[string]any{"id": "u", "amount": "60"}}})
	got := waitDelivery(t, s, key, 10*time.Second, "a refusal", func(d delivery) bool { return d.LastError != "" })
	if !strings.Contains(got.LastError, "loopback") {
		t.Errorf("last error %q does not say the address is loopback", got.LastError)
	}
	if n := hook.count(); n != 0 {
		t.Fatalf("a loopback webhook received %d requests", n)
	}
}

// TestWebhookRedirectIsNotFollowed: a webhook that redirects elsewhere
// (here to an address the operator admitted, so only the redirect rule can
// stop it) is a failed delivery, and the redirect target hears nothing.
func TestWebhookRedirectIsNotFollowed(t *testing.T) {
	t.Parallel()
	s := stack.StartWith(t, t.TempDir(), &stack.Clock{}, loopbackForTests)
	_, key := s.Tenant("redirect")
	target := &counter{status: http.StatusNoContent}
	targetServer := httptest.NewServer(target)
	defer targetServer.Close()
	redirect := &counter{status: http.StatusTemporaryRedirect, header: http.Header{"Location": {targetServer.URL + "/elsewhere"}}}
	redirectServer := httptest.NewServer(redirect)
	defer redirectServer.Close()
	cross(t, s, key, redirectServer.URL)
	got := waitDelivery(t, s, key, 10*time.Second, "a failed attempt", func(d delivery) bool { return d.Attempts >= 1 })
	if got.Status == "delivered" || !strings.Contains(got.LastError, "307") {
		t.Errorf("delivery %+v: want not delivered, with the 307 as its error", got)
	}
	if n := target.count(); n != 0 {
		t.Fatalf("the redirect target received %d requests", n)
	}
}

// TestSlowTenantDelaysOnlyItself: one tenant's webhook never answers;
// another tenant's notice still arrives within 2 s.
func TestSlowTenantDelaysOnlyItself(t *testing.T) {
	t.Parallel()
	s := stack.StartWith(t, t.TempDir(), &stack.Clock{}, loopbackForTests)
	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hanging.Close()
	defer close(release)
	arrived := make(chan time.Time, 1)
	prompt := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- time.Now():
		default:
		}
	}))
	defer prompt.Close()

	_, slowKey := s.Tenant("slow")
	_, fastKey := s.Tenant("fast")
	cross(t, s, slowKey, hanging.URL)
	// The slow tenant's delivery is under way before the other's notice.
	time.Sleep(1500 * time.Millisecond)
	crossed := time.Now()
	cross(t, s, fastKey, prompt.URL)
	select {
	case at := <-arrived:
		if d := at.Sub(crossed); d > 2*time.Second {
			t.Fatalf("the other tenant's notice arrived after %s, want within 2 s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the other tenant's notice did not arrive within 5 s")
	}
}

// TestWebhookRetriesAreBoundedAndVisible: a webhook that always fails is
// retried with backoff, each attempt counted with its error in GET
// /v1/notices, and given up after the last attempt. The clock is moved past
// each backoff.
func TestWebhookRetriesAreBoundedAndVisible(t *testing.T) {
	t.Parallel()
	clock := &stack.Clock{}
	clock.Set(time.Now())
	s := stack.StartWith(t, t.TempDir(), clock, loopbackForTests)
	_, key := s.Tenant("failing")
	hook := &counter{status: http.StatusInternalServerError}
	receiver := httptest.NewServer(hook)
	defer receiver.Close()
	cross(t, s, key, receiver.URL)
	first := waitDelivery(t, s, key, 10*time.Second, "one failed attempt", func(d delivery) bool { return d.Attempts >= 1 })
	if first.Status != "pending" || !strings.Contains(first.LastError, "500") {
		t.Fatalf("after one attempt: %+v, want pending with the 500", first)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := deliveries(t, s, key)
		if len(got) == 1 && got[0].Status == "failed" {
			if got[0].Attempts != hook.count() || got[0].Attempts < 3 || got[0].Attempts > 10 {
				t.Fatalf("gave up after %d attempts counted, %d received; want a small bound, counted exactly", got[0].Attempts, hook.count())
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not given up in time: %+v after %d requests", got, hook.count())
		}
		clock.Advance(10 * time.Minute)
		time.Sleep(100 * time.Millisecond)
	}
}
