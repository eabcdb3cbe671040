package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/client"
)

// TestKillNineDuringIngest kills creditd with SIGKILL in the middle of a
// heavy ingest while the client keeps retrying its unacknowledged batches
// with the same ids; after a restart every event is counted exactly once,
// the read models resume, and verify passes.
func TestKillNineDuringIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, dataDir, addr := newBinaryRun(t)
	base := "http://" + addr

	proc := startKillable(t, bin, dataDir, addr)
	tenant := createTenant(t, base, dataDir)
	post(t, base+"/v1/grants", tenant.APIKey, `{"grant_id":"g","amount":"1000000"}`, http.StatusCreated, nil)

	c, err := client.New(client.Config{HTTPURL: base, APIKey: tenant.APIKey, BatchSize: 100, Inflight: 4, Retries: 60, RetryBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const producers, perProducer = 8, 1500
	var acked atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Go(func() {
			for i := 0; i < perProducer; i += 50 {
				batch := make([]client.UsageEvent, 50)
				for j := range batch {
					batch[j] = client.UsageEvent{ID: fmt.Sprintf("p%d-%d", p, i+j), Amount: decimal.RequireFromString("0.01")}
				}
				if _, err := c.Record(context.Background(), batch...); err != nil {
					errs <- err
					return
				}
				acked.Add(50)
			}
		})
	}
	for acked.Load() < producers*perProducer/3 {
		time.Sleep(5 * time.Millisecond)
	}
	proc.Process.Kill() // SIGKILL: no shutdown, no flush beyond what was acknowledged
	proc.Wait()
	t.Logf("killed after %d acknowledged events", acked.Load())
	time.Sleep(300 * time.Millisecond)
	proc = startKillable(t, bin, dataDir, addr)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a producer gave up: %v", err)
	}
	want := decimal.RequireFromString("0.01").Mul(decimal.NewFromInt(producers * perProducer))
	deadline := time.Now().Add(20 * time.Second)
	for {
		used := fmt.Sprint(get(t, base+"/v1/balance", tenant.APIKey)["total"].(map[string]any)["used"])
		if used == want.String() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("used %s, want %s: events lost or counted twice", used, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	proc.Process.Signal(os.Interrupt)
	proc.Wait()
	out, err := exec.Command(bin, "verify", "--data-dir", dataDir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("verify after the kill: %v\n%s", err, out)
	}
}

// startKillable starts creditd and waits for /healthz; the test kills it.
func startKillable(t *testing.T, bin, dataDir, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--http-addr", addr)
	cmd.Env = append(os.Environ(), "CREDITD_ADMIN_TOKEN=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatal("creditd did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
