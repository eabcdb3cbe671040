package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/projections"
)

// catchUpHold holds serve's start-up catch-up of the read models after its
// first batch, until released: the state a long first start is in for
// minutes, without a sleep.
type catchUpHold struct {
	held    chan projections.Progress
	release chan struct{}
	once    sync.Once
	unhold  sync.Once
}

func newCatchUpHold() *catchUpHold {
	return &catchUpHold{held: make(chan projections.Progress, 1), release: make(chan struct{})}
}

// progress is serveHooks.readModelsProgress.
func (h *catchUpHold) progress(p projections.Progress) {
	h.once.Do(func() {
		h.held <- p
		<-h.release
	})
}

func (h *catchUpHold) let() { h.unhold.Do(func() { close(h.release) }) }

// inProcessServe runs serve in this process on dataDir with hooks; it
// returns the HTTP base URL once serve listens, the log it writes, and
// stops it at the test's end.
func inProcessServe(t *testing.T, dataDir string, hold *catchUpHold) (base string, logs *lockedBuffer) {
	t.Helper()
	cfg, err := parseServeFlags([]string{"--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--checkpoint-interval", "0"})
	if err != nil {
		t.Fatal(err)
	}
	logs = &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, cfg, slog.New(slog.NewJSONHandler(logs, nil)), serveHooks{
			readModelsProgress: hold.progress,
			listening:          func(addr string) { listening <- addr },
		})
	}()
	t.Cleanup(func() {
		hold.let()
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("serve did not stop")
		}
	})
	// The hold shows the catch-up under way; serve must listen meanwhile.
	var progress projections.Progress
	select {
	case progress = <-hold.held:
	case err := <-done:
		t.Fatalf("serve ended before catching up: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("the read models' catch-up never applied a batch\n%s", logs.String())
	}
	select {
	case addr := <-listening:
		base = "http://" + addr
	case err := <-done:
		t.Fatalf("serve ended: %v\n%s", err, logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("serve does not accept writes while its read models catch up (held at position %d of %d)", progress.Position, progress.UpTo)
	}
	return base, logs
}

// answer is an HTTP answer read whole.
type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func call(t *testing.T, method, url, bearer, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	dec.Decode(&a.body)
	return a
}

// generateLog writes a log of generatedEventsTest events in commits of
// ten (so the catch-up takes several batches) and returns its tenants and
// last position.
func generateLog(t *testing.T, dataDir string) ([]generatedTenant, uint64) {
	t.Helper()
	keys := filepath.Join(t.TempDir(), "keys.ndjson")
	stdout := os.Stdout
	out, err := os.CreateTemp(t.TempDir(), "generate")
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout = out
	err = benchGenerate([]string{"--data-dir", dataDir, "--events", fmt.Sprint(generatedEventsTest),
		"--tenants", fmt.Sprint(generatedTenantsTest), "--commit-events", "10", "--keys", keys})
	os.Stdout = stdout
	if err != nil {
		t.Fatal(err)
	}
	printed, _ := os.ReadFile(out.Name())
	var res generateResult
	if err := json.Unmarshal(printed, &res); err != nil {
		t.Fatalf("generate printed %q: %v", printed, err)
	}
	return readGeneratedKeys(t, keys), res.LogPosition
}

// indexExists tells whether the SQLite file at path has the named index.
func indexExists(t *testing.T, path, index string) bool {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?`, index).Scan(&n); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return n > 0
}

// waitReady polls /readyz until it answers 200.
func waitReady(t *testing.T, base string) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		a := call(t, http.MethodGet, base+"/readyz", "", "")
		if a.status == http.StatusOK {
			return a.body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %s", a.status, a.raw)
		}
	}
}

// TestServeAcceptsWritesWhileItBuildsReadModels starts serve on a generated
// log with no read models, and a torn database a crashed build left beside
// them. While the build is held after its first batch: writes are
// accepted; reads answer 503 read-models-catching-up naming the position
// reached and the target (in each compat profile's own error shape);
// /readyz says writes are ready and reads are not; the build goes to a
// file beside the live one, without the ledger's indexes (the bulk path).
// Once released: /readyz is ready, the new write is read, the indexes are
// there and the side file is gone.
func TestServeAcceptsWritesWhileItBuildsReadModels(t *testing.T) {
	if testing.Short() {
		t.Skip("generates a log of 20,000 events")
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	tenants, last := generateLog(t, dataDir)
	live := filepath.Join(dataDir, readModelFile)
	building := live + ".rebuilding"
	if err := os.WriteFile(building, []byte("a build that crashed half-way"), 0o600); err != nil {
		t.Fatal(err)
	}
	hold := newCatchUpHold()
	base, logs := inProcessServe(t, dataDir, hold)
	tenant := tenants[0]

	var write struct {
		Accepted int    `json:"accepted"`
		Position uint64 `json:"position"`
	}
	post(t, base+"/v1/usage", tenant.APIKey, `{"events":[{"id":"during-build","amount":"1"}]}`, http.StatusOK, &write)
	if write.Accepted != 1 || write.Position <= last {
		t.Fatalf("a write during the build: %+v, want accepted after %d", write, last)
	}

	t.Run("reads_answer_503_naming_the_position_and_the_target", func(t *testing.T) {
		for _, path := range []string{"/v1/balance", "/v1/ledger", fmt.Sprintf("/v1/balance?min_position=%d", write.Position), "/v1/balance?min_position=1"} {
			a := call(t, http.MethodGet, base+path, tenant.APIKey, "")
			if a.status != http.StatusServiceUnavailable || a.body["type"] != "urn:creditd:problem:read-models-catching-up" ||
				a.header.Get("Retry-After") == "" || !strings.Contains(fmt.Sprint(a.body["detail"]), fmt.Sprint(last)) {
				t.Errorf("GET %s while catching up: %d %v %s, want 503 read-models-catching-up naming %d", path, a.status, a.header, a.raw, last)
			}
		}
	})
	t.Run("compat_profiles_answer_in_their_own_shape", func(t *testing.T) {
		a := call(t, http.MethodGet, base+"/compat/openrouter/api/v1/credits", tenant.APIKey, "")
		object, _ := a.body["error"].(map[string]any)
		if a.status != http.StatusServiceUnavailable || object == nil || !strings.Contains(fmt.Sprint(object["message"]), "catching up") {
			t.Errorf("openrouter while catching up: %d %s", a.status, a.raw)
		}
		a = call(t, http.MethodGet, base+"/compat/tamtam/api/v2/credits", tenant.APIKey, "")
		if _, has := a.body["request_id"]; a.status != http.StatusServiceUnavailable || has || a.body["type"] != "urn:creditd:problem:read-models-catching-up" {
			t.Errorf("tamtam while catching up: %d %s", a.status, a.raw)
		}
	})
	t.Run("readyz_tells_writes_from_reads", func(t *testing.T) {
		a := call(t, http.MethodGet, base+"/readyz", "", "")
		catchUp, _ := a.body["catch_up"].(map[string]any)
		if a.status != http.StatusServiceUnavailable || a.body["writes"] != "ready" || a.body["reads"] != "catching_up" ||
			catchUp == nil || catchUp["mode"] != "bulk" || fmt.Sprint(catchUp["target"]) != fmt.Sprint(last) {
			t.Errorf("/readyz while catching up: %d %s", a.status, a.raw)
		}
		if a := call(t, http.MethodGet, base+"/readyz?scope=writes", "", ""); a.status != http.StatusOK {
			t.Errorf("/readyz?scope=writes while catching up: %d %s", a.status, a.raw)
		}
		metrics := call(t, http.MethodGet, base+"/metrics", "", "").raw
		for _, want := range []string{"creditd_read_models_ready 0", fmt.Sprintf("creditd_read_models_catch_up_target_position %d", last)} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics while catching up lacks %q", want)
			}
		}
	})
	t.Run("the_build_is_in_bulk_beside_the_live_file", func(t *testing.T) {
		if _, err := os.Stat(live); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists during the build (%v): a half-built read model in place", live, err)
		}
		if _, err := os.Stat(building); err != nil || indexExists(t, building, "ledger_tenant_time") {
			t.Errorf("the build beside the live file: %v, or it keeps the ledger's indexes (not the bulk path)", err)
		}
	})

	hold.let()
	ready := waitReady(t, base)
	if ready["reads"] != "ready" || ready["writes"] != "ready" {
		t.Errorf("/readyz once ready: %v", ready)
	}
	balance := get(t, fmt.Sprintf("%s/v1/balance?min_position=%d", base, write.Position), tenant.APIKey)
	used := decimal.RequireFromString(tenant.Used).Add(decimal.NewFromInt(1))
	if got := balance["total"].(map[string]any)["used"].(json.Number).String(); !decimal.RequireFromString(got).Equal(used) {
		t.Errorf("used after the build: %s, want %s", got, used)
	}
	checkGeneratedBalances(t, base, tenants[1:], last)
	if _, err := os.Stat(building); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left after the build: %v", building, err)
	}
	if !indexExists(t, live, "ledger_tenant_time") {
		t.Errorf("the live read models lack the ledger's indexes")
	}
	if !strings.Contains(logs.String(), "building the read models in bulk") {
		t.Errorf("no log line of the bulk build:\n%s", logs.String())
	}
	if metrics := call(t, http.MethodGet, base+"/metrics", "", "").raw; !strings.Contains(metrics, "creditd_read_models_ready 1") {
		t.Errorf("/metrics once ready lacks creditd_read_models_ready 1")
	}
}

// TestServeCatchesUpReadModelsBehindTheLog starts serve on read models a
// little behind the log: they are caught up in place, row by row, while
// writes are accepted; a read whose min_position they already hold is
// served during the catch-up, any other waits for it.
func TestServeCatchesUpReadModelsBehindTheLog(t *testing.T) {
	if testing.Short() {
		t.Skip("generates a log of 20,000 events")
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	tenants, last := generateLog(t, dataDir)
	live := filepath.Join(dataDir, readModelFile)
	// Read models at the end of the registry and the grants, before most
	// of the usage: behind, yet by less than the bulk threshold.
	behind := uint64(generatedTenantsTest + 4)
	natsURL := ""
	store, closeLog, err := logFlags{dataDir: &dataDir, natsURL: &natsURL}.open(t.Context(), "creditd-test", true)
	if err != nil {
		t.Fatal(err)
	}
	position, err := replayInto(t.Context(), store, live, projections.ReplayOptions{UpTo: behind, Bulk: true})
	closeLog()
	if err != nil || position != behind {
		t.Fatalf("read models at %d: %d %v", behind, position, err)
	}
	hold := newCatchUpHold()
	base, _ := inProcessServe(t, dataDir, hold)
	tenant := tenants[0]
	post(t, base+"/v1/usage", tenant.APIKey, `{"events":[{"id":"during-catch-up","amount":"1"}]}`, http.StatusOK, nil)
	if a := call(t, http.MethodGet, fmt.Sprintf("%s/v1/balance?min_position=%d", base, behind), tenant.APIKey, ""); a.status != http.StatusOK {
		t.Errorf("a read of a position the read models hold, during the catch-up: %d %s", a.status, a.raw)
	}
	if a := call(t, http.MethodGet, base+"/v1/balance", tenant.APIKey, ""); a.status != http.StatusServiceUnavailable {
		t.Errorf("a read during the catch-up: %d %s, want 503", a.status, a.raw)
	}
	a := call(t, http.MethodGet, base+"/readyz", "", "")
	if catchUp, _ := a.body["catch_up"].(map[string]any); catchUp == nil || catchUp["mode"] != "in_place" {
		t.Errorf("/readyz during the catch-up: %s", a.raw)
	}
	if _, err := os.Stat(live + ".rebuilding"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a catch-up in place built a side file: %v", err)
	}
	hold.let()
	waitReady(t, base)
	checkGeneratedBalances(t, base, tenants[1:], last)
}

func TestBulkBuildWhenEmptyOrFarBehind(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name               string
		checkpoint, target uint64
		bulk               bool
	}{
		{"empty_read_models_of_a_log", 0, 5, true},
		{"an_empty_log", 0, 0, false},
		{"at_the_end", 6_000, 6_000, false},
		{"a_little_behind", 5_000, 6_000, false},
		{"behind_by_less_than_the_least_lag", 1, 10_001, false},
		{"behind_by_more_than_a_quarter", 30_000, 50_000, true},
		{"behind_by_many_but_less_than_a_quarter", 900_000, 1_000_000, false},
		{"ahead_of_the_log", 7_000, 6_000, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := bulkBuildWorthIt(c.checkpoint, c.target); got != c.bulk {
				t.Errorf("bulkBuildWorthIt(%d, %d) = %v, want %v", c.checkpoint, c.target, got, c.bulk)
			}
		})
	}
}
