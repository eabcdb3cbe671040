package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOneProcessPerDataDirectory starts creditd serve, then every command
// that opens the same data directory: each exits at once naming the
// server's pid, and the server keeps serving. The secrets and read models
// it created are readable by their owner alone.
func TestOneProcessPerDataDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, dataDir, addr := newBinaryRun(t)
	base := "http://" + addr
	server, stop := startServerProcess(t, bin, dataDir, addr)
	defer stop()
	tenant := createTenant(t, base, dataDir)
	post(t, base+"/v1/grants", tenant.APIKey, `{"grant_id":"g1","amount":"10"}`, http.StatusCreated, nil)

	holder := fmt.Sprintf("pid %d", server.Pid)
	for _, args := range [][]string{
		{"serve", "--data-dir", dataDir, "--http-addr", freeAddr(t)},
		{"rebuild", "--data-dir", dataDir},
		{"verify", "--data-dir", dataDir},
		{"replay", "--data-dir", dataDir, "--out", filepath.Join(t.TempDir(), "replay")},
		{"import", "--data-dir", dataDir, "--in", os.DevNull},
		{"export", "--data-dir", dataDir, "--tenant", "1"},
	} {
		t.Run(args[0]+"_exits_at_once_naming_the_holder", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Env = append(os.Environ(), "CREDITD_ADMIN_TOKEN=")
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("creditd %s still running after 15 s beside a serving creditd\n%s", args[0], out)
			}
			if err == nil {
				t.Fatalf("creditd %s succeeded beside a serving creditd\n%s", args[0], out)
			}
			if !strings.Contains(string(out), holder) {
				t.Fatalf("creditd %s: error does not name %s:\n%s", args[0], holder, out)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("creditd %s took %s to refuse", args[0], d)
			}
		})
	}

	// The first server is untouched: it answers and its writes are kept.
	var used struct{ Accepted int }
	post(t, base+"/v1/usage", tenant.APIKey, `{"events":[{"id":"u1","amount":"2"}]}`, http.StatusOK, &used)
	if used.Accepted != 1 {
		t.Fatalf("the first server after the refusals: %+v", used)
	}

	for _, name := range []string{"admin-token", "webhook-key", "readmodel.db", "readmodel.db-wal"} {
		info, err := os.Stat(filepath.Join(dataDir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if mode := info.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o, want 600", name, mode)
		}
	}

	// Once the server stopped, the lock is free again.
	stop()
	if out, err := exec.Command(bin, "verify", "--data-dir", dataDir).CombinedOutput(); err != nil {
		t.Fatalf("verify after the server stopped: %v\n%s", err, out)
	}
}

// TestDataDirLockModes: readers share the lock, a writer excludes everyone,
// and the refusal names the holder. flock locks belong to open files, so
// two opens in one process behave as two processes.
func TestDataDirLockModes(t *testing.T) {
	dir := t.TempDir()
	first, err := lockDataDir(dir, "verify", lockShared)
	if err != nil {
		t.Fatal(err)
	}
	second, err := lockDataDir(dir, "export", lockShared)
	if err != nil {
		t.Fatalf("a second reader was refused: %v", err)
	}
	_, err = lockDataDir(dir, "rebuild", lockExclusive)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("a writer beside readers: %v, want a refusal naming pid %d", err, os.Getpid())
	}
	first()
	second()
	writer, err := lockDataDir(dir, "serve", lockExclusive)
	if err != nil {
		t.Fatalf("a writer once the readers left: %v", err)
	}
	defer writer()
	if _, err := lockDataDir(dir, "verify", lockShared); err == nil || !strings.Contains(err.Error(), "creditd serve") {
		t.Fatalf("a reader beside a writer: %v, want a refusal naming creditd serve", err)
	}
	if info, err := os.Stat(filepath.Join(dir, lockFile)); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v %v", info, err)
	}
}
