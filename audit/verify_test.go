package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/highwayhash"

	"github.com/creditd/creditd/audit"
	"github.com/creditd/creditd/internal/stack"
	"github.com/creditd/creditd/internal/testnats"
	"github.com/creditd/creditd/projections"
)

// scenario writes every kind of event through the HTTP API.
func scenario(t *testing.T, s *stack.Stack) (int64, string) {
	t.Helper()
	s.Clock.Set(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	tenant, key := s.Tenant("audited")
	post := func(path string, body any) {
		t.Helper()
		r := s.Do(http.MethodPost, path, key, body)
		if r.Status >= 300 {
			t.Fatalf("POST %s: %d %s", path, r.Status, r.Body)
		}
	}
	post("/v1/grants", map[string]any{"grant_id": "g1", "amount": "1000"})
	post("/v1/grants", map[string]any{"grant_id": "g2", "amount": "100", "expires_at": "2026-03-02T00:00:00Z"})
	post("/v1/grants", map[string]any{"grant_id": "g3", "amount": "50", "credit_type": "gpu"})
	post("/v1/usage", map[string]any{"events": []any{
		map[string]any{"id": "u1", "amount": "12.5", "module": "search"},
		map[string]any{"id": "u2", "amount": "0", "success": false},
		map[string]any{"id": "u3", "amount": "99999"},
		map[string]any{"id": "u4", "amount": "3", "credit_type": "gpu"},
	}})
	post("/v1/reservations", map[string]any{"reservation_id": "r1", "amount": "40"})
	post("/v1/reservations/r1/capture", map[string]any{"amount": "15"})
	post("/v1/reservations", map[string]any{"reservation_id": "r2", "amount": "5", "ttl_seconds": 60})
	post("/v1/reservations", map[string]any{"reservation_id": "r3", "amount": "5"})
	post("/v1/reservations/r3/release", nil)
	post("/v1/adjustments", map[string]any{"amount": "-7", "reason": "correction"})
	post("/v1/adjustments", map[string]any{"amount": "20", "reason": "goodwill", "credit_type": "gpu"})
	r := s.Do(http.MethodPut, "/v1/auto-reload", key, map[string]any{"enabled": true, "threshold": "10", "amount": "25", "credit_type": "gpu"})
	if r.Status != http.StatusOK {
		t.Fatalf("auto-reload: %d %s", r.Status, r.Body)
	}
	post("/v1/usage", map[string]any{"events": []any{map[string]any{"id": "u5", "amount": "60", "credit_type": "gpu"}}})
	post("/v1/usage", map[string]any{"events": []any{map[string]any{"id": "u6", "amount": "2", "credit_type": "gpu", "module": "search"}}})
	post("/v1/usage/u6/reverse", map[string]any{"reason": "refund"})
	post("/v1/grants/g1/void", map[string]any{"reason": "refund"})
	post("/v1/subscriptions", map[string]any{"subscription_id": "pro", "credits_per_period": "500", "credit_type": "plan"})
	s.Clock.Advance(26 * time.Hour) // g2 and r2 expire
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.Sync()
		line := s.Must(http.StatusOK, http.MethodGet, "/v1/balance?credit_type=default", key, nil)["lines"].([]any)[0].(map[string]any)
		if fmt.Sprint(line["expired"]) == "65.5" && fmt.Sprint(line["reserved"]) == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expiries not swept: %v", line)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Sync()
	return tenant, key
}

func TestVerify(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	tenant, key := scenario(t, s)
	other, _ := s.Tenant("bystander")
	s.Sync()

	t.Run("the_read_models_agree_with_the_log", func(t *testing.T) {
		report, err := audit.Verify(context.Background(), s.NATS.Store, s.DB.Reader(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if !report.OK || len(report.Tenants) != 2 || report.Commits == 0 {
			t.Fatalf("report %+v", report)
		}
		for _, tr := range report.Tenants {
			if tr.TenantID == tenant && (tr.Lines != 3 || tr.Events < 15) {
				t.Fatalf("tenant report %+v", tr)
			}
		}
	})

	t.Run("checkpoints_hold_and_verify", func(t *testing.T) {
		m := s.Must(http.StatusCreated, http.MethodPost, "/v1/checkpoints", stack.AdminToken, nil)
		cp := m["checkpoint"].(map[string]any)
		// One head for the registry, one per partition.
		if len(cp["heads"].([]any)) != 1+s.NATS.Store.Partitions() || cp["balances_digest"] == "" {
			t.Fatalf("checkpoint %v", m)
		}
		s.Sync()
		report, err := audit.Verify(context.Background(), s.NATS.Store, s.DB.Reader(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if !report.OK || len(report.Checkpoints) != 1 || !report.Checkpoints[0].OK {
			t.Fatalf("report %+v", report)
		}
	})

	t.Run("the_api_reports_the_tenant", func(t *testing.T) {
		m := s.Must(http.StatusOK, http.MethodGet, "/v1/audit/verify", key, nil)
		tenants := m["tenants"].([]any)
		if m["ok"] != true || len(tenants) != 1 || fmt.Sprint(tenants[0].(map[string]any)["tenant_id"]) != fmt.Sprint(tenant) {
			t.Fatalf("report %v", m)
		}
	})

	t.Run("a_read_model_that_drifted_is_reported", func(t *testing.T) {
		// The read-only pool cannot write: open a writer on the same file.
		db, err := projections.Open(s.DB.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := rawExec(db, `UPDATE lines SET used = used + 1 WHERE tenant_id = ? AND credit_type = 'gpu'`, tenant); err != nil {
			t.Fatal(err)
		}
		report, err := audit.Verify(context.Background(), s.NATS.Store, s.DB.Reader(), tenant)
		if err != nil {
			t.Fatal(err)
		}
		if report.OK || len(report.Tenants[0].Differences) == 0 || report.Tenants[0].Differences[0].Field != "used" {
			t.Fatalf("report %+v", report)
		}
		rawExec(db, `UPDATE lines SET used = used - 1 WHERE tenant_id = ? AND credit_type = 'gpu'`, tenant)
		_ = other
	})
}

func rawExec(db *projections.DB, query string, args ...any) (int64, error) {
	res, err := projections.WriterForTests(db).Exec(query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// A stored commit rewritten on disk, with the store's own checksum made
// valid again so the server serves it, breaks the hash chain at the next
// commit of its subject: verify names that position.
func TestVerifyCatchesARewrittenMessage(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	scenario(t, s)
	if _, _, err := s.Engine.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Sync()
	s.Stop()

	copyDir := t.TempDir()
	if err := os.CopyFS(copyDir, os.DirFS(s.Dir)); err != nil {
		t.Fatal(err)
	}
	position := rewrite(t, filepath.Join(copyDir, "jetstream"), `"grant_id":"g1","amount":"1000"`, `"grant_id":"g1","amount":"9000"`)

	srv := testnats.Start(t, filepath.Join(copyDir, "jetstream"))
	db, err := projections.Open(filepath.Join(copyDir, "readmodel.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	report, err := audit.Verify(context.Background(), srv.Store, db.Reader(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if report.OK || len(report.Chains) == 0 {
		t.Fatalf("a rewritten commit went unnoticed: %+v", report)
	}
	if b := report.Chains[0]; b.Position <= position || !strings.HasPrefix(b.Subject, "credits.events.") {
		t.Fatalf("broken link %+v, want the commit after %d on its subject", b, position)
	}
	drift := false
	for _, tr := range report.Tenants {
		drift = drift || !tr.OK
	}
	if !drift {
		t.Fatal("the forged grant amount did not show as a difference")
	}
	if len(report.Checkpoints) != 1 || report.Checkpoints[0].OK {
		t.Fatalf("the checkpoint taken before the rewrite still holds: %+v", report.Checkpoints)
	}
}

// rewrite replaces from with to (same length) in the stored message that
// holds it, in the JetStream message blocks under dir, and recomputes the
// record's checksum as nats-server's file store does (HighwayHash-64 keyed
// by SHA-256 of "<stream>-<block index>" over sequence, time, subject,
// headers and payload). It returns the message's stream sequence.
func rewrite(t *testing.T, dir, from, to string) uint64 {
	t.Helper()
	if len(from) != len(to) {
		t.Fatal("rewrite keeps the length")
	}
	var blocks []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".blk") && strings.Contains(p, filepath.Join("streams", "CREDITS", "msgs")) {
			blocks = append(blocks, p)
		}
		return nil
	})
	for _, path := range blocks {
		buf, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var index uint32
		fmt.Sscanf(filepath.Base(path), "%d.blk", &index)
		le := binary.LittleEndian
		for off := 0; off+22 <= len(buf); {
			l := le.Uint32(buf[off:])
			hasHeaders := l&(1<<31) != 0
			rl := int(l &^ (1 << 31))
			if rl < 22 || off+rl > len(buf) {
				break
			}
			rec := buf[off : off+rl]
			seq := le.Uint64(rec[4:]) &^ (1 << 63)
			slen := int(le.Uint16(rec[20:]))
			data := rec[22 : rl-8]
			subj, rest := data[:slen], data[slen:]
			var hdr []byte
			if hasHeaders {
				hlen := int(le.Uint32(rest))
				hdr, rest = rest[4:4+hlen], rest[4+hlen:]
			}
			if i := bytes.Index(rest, []byte(from)); i >= 0 {
				copy(rest[i:], to)
				key := sha256.Sum256([]byte(fmt.Sprintf("CREDITS-%d", index)))
				hh, err := highwayhash.New64(key[:])
				if err != nil {
					t.Fatal(err)
				}
				hh.Write(rec[4:20])
				hh.Write(subj)
				hh.Write(hdr)
				hh.Write(rest)
				copy(rec[rl-8:], hh.Sum(nil))
				if err := os.WriteFile(path, buf, 0o600); err != nil {
					t.Fatal(err)
				}
				return seq
			}
			off += rl
		}
	}
	t.Fatalf("no stored message holds %s (blocks %v)", from, blocks)
	return 0
}
