package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditCommands runs the audit commands as an auditor would, on a
// stopped server's data dir: verify, replay to a position, export a
// tenant's events, import them into an empty creditd, rebuild and verify
// there.
func TestAuditCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, dataDir, addr := newBinaryRun(t)
	dir := t.TempDir()
	base := "http://" + addr
	stop := startServer(t, bin, dataDir, addr)
	tenant := createTenant(t, base, dataDir)
	post(t, base+"/v1/grants", tenant.APIKey, `{"grant_id":"g1","amount":"10"}`, http.StatusCreated, nil)
	var first struct{ Position uint64 }
	post(t, base+"/v1/usage", tenant.APIKey, `{"events":[{"id":"u1","amount":"2.5"}]}`, http.StatusOK, &first)
	post(t, base+"/v1/usage", tenant.APIKey, `{"events":[{"id":"u2","amount":"1"}]}`, http.StatusOK, nil)
	get(t, base+"/v1/balance?min_position=4", tenant.APIKey)
	stop()

	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("creditd %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run("verify", "--data-dir", dataDir); !strings.Contains(out, "OK") {
		t.Fatalf("verify: %s", out)
	}
	replayDir := filepath.Join(dir, "replay")
	run("replay", "--data-dir", dataDir, "--out", replayDir, "--until-position", "3")
	if _, err := os.Stat(filepath.Join(replayDir, "readmodel.db")); err != nil {
		t.Fatal(err)
	}
	export := run("export", "--data-dir", dataDir, "--tenant", "1", "--what", "events")
	if strings.Count(export, "\n") < 4 || !strings.Contains(export, `"UsageDebited"`) {
		t.Fatalf("export: %s", export)
	}
	exportFile := filepath.Join(dir, "events.ndjson")
	if err := os.WriteFile(exportFile, []byte(ndjsonLines(export)), 0o600); err != nil {
		t.Fatal(err)
	}
	ledger := run("export", "--data-dir", dataDir, "--tenant", "1", "--what", "ledger", "--format", "csv")
	if !strings.Contains(ledger, "-2.500000") {
		t.Fatalf("ledger export: %s", ledger)
	}
	imported := filepath.Join(dir, "imported")
	run("import", "--data-dir", imported, "--in", exportFile)
	run("rebuild", "--data-dir", imported)
	if out := run("verify", "--data-dir", imported); !strings.Contains(out, "OK") {
		t.Fatalf("verify after import: %s", out)
	}
}

// ndjsonLines keeps the JSON lines of a command's output (logs may share
// the stream).
func ndjsonLines(out string) string {
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, `{"position"`) {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}
