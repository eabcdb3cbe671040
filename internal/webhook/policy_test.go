package webhook_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/webhook"
)

// TestDialerChecksTheConnectedAddress calls the webhook client directly,
// past every URL check: the dialer alone must refuse a loopback address,
// whether the URL names it or a name resolves to it (DNS rebinding: a name
// that passed the URL check resolves to an internal address later).
func TestDialerChecksTheConnectedAddress(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer receiver.Close()
	port := receiver.URL[strings.LastIndex(receiver.URL, ":"):]
	client := webhook.Policy{AllowHTTP: true}.Client(2 * time.Second)
	for _, url := range []string{receiver.URL + "/", "http://localhost" + port + "/"} {
		resp, err := client.Post(url, "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
			t.Errorf("POST %s: answered %d, want the dialer to refuse", url, resp.StatusCode)
		} else if !strings.Contains(err.Error(), "loopback") {
			t.Errorf("POST %s: %v, want a refusal naming loopback", url, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback receiver got %d requests", n)
	}

	admitted := webhook.Policy{AllowHTTP: true, AllowHosts: []string{"127.0.0.1"}}.Client(2 * time.Second)
	resp, err := admitted.Post(receiver.URL+"/", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("an allowlisted address: %v", err)
	}
	resp.Body.Close()
	if hits.Load() != 1 {
		t.Fatalf("the allowlisted receiver got %d requests, want 1", hits.Load())
	}
}
