package clustertest

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/stack"
)

func eventually(t *testing.T, wait time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFullDiskForTheReadModels fills the read models' database (SQLite's
// page limit stands in for a full disk): writes are still acknowledged and
// stored in the log, reads serve the last projected state, /readyz reports
// unready, and everything catches up once space returns.
func TestFullDiskForTheReadModels(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	_, key := s.Tenant("acme")
	s.Must(http.StatusCreated, http.MethodPost, "/v1/grants", key, map[string]any{"amount": "1000"})
	s.Sync()
	var pages int64
	if err := s.DB.Reader().QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if err := s.DB.Exec(context.Background(), fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	events := make([]any, 300)
	for i := range events {
		events[i] = map[string]any{"id": fmt.Sprintf("u%d", i), "amount": "1", "module": strings.Repeat("m", 200) + fmt.Sprint(i)}
	}
	ack := s.Must(http.StatusOK, http.MethodPost, "/v1/usage", key, map[string]any{"events": events})
	if fmt.Sprint(ack["accepted"]) != "300" {
		t.Fatalf("writes refused while the read models are full: %v", ack)
	}
	eventually(t, 10*time.Second, "/readyz unready", func() bool {
		r := s.Do(http.MethodGet, "/readyz", "", nil)
		return r.Status == http.StatusServiceUnavailable && strings.Contains(string(r.Body), "cannot be written")
	})
	if used := fmt.Sprint(s.Must(http.StatusOK, http.MethodGet, "/v1/balance", key, nil)["total"].(map[string]any)["used"]); used != "0" {
		t.Fatalf("reads should serve the last projected state, used %s", used)
	}
	line, _, err := s.Engine.Line(context.Background(), 1, "default")
	if err != nil || line.Used.String() != "300" {
		t.Fatalf("the acknowledged events are not in the log: %v %v", line.Used, err)
	}
	if err := s.DB.Exec(context.Background(), "PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "recovery", func() bool {
		r := s.Do(http.MethodGet, "/readyz", "", nil)
		if r.Status != http.StatusOK {
			return false
		}
		return fmt.Sprint(s.Must(http.StatusOK, http.MethodGet, "/v1/balance", key, nil)["total"].(map[string]any)["used"]) == "300"
	})
}

// TestNATSConnectionLoss runs creditd on an external NATS server that goes
// away: writes fail fast with a 503 and Retry-After, reads keep serving the
// last projected state, and writes work again once the server is back.
func TestNATSConnectionLoss(t *testing.T) {
	t.Parallel()
	n := &node{opts: &server.Options{ServerName: "solo", Host: "127.0.0.1", Port: freePort(t), JetStream: true,
		StoreDir: filepath.Join(t.TempDir(), "js"), SyncAlways: true, MaxPayload: eventstore.MaxPayloadBytes, NoSigs: true, NoLog: true}}
	n.start(t)
	t.Cleanup(func() {
		if n.srv.Running() {
			n.stop()
		}
	})
	urls := fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port)
	in := startInstanceWith(t, urls, "solo", 1)
	created, err := in.engine.CreateTenant(context.Background(), commands.CreateTenant{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, body string) (int, http.Header, string) {
		req, _ := http.NewRequest(method, in.http.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+created.APIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			k, err := resp.Body.Read(buf)
			b.Write(buf[:k])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, resp.Header, b.String()
	}
	if status, _, body := do(http.MethodPost, "/v1/grants", `{"grant_id":"g","amount":"50"}`); status != http.StatusCreated {
		t.Fatalf("grant: %d %s", status, body)
	}
	eventually(t, 10*time.Second, "the grant projected", func() bool {
		_, _, body := do(http.MethodGet, "/v1/balance", "")
		return strings.Contains(body, `"granted":50`)
	})

	n.stop()
	// Once the loss is noticed (readyz says so), every write fails fast.
	eventually(t, 10*time.Second, "readyz notices the loss", func() bool {
		status, _, _ := do(http.MethodGet, "/readyz", "")
		return status == http.StatusServiceUnavailable
	})
	start := time.Now()
	status, header, body := do(http.MethodPost, "/v1/usage", `{"events":[{"id":"u1","amount":"5"}]}`)
	if status != http.StatusServiceUnavailable || header.Get("Retry-After") == "" || time.Since(start) > 3*time.Second {
		t.Fatalf("write without NATS: %d in %s, Retry-After %q: %s", status, time.Since(start), header.Get("Retry-After"), body)
	}
	if status, _, body := do(http.MethodGet, "/v1/balance", ""); status != http.StatusOK || !strings.Contains(body, `"granted":50`) {
		t.Fatalf("read without NATS: %d %s", status, body)
	}

	n.start(t)
	eventually(t, 30*time.Second, "writes after NATS returns", func() bool {
		status, _, _ := do(http.MethodPost, "/v1/usage", `{"events":[{"id":"u1","amount":"5"}]}`)
		return status == http.StatusOK
	})
	eventually(t, 30*time.Second, "the usage projected", func() bool {
		_, _, body := do(http.MethodGet, "/v1/balance", "")
		return strings.Contains(body, `"used":5`)
	})
}
