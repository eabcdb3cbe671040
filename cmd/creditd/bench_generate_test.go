package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// Shape of the generated logs the tests start on: small enough for a test,
// many commits and tenants per partition all the same.
const (
	generatedEventsTest  = 20_000
	generatedTenantsTest = 50
)

// TestGeneratedLogIsOneServeAccepts generates a log with the binary, serves
// it, and checks every tenant's balance over HTTP against its grant and
// usage; an id the generator wrote is answered as a duplicate on the first
// start and after two restarts, a new write lands after the generated
// commits, and creditd verify finds nothing to report.
func TestGeneratedLogIsOneServeAccepts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, dataDir, addr := newBinaryRun(t)
	base := "http://" + addr
	keys := filepath.Join(t.TempDir(), "keys.ndjson")
	out, err := exec.Command(bin, "bench", "generate", "--data-dir", dataDir, "--events", fmt.Sprint(generatedEventsTest),
		"--tenants", fmt.Sprint(generatedTenantsTest), "--commit-events", "500", "--keys", keys).Output()
	if err != nil {
		t.Fatalf("generate: %v\n%s", err, out)
	}
	var res generateResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("generate printed %q: %v", out, err)
	}
	// A registry commit per tenant, a grant commit per partition, then the
	// usage commits.
	if res.Events != generatedEventsTest || res.LogPosition != uint64(generatedTenantsTest+res.Commits) || res.Commits < generatedEventsTest/500 {
		t.Fatalf("generate: %+v", res)
	}
	tenants := readGeneratedKeys(t, keys)

	stop := startServer(t, bin, dataDir, addr)
	checkGeneratedBalances(t, base, tenants, res.LogPosition)
	sample := []generatedTenant{tenants[0], tenants[len(tenants)/2], tenants[len(tenants)-1]}
	for _, tenant := range sample {
		repeatGeneratedUsage(t, base, tenant)
	}
	// The writer links its next commit to the last generated one.
	var fresh struct {
		Accepted int    `json:"accepted"`
		Position uint64 `json:"position"`
	}
	post(t, base+"/v1/usage", tenants[0].APIKey, `{"events":[{"id":"after-generate","amount":"1"}]}`, http.StatusOK, &fresh)
	if fresh.Accepted != 1 || fresh.Position <= res.LogPosition {
		t.Fatalf("a new write after the generated log: %+v", fresh)
	}
	stop()

	for restart := 1; restart <= 2; restart++ {
		stop = startServer(t, bin, dataDir, addr)
		for _, tenant := range sample {
			repeatGeneratedUsage(t, base, tenant)
		}
		balance := get(t, fmt.Sprintf("%s/v1/balance?min_position=%d", base, fresh.Position), tenants[0].APIKey)
		used := decimal.RequireFromString(tenants[0].Used).Add(decimal.NewFromInt(1))
		if got := balance["total"].(map[string]any)["used"].(json.Number).String(); !decimal.RequireFromString(got).Equal(used) {
			t.Fatalf("restart %d: used %s, want %s", restart, got, used)
		}
		stop()
	}

	if out, err := exec.Command(bin, "verify", "--data-dir", dataDir).CombinedOutput(); err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "OK") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
}

