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

func TestCheckURL(t *testing.T) {
	t.Parallel()
	strict := webhook.Policy{}
	for url, ok := range map[string]bool{
		"https://hooks.example.com/creditd": true,
		"https://8.8.8.8/":                  true,
		"https://[2606:4700::1111]/":        true,
		"https://0x08080808/":               true,  // public, however spelled
		"https://[2002:7f00:1::]/":          false, // 6to4 of 127.0.0.1
		"https://[fe80::1%25eth0]/":         false,
		"https://1.2.3.4.5/":                false,
		"https://999.1.1.1/":                false,
		"https://10.0.0.1./":                false,
		"https://hooks.local/":              false,
		"https://a..b/":                     false,
		"https://exa mple.com/":             false,
		"https:///path":                     false,
	} {
		if err := strict.CheckURL(url); (err == nil) != ok {
			t.Errorf("CheckURL(%q) = %v, want allowed=%v", url, err, ok)
		}
	}
}
