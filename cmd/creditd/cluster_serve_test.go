package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// clusterTTL is the lease TTL of the instances these tests start.
const clusterTTL = 3 * time.Second

// servingInstance is one `creditd serve --nats-url` process.
type servingInstance struct {
	name, dataDir, base string
	cmd                 *exec.Cmd
	stderr              *lockedBuffer
	exited              chan error
	gone                atomic.Bool
	extra               []string
}

func startClusterInstance(t *testing.T, bin, natsURL, name string, extra ...string) *servingInstance {
	t.Helper()
	in := &servingInstance{name: name, dataDir: filepath.Join(t.TempDir(), name), base: "http://" + freeAddr(t), stderr: &lockedBuffer{}, exited: make(chan error, 1), extra: extra}
	in.start(t, bin, natsURL)
	t.Cleanup(func() { in.stop(t) })
	return in
}

func (in *servingInstance) start(t *testing.T, bin, natsURL string) {
	t.Helper()
	in.cmd = exec.Command(bin, append([]string{"serve", "--data-dir", in.dataDir, "--http-addr", strings.TrimPrefix(in.base, "http://"),
		"--nats-url", natsURL, "--admin-token", "admin", "--lease-ttl", clusterTTL.String(), "--instance", in.name}, in.extra...)...)
	in.cmd.Stderr = in.stderr
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.exited = make(chan error, 1)
	in.gone.Store(false)
	go func() { in.exited <- in.cmd.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(in.base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-in.exited:
			t.Fatalf("%s exited early: %v\n%s", in.name, err, in.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy in time\n%s", in.name, in.stderr.String())
		}
	}
}

// stop ends the process with SIGTERM (a clean stop: partitions handed
// over) and waits for it.
func (in *servingInstance) stop(t *testing.T) {
	if in.gone.Swap(true) {
		return
	}
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-in.exited:
		if err != nil {
			t.Errorf("%s exit: %v\n%s", in.name, err, in.stderr.String())
		}
	case <-time.After(45 * time.Second):
		in.cmd.Process.Kill()
		t.Errorf("%s did not stop on SIGTERM\n%s", in.name, in.stderr.String())
	}
}

// kill ends the process with SIGKILL: no handover, no goodbye.
func (in *servingInstance) kill() {
	if in.gone.Swap(true) {
		return
	}
	in.cmd.Process.Kill()
	<-in.exited
}

