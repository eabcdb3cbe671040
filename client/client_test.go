package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/client"
	"github.com/creditd/creditd/internal/stack"
)

// countingTransport forwards to the real server and counts requests; when
// loseFirst is set it drops the first answer after the server processed
// the request, as a lost response would.
type countingTransport struct {
	requests  atomic.Int64
	loseFirst atomic.Bool
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.requests.Add(1)
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && c.loseFirst.CompareAndSwap(true, false) {
		resp.Body.Close()
		return nil, errors.New("connection reset (simulated lost answer)")
	}
	return resp, err
}

func used(t *testing.T, s *stack.Stack, key string) string {
	t.Helper()
	s.Sync()
	m := s.Must(http.StatusOK, http.MethodGet, "/v1/balance", key, nil)
	return fmt.Sprint(m["total"].(map[string]any)["used"])
}

func event(id string, amount string) client.UsageEvent {
	return client.UsageEvent{ID: id, Amount: decimal.RequireFromString(amount), Module: "search"}
}

func TestClientOverHTTP(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	_, key := s.Tenant("acme")
	s.Must(http.StatusCreated, http.MethodPost, "/v1/grants", key, map[string]any{"amount": "100000"})

	t.Run("concurrent_records_are_batched_and_counted_exactly", func(t *testing.T) {
		transport := &countingTransport{}
		c, err := client.New(client.Config{HTTPURL: s.Server.URL, APIKey: key, HTTPClient: &http.Client{Transport: transport},
			BatchSize: 100, Linger: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var wg sync.WaitGroup
		for w := range 20 {
			wg.Go(func() {
				for i := range 10 {
					batch := make([]client.UsageEvent, 10)
					for j := range batch {
						batch[j] = event(fmt.Sprintf("w%d-%d-%d", w, i, j), "0.25")
					}
					results, err := c.Record(context.Background(), batch...)
					if err != nil {
						t.Error(err)
						return
					}
					for _, r := range results {
						if r.Status != "accepted" {
							t.Errorf("result %+v", r)
						}
					}
				}
			})
		}
		wg.Wait()
		if n := transport.requests.Load(); n >= 2000/10 {
			t.Fatalf("%d requests for 2000 events in calls of 10: not batched", n)
		}
		if got := used(t, s, key); got != "500" {
			t.Fatalf("used %s, want 500", got)
		}
	})

	t.Run("a_lost_answer_is_retried_with_the_same_ids_and_counted_once", func(t *testing.T) {
		transport := &countingTransport{}
		transport.loseFirst.Store(true)
		c, err := client.New(client.Config{HTTPURL: s.Server.URL, APIKey: key, HTTPClient: &http.Client{Transport: transport}, RetryBackoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		results, err := c.Record(context.Background(), event("retry-1", "10"), event("retry-2", "5"))
		if err != nil {
			t.Fatal(err)
		}
		if transport.requests.Load() != 2 || results[0].Status != "duplicate" || results[1].Status != "duplicate" {
			t.Fatalf("requests %d, results %+v: want a retry answered as duplicates", transport.requests.Load(), results)
		}
		if got := used(t, s, key); got != "515" {
			t.Fatalf("used %s, want 515", got)
		}
	})

	t.Run("a_refused_request_is_not_retried", func(t *testing.T) {
		transport := &countingTransport{}
		c, _ := client.New(client.Config{HTTPURL: s.Server.URL, APIKey: key, HTTPClient: &http.Client{Transport: transport}})
		defer c.Close()
		_, err := c.Record(context.Background(), event("bad", "-1"))
		if !errors.Is(err, client.ErrRejectedRequest) || transport.requests.Load() != 1 {
			t.Fatalf("err %v after %d requests", err, transport.requests.Load())
		}
	})

	t.Run("one_refused_event_does_not_fail_its_batch", func(t *testing.T) {
		c, _ := client.New(client.Config{HTTPURL: s.Server.URL, APIKey: key, Linger: 50 * time.Millisecond})
		defer c.Close()
		results, err := c.Record(context.Background(), event("mix-1", "1"), event("mix-bad", "-1"), event("mix-2", "2"))
		if !errors.Is(err, client.ErrRejectedRequest) {
			t.Fatalf("err %v, want the bad event refused", err)
		}
		if results[0].Status != "accepted" || results[1].Status != "failed" || results[2].Status != "accepted" {
			t.Fatalf("results %+v: want only the bad event failed", results)
		}
		if got := used(t, s, key); got != "518" {
			t.Fatalf("used %s, want 518", got)
		}
	})

	t.Run("a_full_queue_makes_record_wait", func(t *testing.T) {
		release := make(chan struct{})
		slow := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			<-release
			return http.DefaultTransport.RoundTrip(r)
		})
		c, _ := client.New(client.Config{HTTPURL: s.Server.URL, APIKey: key, HTTPClient: &http.Client{Transport: slow},
			QueueSize: 5, BatchSize: 5, Inflight: 1, Linger: time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		batch := make([]client.UsageEvent, 40)
		for i := range batch {
			batch[i] = event(fmt.Sprintf("bp-%d", i), "1")
		}
		if _, err := c.Record(ctx, batch...); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want the caller held back until its deadline", err)
		}
		close(release)
		c.Close()
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestClientOverNATS(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	tenant, key := s.Tenant("acme")
	s.Must(http.StatusCreated, http.MethodPost, "/v1/grants", key, map[string]any{"amount": "1000"})
	c, err := client.New(client.Config{NATS: s.NATS.Conn, TenantID: tenant, BatchSize: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var events []client.UsageEvent
	for i := range 120 {
		events = append(events, event(fmt.Sprintf("n%d", i), "0.5"))
	}
	for range 2 { // the second time, every event is a duplicate
		results, err := c.Record(context.Background(), events...)
		if err != nil {
			t.Fatal(err)
		}
		if results[0].Status != client.StatusQueued {
			t.Fatalf("result %+v", results[0])
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for used(t, s, key) != "60" {
		if time.Now().After(deadline) {
			t.Fatalf("used %s, want 60", used(t, s, key))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if got := used(t, s, key); got != "60" {
		t.Fatalf("used %s after the resend, want 60", got)
	}
}

// The work stream dedupes Nats-Msg-Id across all its subjects, every
// tenant's: two tenants' batches of the same event ids (ids are a tenant's
// own) must not share a message id, or the second is acknowledged as a
// duplicate and never recorded.
func TestClientOverNATSTenantsWithTheSameIDs(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	var keys []string
	for _, name := range []string{"acme", "globex"} {
		tenant, key := s.Tenant(name)
		s.Must(http.StatusCreated, http.MethodPost, "/v1/grants", key, map[string]any{"amount": "100"})
		c, err := client.New(client.Config{NATS: s.NATS.Conn, TenantID: tenant})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Record(context.Background(), event("evt-1", "3")); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, key := range keys {
		for used(t, s, key) != "3" {
			if time.Now().After(deadline) {
				t.Fatalf("used %s, want 3: an acknowledged batch was dropped as another tenant's duplicate", used(t, s, key))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
