package httpapi_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/stack"
	"github.com/creditd/creditd/internal/webhook"
)

// TestWebhookURLRules checks that PUT /v1/notices refuses every URL that
// would point creditd at itself, its network or its cloud's metadata, in
// every spelling, and that the operator's flags admit what they name.
func TestWebhookURLRules(t *testing.T) {
	t.Parallel()
	strict := stack.Start(t)
	_, key := strict.Tenant("strict")
	put := func(t *testing.T, s *stack.Stack, key, url string) response {
		t.Helper()
		return fetch(t, s, http.MethodPut, "/v1/notices", key, map[string]any{"thresholds": []any{"10"}, "webhook_url": url})
	}
	refused := map[string]string{
		"loopback_admin_path":           "https://127.0.0.1:8080/v1/tenants",
		"loopback_over_http":            "http://127.0.0.1:8080/",
		"cloud_metadata":                "https://169.254.169.254/latest/meta-data/",
		"ipv6_loopback":                 "https://[::1]/",
		"hexadecimal_loopback":          "https://0x7f000001/",
		"decimal_loopback":              "https://2130706433/",
		"octal_loopback":                "https://0177.0.0.1/",
		"short_loopback":                "https://127.1/",
		"ipv4_mapped_loopback":          "https://[::ffff:127.0.0.1]/",
		"ipv4_mapped_hex_loopback":      "https://[::ffff:7f00:1]/",
		"nat64_private":                 "https://[64:ff9b::a00:1]/",
		"localhost":                     "https://localhost/",
		"localhost_with_trailing_dot":   "https://LOCALHOST./",
		"a_localhost_subdomain":         "https://api.localhost/",
		"unspecified":                   "https://0.0.0.0/",
		"private_10":                    "https://10.0.0.1/",
		"private_172":                   "https://172.16.5.4/",
		"private_192":                   "https://192.168.1.1/",
		"cgnat":                         "https://100.64.0.1/",
		"alibaba_metadata":              "https://100.100.100.200/",
		"aws_ipv6_metadata":             "https://[fd00:ec2::254]/",
		"link_local_ipv6":               "https://[fe80::1]/",
		"gcp_metadata_name":             "https://metadata.google.internal/computeMetadata/v1/",
		"credentials":                   "https://user:pass@hooks.example.com/",
		"a_user_name":                   "https://user@hooks.example.com/",
		"plain_http_without_the_flag":   "http://hooks.example.com/",
		"not_http":                      "ftp://hooks.example.com/",
		"relative":                      "/hook",
		"loopback_with_percent_escapes": "https://%31%32%37.0.0.1/",
	}
	for name, url := range refused {
		t.Run("refuses_"+name, func(t *testing.T) {
			t.Parallel()
			put(t, strict, key, url).problem(t, http.StatusBadRequest, "body.webhook_url")
		})
	}
	t.Run("accepts_a_public_https_url", func(t *testing.T) {
		t.Parallel()
		put(t, strict, key, "https://hooks.example.com/creditd").want(t, http.StatusOK)
	})

	admitted := stack.StartWith(t, t.TempDir(), &stack.Clock{}, stack.Options{Webhooks: webhook.Policy{
		AllowHTTP: true, AllowHosts: []string{"127.0.0.1", "hooks.internal.test", "10.9.0.0/16"},
	}})
	_, admittedKey := admitted.Tenant("admitted")
	for name, url := range map[string]string{
		"an_allowlisted_address_over_http": "http://127.0.0.1:9/hook",
		"an_allowlisted_name":              "https://hooks.internal.test/hook",
		"an_allowlisted_range":             "http://10.9.3.4/hook",
		"plain_http_with_the_flag":         "http://hooks.example.com/",
	} {
		t.Run("with_the_operator_flags_admits_"+name, func(t *testing.T) {
			t.Parallel()
			put(t, admitted, admittedKey, url).want(t, http.StatusOK)
		})
	}
	for name, url := range map[string]string{
		"another_loopback_address": "http://127.0.0.2/",
		"another_private_range":    "http://10.8.0.1/",
		"credentials":              "http://u:p@127.0.0.1:9/",
	} {
		t.Run("with_the_operator_flags_still_refuses_"+name, func(t *testing.T) {
			t.Parallel()
			put(t, admitted, admittedKey, url).problem(t, http.StatusBadRequest, "body.webhook_url")
		})
	}
}

// TestReadyzWhenTheProjectionStalls stops the projection while writes go
// on: the lag is one commit, far below any lag limit, yet reads are stale
// for good, so /readyz must say so within a few seconds.
func TestReadyzWhenTheProjectionStalls(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	_, key := s.Tenant("stall")
	s.Sync()
	fetch(t, s, http.MethodGet, "/readyz", "", nil).want(t, http.StatusOK)
	s.StopProjection()
	s.Must(http.StatusCreated, http.MethodPost, "/v1/grants", key, map[string]any{"amount": "5"})
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := fetch(t, s, http.MethodGet, "/readyz", "", nil)
		if r.Status == http.StatusServiceUnavailable {
			body := r.object(t)
			wantString(t, body, "status", "unready")
			if reason, _ := body["reason"].(string); reason == "" {
				t.Fatalf("503 without a reason: %s", r.Body)
			}
			if _, ok := body["stalled_seconds"]; !ok {
				t.Fatalf("503 without stalled_seconds: %s", r.Body)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d 15 s after the projection stopped with work pending: %s", r.Status, r.Body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestReadyzNamesTheProjectionError puts a commit creditd cannot decode in
// the log, as a forged message would: the projection retries it forever,
// so /readyz must answer 503 with that error in the body.
func TestReadyzNamesTheProjectionError(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Tenant("forged")
	s.Sync()
	js, err := jetstream.New(s.NATS.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), eventstore.PartitionSubject(0), []byte(`{"v":0}`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := fetch(t, s, http.MethodGet, "/readyz", "", nil)
		if r.Status == http.StatusServiceUnavailable {
			body := r.object(t)
			if last, _ := body["last_error"].(string); last == "" {
				t.Fatalf("503 without the projection's last error: %s", r.Body)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d 15 s after an undecodable commit: %s", r.Status, r.Body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
