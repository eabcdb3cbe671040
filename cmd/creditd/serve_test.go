package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creditd/creditd/commands"
)

// TestServeAsANewcomerWould builds the binary, runs `creditd serve` on an
// empty data dir, creates a tenant with the printed admin token, writes, stops
// it with SIGTERM, starts it again on the same data and checks that the
// acknowledged write is remembered.
func TestServeAsANewcomerWould(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, dataDir, addr := newBinaryRun(t)
	base := "http://" + addr

	stop := startServer(t, bin, dataDir, addr)
	tenant := createTenant(t, base, dataDir)
	post(t, base+"/v1/grants", tenant.APIKey, `{"grant_id":"g1","amount":"10"}`, http.StatusCreated, nil)
	var first struct {
		Accepted int    `json:"accepted"`
		Position uint64 `json:"position"`
	}
	post(t, base+"/v1/usage", tenant.APIKey, `{"events":[{"id":"u1","amount":"2.5"}]}`, http.StatusOK, &first)
	if first.Accepted != 1 {
		t.Fatalf("first usage: %+v", first)
	}
	stop()

	// The read models rebuilt from the log while the server is stopped.
	if out, err := exec.Command(bin, "rebuild", "--data-dir", dataDir).CombinedOutput(); err != nil {
		t.Fatalf("rebuild: %v\n%s", err, out)
	}

	stop = startServer(t, bin, dataDir, addr)
	defer stop()
	balance := get(t, fmt.Sprintf("%s/v1/balance?min_position=%d", base, first.Position), tenant.APIKey)
	if got := fmt.Sprint(balance["total"].(map[string]any)["available"]); got != "7.5" {
		t.Fatalf("available after rebuild and restart = %s, want 7.5", got)
	}
	var again struct {
		Accepted   int    `json:"accepted"`
		Duplicates int    `json:"duplicates"`
		Position   uint64 `json:"position"`
	}
	post(t, base+"/v1/usage", tenant.APIKey, `{"events":[{"id":"u1","amount":"2.5"}]}`, http.StatusOK, &again)
	if again.Duplicates != 1 || again.Position != first.Position {
		t.Fatalf("after restart: %+v, want a duplicate at %d", again, first.Position)
	}
	// 7.5 left: 8 does not fit, 7.5 does.
	var over struct{ Rejected int }
	post(t, base+"/v1/usage", tenant.APIKey, `{"events":[{"id":"u2","amount":"8"}]}`, http.StatusOK, &over)
	var fits struct{ Accepted int }
	post(t, base+"/v1/usage", tenant.APIKey, `{"events":[{"id":"u3","amount":"7.5"}]}`, http.StatusOK, &fits)
	if over.Rejected != 1 || fits.Accepted != 1 {
		t.Fatalf("balance after restart is wrong: over=%+v fits=%+v", over, fits)
	}
}

// newBinaryRun builds creditd and picks an empty data dir and a free
// loopback address for it.
func newBinaryRun(t *testing.T) (bin, dataDir, addr string) {
	t.Helper()
	dir := t.TempDir()
	return buildBinary(t, dir), filepath.Join(dir, "data"), freeAddr(t)
}

// testTenant is a tenant created through the admin API.
type testTenant struct {
	TenantID int64  `json:"tenant_id"`
	APIKey   string `json:"api_key"`
	KeyID    string `json:"key_id"`
}

// createTenant creates a tenant with the admin token serve wrote into the
// data dir, as the README tells a newcomer to.
func createTenant(t *testing.T, base, dataDir string) testTenant {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	var tenant testTenant
	post(t, base+"/v1/tenants", strings.TrimSpace(string(token)), `{"name":"acme"}`, http.StatusCreated, &tenant)
	return tenant
}

func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "creditd")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServer runs the binary and waits for /healthz; the returned func
// sends SIGTERM and waits for a clean exit.
func startServer(t *testing.T, bin, dataDir, addr string) func() {
	t.Helper()
	_, stop := startServerProcess(t, bin, dataDir, addr)
	return stop
}

// startServerProcess is startServer that also returns the running process;
// extra are more serve flags. The stop func is also registered as a
// cleanup, so a failing test never leaves the process behind.
func startServerProcess(t *testing.T, bin, dataDir, addr string, extra ...string) (*os.Process, func()) {
	t.Helper()
	var stderr lockedBuffer
	cmd := exec.Command(bin, append([]string{"serve", "--data-dir", dataDir, "--http-addr", addr}, extra...)...)
	cmd.Env = append(os.Environ(), "CREDITD_ADMIN_TOKEN=")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for deadline := time.Now().Add(20 * time.Second); ; {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("creditd exited early: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("creditd not healthy in time\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("creditd exit: %v\n%s", err, stderr.String())
				}
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Errorf("creditd did not stop on SIGTERM\n%s", stderr.String())
			}
		})
	}
	t.Cleanup(stop)
	return cmd.Process, stop
}

