package projections

import (
	"context"
	"path/filepath"
	"testing"
)

// A bulk build that replaces read models which were behind takes over
// their notice outbox: a notice they had delivered stays delivered, one
// pending keeps its attempts (each of two equal notices in one commit
// keeps its own), and one after their checkpoint, which they never
// recorded, is left to deliver.
func TestTakeNoticeOutboxKeepsEachNoticesDelivery(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	type notice struct {
		position    uint64
		delivered   bool
		attempts    int
		nextAttempt int64
		lastError   string
	}
	write := func(path string, notices []notice) *DB {
		db, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range notices {
			var delivered any
			if n.delivered {
				delivered = int64(n.position * 1000)
			}
			if _, err := db.writer.ExecContext(ctx, `INSERT INTO notices (tenant_id, credit_type, kind, threshold, available, position, created_at,
				delivered_at, attempts, next_attempt, last_error) VALUES (7, 'credits', 'low_balance', 10, 5, ?, ?, ?, ?, ?, ?)`,
				n.position, n.position, delivered, n.attempts, n.nextAttempt, n.lastError); err != nil {
				t.Fatal(err)
			}
		}
		return db
	}
	old := write(filepath.Join(dir, "old.db"), []notice{
		{position: 10, delivered: true, attempts: 1},
		{position: 20, delivered: true, attempts: 1},
		{position: 20, attempts: 2, nextAttempt: 99, lastError: "webhook answered 503"},
	})
	old.Close()
	// As replayInto leaves a rebuilt database: every notice delivered.
	rebuilt := write(filepath.Join(dir, "rebuilt.db"), []notice{
		{position: 10, delivered: true}, {position: 20, delivered: true}, {position: 20, delivered: true}, {position: 30, delivered: true},
	})
	defer rebuilt.Close()
	if err := rebuilt.TakeNoticeOutbox(ctx, filepath.Join(dir, "old.db"), 25); err != nil {
		t.Fatal(err)
	}
	rows, err := rebuilt.writer.QueryContext(ctx, `SELECT position, delivered_at IS NOT NULL, attempts, next_attempt, last_error FROM notices ORDER BY notice_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []notice
	for rows.Next() {
		var n notice
		if err := rows.Scan(&n.position, &n.delivered, &n.attempts, &n.nextAttempt, &n.lastError); err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	want := []notice{
		{position: 10, delivered: true, attempts: 1},
		{position: 20, delivered: true, attempts: 1},
		{position: 20, attempts: 2, nextAttempt: 99, lastError: "webhook answered 503"},
		{position: 30},
	}
	if len(got) != len(want) {
		t.Fatalf("notices %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("notice %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
