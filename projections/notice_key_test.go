package projections

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/testnats"
	"github.com/creditd/creditd/internal/webhook"
)

// Two equal notices (one event crossing the same threshold twice in a
// commit) get keys of their own, ranked among all equal notices, delivered
// or not, so an instance that delivered the first finds the second under
// the key another instance gives it. The credit type holds a ':', which
// credit types allow and KV keys refuse; the hashed key does not.
func TestNoticeKeyRanksEqualNotices(t *testing.T) {
	t.Parallel()
	srv := testnats.Start(t, t.TempDir())
	record, err := OpenDeliveryRecord(t.Context(), srv.Conn, 1)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var keys []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get(NoticeKeyHeader))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	posted := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), keys...)
	}
	const creditType = "gpu:a100"
	now := time.Now().UnixMicro()
	outbox := func(delivered ...bool) *DB {
		db := openDB(t)
		if _, err := db.writer.ExecContext(t.Context(), `INSERT INTO tenants (tenant_id, name, email, currency, created_at, webhook_url)
			VALUES (7, 'acme', 'a@example.test', 'USD', 0, ?)`, hook.URL); err != nil {
			t.Fatal(err)
		}
		for _, done := range delivered {
			var at any
			if done {
				at = now
			}
			if _, err := db.writer.ExecContext(t.Context(), `INSERT INTO notices (tenant_id, credit_type, kind, threshold, available, position, created_at, delivered_at)
				VALUES (7, ?, 'low_balance', 10000000, 5000000, 42, ?, ?)`, creditType, now, at); err != nil {
				t.Fatal(err)
			}
		}
		return db
	}
	deliverAll := func(db *DB, want int) {
		t.Helper()
		p, err := NewProjector(t.Context(), db, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		d := &Dispatcher{DB: db, Projector: p, Record: record, Webhooks: webhook.Policy{AllowHTTP: true, AllowHosts: []string{"127.0.0.1"}}}
		done := make(chan struct{})
		go func() { d.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		// Until every notice is settled in the outbox, not merely posted:
		// its row is written after the POST.
		deadline := time.Now().Add(10 * time.Second)
		for {
			var pending int
			if err := db.reader.QueryRowContext(t.Context(), `SELECT count(*) FROM notices WHERE delivered_at IS NULL`).Scan(&pending); err != nil {
				t.Fatal(err)
			}
			if pending == 0 && len(posted()) >= want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("posted %d, want %d; %d notices pending", len(posted()), want, pending)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// The first instance delivers the second notice only.
	deliverAll(outbox(true, false), 1)
	second := NoticeKey(42, 7, creditType, NoticeLowBalance, 10000000, 2)
	if got := posted(); got[0] != second {
		t.Fatalf("the second of two equal notices posted with key %q, want %q", got[0], second)
	}
	// The other instance has both pending: it sends the first, and finds
	// the second in the record.
	db := outbox(false, false)
	deliverAll(db, 2)
	got := posted()
	first := NoticeKey(42, 7, creditType, NoticeLowBalance, 10000000, 1)
	if len(got) != 2 || got[1] != first || first == second {
		t.Fatalf("posted %q, want %q then %q", got, second, first)
	}
	var attempts []int
	rows, err := db.writer.QueryContext(t.Context(), `SELECT attempts FROM notices WHERE delivered_at IS NOT NULL ORDER BY notice_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		attempts = append(attempts, n)
	}
	if len(attempts) != 2 || attempts[0] != 1 || attempts[1] != 0 {
		t.Fatalf("attempts of the delivered notices %v, want [1 0] (the second settled from the record)", attempts)
	}
}