// TestGeneratedIDsComeBackFromTheIndex starts the write side on a generated
// log three times with an in-memory window of a thousand ids: the first
// start writes most of the generator's ids out to the id index while it
// reads the log, the later ones find them there only, and every generated
// id is still a duplicate with its original position.
func TestGeneratedIDsComeBackFromTheIndex(t *testing.T) {
	if testing.Short() {
		t.Skip("generates a log of 20,000 events")
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	keys := filepath.Join(t.TempDir(), "keys.ndjson")
	if err := benchGenerate([]string{"--data-dir", dataDir, "--events", fmt.Sprint(generatedEventsTest),
		"--tenants", fmt.Sprint(generatedTenantsTest), "--partitions", "2", "--keys", keys}); err != nil {
		t.Fatal(err)
	}
	tenants := readGeneratedKeys(t, keys)
	ctx := t.Context()
	positions := map[int64]uint64{}
	for start := range 3 {
		link, err := openNATS(serveConfig{dataDir: dataDir}, nil, newLogger())
		if err != nil {
			t.Fatal(err)
		}
		nc, err := link.dial("test")
		if err != nil {
			t.Fatal(err)
		}
		store, err := eventstore.Open(ctx, nc, eventstore.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if store.Partitions() != 2 {
			t.Fatalf("partitions %d, want the 2 generated", store.Partitions())
		}
		engine, err := commands.New(ctx, store, commands.Options{
			Snapshots: commands.SnapshotOptions{Dir: filepath.Join(dataDir, "index"), Window: 1000}})
		if err != nil {
			t.Fatal(err)
		}
		for _, tenant := range tenants {
			// The first and the last id of each tenant: one read early in
			// the log, one near its end.
			for _, n := range []int{0, tenant.UsageEvents - 1} {
				results, err := engine.RecordUsage(ctx, tenant.TenantID, []commands.UsageEvent{{CreditType: domain.DefaultCreditType, RecordUsage: generatedUsage(n)}})
				if err != nil {
					t.Fatal(err)
				}
				key := tenant.TenantID<<32 | int64(n)
				if r := results[0]; !r.Duplicate || r.Status != commands.StatusDuplicate || (positions[key] != 0 && r.Position != positions[key]) {
					t.Fatalf("start %d, tenant %d, %s: %+v, want a duplicate at %d", start, tenant.TenantID, generateUsageID(n), r, positions[key])
				} else {
					positions[key] = r.Position
				}
			}
			line, _, err := engine.Line(ctx, tenant.TenantID, domain.DefaultCreditType)
			if err != nil {
				t.Fatal(err)
			}
			if want := decimal.RequireFromString(tenant.Used); !line.Used.Equal(want) {
				t.Fatalf("start %d, tenant %d: used %s, want %s", start, tenant.TenantID, line.Used, want)
			}
		}
		engine.Close()
		nc.Close()
		link.close()
	}
	segments, _ := filepath.Glob(filepath.Join(dataDir, "index", "p*", "*.seg"))
	// One segment per partition would be the close's alone: more means the
	// window was written out while the log was read.
	if len(segments) <= 2 {
		t.Fatalf("%d id index segments, want the window written out as it filled", len(segments))
	}
}

func readGeneratedKeys(t *testing.T, path string) []generatedTenant {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []generatedTenant
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		var tenant generatedTenant
		if err := json.Unmarshal(lines.Bytes(), &tenant); err != nil {
			t.Fatal(err)
		}
		out = append(out, tenant)
	}
	if len(out) != generatedTenantsTest {
		t.Fatalf("%d tenants in %s, want %d", len(out), path, generatedTenantsTest)
	}
	total := 0
	for _, tenant := range out {
		total += tenant.UsageEvents
	}
	if total != generatedEventsTest {
		t.Fatalf("the tenants' events add up to %d, want %d", total, generatedEventsTest)
	}
	return out
}

// checkGeneratedBalances reads every tenant's balance once the read models
// hold the whole log: granted less the generated usage.
func checkGeneratedBalances(t *testing.T, base string, tenants []generatedTenant, position uint64) {
	t.Helper()
	for _, tenant := range tenants {
		balance := get(t, fmt.Sprintf("%s/v1/balance?min_position=%d", base, position), tenant.APIKey)
		total := balance["total"].(map[string]any)
		granted, used := decimal.RequireFromString(tenant.Granted), decimal.RequireFromString(tenant.Used)
		for field, want := range map[string]decimal.Decimal{"granted": granted, "used": used, "available": granted.Sub(used)} {
			got, err := decimal.NewFromString(total[field].(json.Number).String())
			if err != nil || !got.Equal(want) {
				t.Fatalf("tenant %d: %s %v, want %s", tenant.TenantID, field, total[field], want)
			}
		}
	}
}

// repeatGeneratedUsage sends a tenant's first generated event again.
func repeatGeneratedUsage(t *testing.T, base string, tenant generatedTenant) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"events": []any{tenant.FirstUsage}})
	var again struct {
		Accepted   int `json:"accepted"`
		Duplicates int `json:"duplicates"`
		Results    []struct {
			Status   string `json:"status"`
			Position uint64 `json:"position"`
		} `json:"results"`
	}
	post(t, base+"/v1/usage", tenant.APIKey, string(body), http.StatusOK, &again)
	if again.Duplicates != 1 || again.Accepted != 0 || again.Results[0].Position == 0 {
		t.Fatalf("tenant %d: %s sent again: %+v, want a duplicate", tenant.TenantID, tenant.FirstUsage.ID, again)
	}
}

// The generated events must be the ones the write side decides for the
// same request: a usage sent through the engine on a fresh line stores the
// same event as the generator's.
func TestGeneratedUsageIsTheEngines(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded server")
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	link, err := openNATS(serveConfig{dataDir: dataDir}, nil, newLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer link.close()
	nc, err := link.dial("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx := context.Background()
	store, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	engine, err := commands.New(ctx, store, commands.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	created, err := engine.CreateTenant(ctx, commands.CreateTenant{Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Grant(ctx, created.Tenant.ID, domain.DefaultCreditType, newBenchGrant()); err != nil {
		t.Fatal(err)
	}
	results, err := engine.RecordUsage(ctx, created.Tenant.ID, []commands.UsageEvent{{CreditType: domain.DefaultCreditType, RecordUsage: generatedUsage(7)}})
	if err != nil || results[0].Status != commands.StatusAccepted {
		t.Fatalf("%+v %v", results, err)
	}
	stored, err := store.Load(ctx, results[0].Position)
	if err != nil {
		t.Fatal(err)
	}
	commit, err := eventstore.DecodeCommit(stored.Data)
	if err != nil {
		t.Fatal(err)
	}
	byEngine := commit.Events[0].Event.(domain.UsageDebited)

	queue := make(chan encodedCommit, 4)
	tenant := generatedTenant{TenantID: created.Tenant.ID, UsageEvents: 8}
	if err := generatePartition(ctx, 0, []generatedTenant{tenant}, 100, store.MaxCommitBytes(), queue); err != nil {
		t.Fatal(err)
	}
	close(queue)
	var generated []domain.Envelope
	for c := range queue {
		commit, err := eventstore.DecodeCommit(c.data)
		if err != nil {
			t.Fatal(err)
		}
		generated = append(generated, commit.Events...)
	}
	if len(generated) != 9 {
		t.Fatalf("%d events generated, want a grant and 8 usages", len(generated))
	}
	byGenerator := generated[8].Event.(domain.UsageDebited)
	// Only the instants differ: each was decided at its own.
	byGenerator.OccurredAt = byEngine.OccurredAt
	a, _ := json.Marshal(byEngine)
	b, _ := json.Marshal(byGenerator)
	if string(a) != string(b) {
		t.Fatalf("engine stored %s\ngenerator wrote %s", a, b)
	}
}