// ownership reads the instance's /readyz ownership: the partitions it
// owns and the stream's partition count.
func (in *servingInstance) ownership(t *testing.T) (owned []int, partitions int) {
	t.Helper()
	resp, err := http.Get(in.base + "/readyz?scope=writes")
	if err != nil {
		return nil, 0
	}
	defer resp.Body.Close()
	var body struct {
		Ownership *struct {
			Owned      []int `json:"owned"`
			Partitions int   `json:"partitions"`
		} `json:"ownership"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Ownership == nil {
		t.Fatalf("%s /readyz has no ownership: %v", in.name, err)
	}
	return body.Ownership.Owned, body.Ownership.Partitions
}

// waitOwned waits until every partition is owned by exactly one of the
// instances and each owns its share, and returns when that was first seen.
func waitOwned(t *testing.T, wait time.Duration, instances ...*servingInstance) time.Time {
	t.Helper()
	for deadline := time.Now().Add(wait); ; time.Sleep(50 * time.Millisecond) {
		owners := map[int]int{}
		partitions := 0
		var shares []int
		for _, in := range instances {
			owned, n := in.ownership(t)
			partitions = n
			shares = append(shares, len(owned))
			for _, p := range owned {
				owners[p]++
			}
		}
		// Each partition once, and each instance its share.
		whole := partitions > 0 && len(owners) == partitions
		for _, n := range shares {
			whole = whole && n >= partitions/len(instances) && n <= (partitions+len(instances)-1)/len(instances)
		}
		for _, n := range owners {
			whole = whole && n == 1
		}
		if whole {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions not owned once each within %s: %v", wait, owners)
		}
	}
}

// postUsage sends one batch and reports the HTTP status (0: no answer).
func postUsage(base, key, body string) int {
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/usage", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	client := http.Client{Timeout: 15 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	raw.ReadFrom(resp.Body)
	return resp.StatusCode
}

// TestInstancesShareTheLogAndSurviveKill9 runs three `creditd serve`
// processes on a three-node cluster. Their partitions are spread, one
// owner each. Producers write through all three; the instance owning the
// tenant's partition is killed with SIGKILL mid-way: the others own its
// partitions within the TTL and 2 s, producers see only retryable answers
// (503 or a dropped connection) and retry the same ids elsewhere, and every
// acknowledged event is counted once on every instance. `creditd verify`
// passes on each instance's data, the killed one's after a restart.
func TestInstancesShareTheLogAndSurviveKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-node cluster and three creditd processes")
	}
	natsURL, _ := externalNATS(t, 3)
	bin := buildBinary(t, t.TempDir())
	instances := []*servingInstance{
		startClusterInstance(t, bin, natsURL, "a"),
		startClusterInstance(t, bin, natsURL, "b"),
		startClusterInstance(t, bin, natsURL, "c"),
	}
	waitOwned(t, 20*time.Second, instances...)

	var tenant testTenant
	post(t, instances[0].base+"/v1/tenants", "admin", `{"name":"acme"}`, http.StatusCreated, &tenant)
	post(t, instances[0].base+"/v1/grants", tenant.APIKey, `{"grant_id":"g1","amount":"1000000"}`, http.StatusCreated, nil)
	_, partitions := instances[0].ownership(t)
	// Each instance shows what it owns, its renewals and its forwards.
	for _, in := range instances {
		owned, _ := in.ownership(t)
		resp, err := http.Get(in.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		var metrics bytes.Buffer
		metrics.ReadFrom(resp.Body)
		resp.Body.Close()
		for _, want := range []string{fmt.Sprintf("creditd_partitions_owned %d", len(owned)), "creditd_lease_renewals_total", "creditd_partition_owned{partition=", "creditd_append_conflicts_total 0"} {
			if !strings.Contains(metrics.String(), want) {
				t.Errorf("%s /metrics lacks %q", in.name, want)
			}
		}
	}
	var victim *servingInstance
	for _, in := range instances {
		owned, _ := in.ownership(t)
		for _, p := range owned {
			if int64(p) == tenant.TenantID%int64(partitions) {
				victim = in
			}
		}
	}
	if victim == nil {
		t.Fatal("no instance owns the tenant's partition")
	}

	const producers, batches, perBatch = 3, 40, 10
	var acked atomic.Int64
	var statuses sync.Map // status → count
	var wg sync.WaitGroup
	halfway := make(chan struct{})
	var once sync.Once
	for p := range producers {
		wg.Go(func() {
			for b := range batches {
				if p == 0 && b == batches/2 {
					once.Do(func() { close(halfway) })
				}
				events := make([]string, perBatch)
				for i := range events {
					events[i] = fmt.Sprintf(`{"id":"p%d-%d-%d","amount":"0.5"}`, p, b, i)
				}
				body := `{"events":[` + strings.Join(events, ",") + `]}`
				for attempt := 0; ; attempt++ {
					in := instances[(p+b+attempt)%len(instances)]
					if in.gone.Load() {
						continue
					}
					status := postUsage(in.base, tenant.APIKey, body)
					n, _ := statuses.LoadOrStore(status, new(atomic.Int64))
					n.(*atomic.Int64).Add(1)
					if status == http.StatusOK {
						acked.Add(perBatch)
						break
					}
					if status != http.StatusServiceUnavailable && status != 0 {
						t.Errorf("producer %d batch %d through %s: status %d, not retryable", p, b, in.name, status)
						return
					}
					if attempt > 200 {
						t.Errorf("producer %d batch %d: gave up after %d attempts", p, b, attempt)
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	<-halfway
	killed := time.Now()
	victim.kill()
	var survivors []*servingInstance
	for _, in := range instances {
		if in != victim {
			survivors = append(survivors, in)
		}
	}
	owned := waitOwned(t, clusterTTL+10*time.Second, survivors...)
	t.Logf("%s killed; its partitions owned by the others %s later", victim.name, owned.Sub(killed).Round(time.Millisecond))
	if took := owned.Sub(killed); took > clusterTTL+2*time.Second {
		t.Errorf("takeover took %s, want within the TTL %s + 2 s", took, clusterTTL)
	}
	wg.Wait()
	statuses.Range(func(k, v any) bool {
		t.Logf("answers %v: %d", k, v.(*atomic.Int64).Load())
		return true
	})
	if t.Failed() {
		return
	}
	want := decimal.RequireFromString("0.5").Mul(decimal.NewFromInt(acked.Load()))
	// Every acknowledged event once, on every instance's read models.
	var last struct {
		Position uint64 `json:"position"`
	}
	post(t, survivors[0].base+"/v1/usage", tenant.APIKey, `{"events":[{"id":"probe","amount":"0.5"}]}`, http.StatusOK, &last)
	want = want.Add(decimal.RequireFromString("0.5"))
	for _, in := range survivors {
		balance := get(t, fmt.Sprintf("%s/v1/balance?min_position=%d", in.base, last.Position), tenant.APIKey)
		used := fmt.Sprint(balance["total"].(map[string]any)["used"])
		if !decimal.RequireFromString(used).Equal(want) {
			t.Fatalf("%s: used %s, want %s (%d acknowledged events and a probe)", in.name, used, want, acked.Load())
		}
	}
	// The killed instance comes back under a new name and catches up.
	victim.start(t, bin, natsURL)
	waitOwned(t, 20*time.Second, instances...)
	balance := get(t, fmt.Sprintf("%s/v1/balance?min_position=%d", victim.base, last.Position), tenant.APIKey)
	if used := fmt.Sprint(balance["total"].(map[string]any)["used"]); !decimal.RequireFromString(used).Equal(want) {
		t.Fatalf("%s after its restart: used %s, want %s", victim.name, used, want)
	}
	for _, in := range instances {
		in.stop(t)
	}
	for _, in := range instances {
		out, err := exec.Command(bin, "verify", "--nats-url", natsURL, "--data-dir", in.dataDir).CombinedOutput()
		if err != nil {
			t.Fatalf("verify %s: %v\n%s", in.name, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(victim.dataDir, readModelFile)); err != nil {
		t.Fatal(err)
	}
}

// ownerOf returns the instance owning the tenant's partition now.
func ownerOf(t *testing.T, tenantID int64, instances ...*servingInstance) *servingInstance {
	t.Helper()
	for _, in := range instances {
		if in.gone.Load() {
			continue
		}
		owned, partitions := in.ownership(t)
		for _, p := range owned {
			if int64(p) == tenantID%int64(partitions) {
				return in
			}
		}
	}
	t.Fatalf("no instance owns tenant %d's partition", tenantID)
	return nil
}

// TestNoticesAcrossAFailover has three `creditd serve` processes deliver a
// tenant's low-balance notices to one webhook. The owner of the tenant's
// partition delivers the first crossings and is killed with SIGKILL; the
// next owner delivers the later ones and none of the earlier: each
// crossing reaches the webhook exactly once, from one instance at a time.
func TestNoticesAcrossAFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-node cluster and three creditd processes")
	}
	var mu sync.Mutex
	posts := map[string]int{} // Creditd-Notice-Key → POSTs
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		posts[r.Header.Get("Creditd-Notice-Key")]++
		mu.Unlock()
	}))
	defer hook.Close()
	delivered := func() (keys, total int) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range posts {
			keys, total = keys+1, total+n
		}
		return keys, total
	}
	waitDelivered := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if keys, _ := delivered(); keys >= want {
				return
			}
			if time.Now().After(deadline) {
				keys, total := delivered()
				t.Fatalf("%d crossings delivered (%d POSTs), want %d", keys, total, want)
			}
		}
	}

	natsURL, _ := externalNATS(t, 3)
	bin := buildBinary(t, t.TempDir())
	hooks := []string{"--webhook-allow-http", "--webhook-allow-hosts", "127.0.0.1"}
	instances := []*servingInstance{
		startClusterInstance(t, bin, natsURL, "a", hooks...),
		startClusterInstance(t, bin, natsURL, "b", hooks...),
		startClusterInstance(t, bin, natsURL, "c", hooks...),
	}
	waitOwned(t, 20*time.Second, instances...)
	var tenant testTenant
	post(t, instances[0].base+"/v1/tenants", "admin", `{"name":"acme"}`, http.StatusCreated, &tenant)
	post(t, instances[0].base+"/v1/grants", tenant.APIKey, `{"grant_id":"g1","amount":"100"}`, http.StatusCreated, nil)
	req, _ := http.NewRequest(http.MethodPut, instances[0].base+"/v1/notices", strings.NewReader(`{"thresholds":["90","70","50","30","10"],"webhook_url":"`+hook.URL+`"}`))
	req.Header.Set("Authorization", "Bearer "+tenant.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /v1/notices: %v %v", resp, err)
	}
	resp.Body.Close()

	spend := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			body := fmt.Sprintf(`{"events":[{"id":"u%d","amount":"5"}]}`, i)
			for attempt := 0; ; attempt++ {
				in := instances[(i+attempt)%len(instances)]
				if in.gone.Load() {
					continue
				}
				if status := postUsage(in.base, tenant.APIKey, body); status == http.StatusOK {
					break
				} else if status != http.StatusServiceUnavailable && status != 0 || attempt > 200 {
					t.Fatalf("usage %d: status %d", i, status)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	// 100 → 60: below 90 and 70.
	spend(0, 8)
	waitDelivered(2)
	owner := ownerOf(t, tenant.TenantID, instances...)
	// The owner records each delivery right after its POST; give it time.
	time.Sleep(time.Second)
	owner.kill()
	t.Logf("killed %s, the owner, after 2 crossings", owner.name)
	var survivors []*servingInstance
	for _, in := range instances {
		if in != owner {
			survivors = append(survivors, in)
		}
	}
	waitOwned(t, clusterTTL+10*time.Second, survivors...)
	// 60 → 0: below 50, 30, 10, and depleted.
	spend(8, 20)
	waitDelivered(6)
	time.Sleep(2 * time.Second) // a second sender, if any, would show by now
	mu.Lock()
	defer mu.Unlock()
	for key, n := range posts {
		if n != 1 {
			t.Errorf("crossing %s POSTed %d times", key, n)
		}
	}
	if len(posts) != 6 {
		t.Errorf("%d crossings delivered, want 6 (5 thresholds and depleted)", len(posts))
	}
}