func get(t *testing.T, url, bearer string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v %v", url, resp.StatusCode, out, err)
	}
	return out
}

func post(t *testing.T, url, bearer, body string, wantStatus int, out any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	raw.ReadFrom(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("POST %s: %d, want %d: %s", url, resp.StatusCode, wantStatus, raw.String())
	}
	if out != nil {
		if err := json.Unmarshal(raw.Bytes(), out); err != nil {
			t.Fatal(fmt.Errorf("decode %s: %w", raw.String(), err))
		}
	}
}

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "creditd.conf")
	os.WriteFile(file, []byte("# settings\nhttp-addr = 127.0.0.1:9999\ningest-workers = 7\nnotices = false\n"), 0o600)
	t.Setenv("CREDITD_INGEST_WORKERS", "9")
	cfg, err := parseServeFlags([]string{"--config", file, "--data-dir", "/x"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.httpAddr != "127.0.0.1:9999" || cfg.workers != 9 || cfg.notices || cfg.dataDir != "/x" || cfg.checkpoint != time.Hour {
		t.Fatalf("config %+v: want file < env < flags over defaults", cfg)
	}
	os.WriteFile(file, []byte("no-such-setting = 1\n"), 0o600)
	if _, err := parseServeFlags([]string{"--config", file}); err == nil {
		t.Fatal("an unknown setting was accepted")
	}
}

func TestMetricsEndpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	addr := freeAddr(t)
	stop := startServer(t, bin, filepath.Join(dir, "data"), addr)
	defer stop()
	http.Get("http://" + addr + "/v1/balance")
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	for _, name := range []string{"creditd_http_requests_total{route=\"GET /v1/balance\",status=\"401\"} 1", "creditd_projection_lag_positions", "creditd_projection_lag_seconds_count",
		"creditd_projection_position", "creditd_ingest_pending_messages", "creditd_commits_total", "creditd_append_conflicts_total",
		"creditd_usage_dead_letters_total", "creditd_usage_dead_letters_dropped_total 0", "creditd_ids_in_memory ", "creditd_ids_in_memory_budget 1.048576e+06", "creditd_usage_requests_dropped_total 0", "creditd_http_request_duration_seconds_bucket"} {
		if !strings.Contains(body.String(), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func TestWebhookFlags(t *testing.T) {
	cfg, err := parseServeFlags([]string{"--webhook-allow-http", "--webhook-allow-hosts", "127.0.0.1, hooks.internal,10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.webhooks.AllowHTTP || strings.Join(cfg.webhooks.AllowHosts, "|") != "127.0.0.1|hooks.internal|10.0.0.0/8" {
		t.Fatalf("webhook policy %+v", cfg.webhooks)
	}
	if err := cfg.webhooks.CheckURL("http://127.0.0.1:9/"); err != nil {
		t.Fatalf("the admitted address is refused: %v", err)
	}
	if _, err := parseServeFlags([]string{"--webhook-allow-hosts", "hooks/internal"}); err == nil {
		t.Fatal("an allowlist entry that is no host was accepted")
	}
	strict, _ := parseServeFlags(nil)
	if strict.webhooks.CheckURL("http://hooks.example.com/") == nil || strict.webhooks.CheckURL("https://127.0.0.1/") == nil {
		t.Fatal("the default policy admits http or loopback")
	}
}

func TestIDWindowFlag(t *testing.T) {
	cfg, err := parseServeFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.idWindow != commands.SnapshotWindowDefault {
		t.Fatalf("--id-window defaults to %d, want %d", cfg.idWindow, commands.SnapshotWindowDefault)
	}
	t.Setenv("CREDITD_ID_WINDOW", "250000")
	if cfg, err = parseServeFlags(nil); err != nil || cfg.idWindow != 250000 {
		t.Fatalf("CREDITD_ID_WINDOW=250000 gave %d, %v", cfg.idWindow, err)
	}
	for _, bad := range []string{"0", "-1", "16383", "2000000000"} {
		if _, err := parseServeFlags([]string{"--id-window", bad}); err == nil || !strings.Contains(err.Error(), "--id-window") {
			t.Errorf("--id-window %s: err %v, want one naming the flag", bad, err)
		}
	}
}
