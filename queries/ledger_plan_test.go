package queries

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/projections"
)

// queryPlan is SQLite's plan for query, one line per step.
func queryPlan(t *testing.T, db *sql.DB, query string, args ...any) string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatalf("plan of %s: %v", query, err)
	}
	defer rows.Close()
	var steps []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(steps, "\n")
}

// TestLedgerQueriesReachTheTypeIndex checks, on the read models' own
// schema, that what asks for entries of one type other than debit searches
// the type index, which leaves debits out and so serves only a query that
// states so (else SQLite refuses the named index: "no query solution"), in
// the order the page wants, and that nothing reads the whole ledger. Left
// to SQLite, a type with a credit type or a time range beside it was read
// through the line's or the tenant's index, past every debit; a reversal's
// lookup read the line's every later entry for each debit.
func TestLedgerQueriesReachTheTypeIndex(t *testing.T) {
	db, err := projections.Open(filepath.Join(t.TempDir(), "rm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reader := db.Reader()
	from, to := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC)
	cursor := encodeCursor(to.UnixMicro(), 99)
	for _, c := range []struct {
		name   string
		filter LedgerFilter
		index  string
	}{
		{"credit", LedgerFilter{Types: []string{"credit"}, Limit: 50}, "ledger_tenant_type_time"},
		{"adjustment on a line after a cursor", LedgerFilter{Types: []string{"adjustment"}, CreditType: "api_calls", Cursor: cursor, Limit: 50}, "ledger_tenant_type_time"},
		{"expiry in a range", LedgerFilter{Types: []string{"expiry"}, From: &from, To: &to, Limit: 50}, "ledger_tenant_type_time"},
		{"debit", LedgerFilter{Types: []string{"debit"}, Limit: 50}, "ledger_tenant_time"},
		{"debit and credit", LedgerFilter{Types: []string{"debit", "credit"}, Limit: 50}, "ledger_tenant_time"},
		{"credit and expiry", LedgerFilter{Types: []string{"credit", "expiry"}, Limit: 50}, "ledger_tenant_time"},
		{"every type", LedgerFilter{Limit: 50}, "ledger_tenant_time"},
	} {
		query, args := ledgerPageQuery(1, c.filter)
		plan := queryPlan(t, reader, query, args...)
		if !strings.Contains(plan, "USING INDEX "+c.index+" ") || strings.Contains(plan, "SCAN") || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("%s: the page's plan is\n%s\nwant a search of %s in the page's order", c.name, plan, c.index)
		}
	}
	plan := queryPlan(t, reader, usedEdgeQuery, 1, from.UnixMicro(), to.UnixMicro(), len(reversalDescriptionPrefix), reversalDescriptionPrefix)
	if !strings.Contains(plan, "SEARCH v USING INDEX ledger_tenant_type_time (tenant_id=? AND type=? AND created_at>?)") || strings.Contains(plan, "SCAN") {
		t.Errorf("usage of a partial day: the plan is\n%s\nwant each debit's reversal searched by type and time", plan)
	}
	for _, types := range [][]string{{"credit"}, {"adjustment", "expiry"}, nil} {
		withOccurred, withoutOccurred := occurredTypes(types)
		for _, source := range occurredSources(withOccurred, withoutOccurred) {
			query := `SELECT entry_id FROM ledger ` + source.index + ` WHERE tenant_id = ? AND ` + source.where + ` AND ` + source.time + ` BETWEEN ? AND ?`
			plan := queryPlan(t, reader, query, append(append([]any{1}, source.args...), 0, 1)...)
			if strings.Contains(plan, "SCAN") {
				t.Errorf("occurrence order, %v: the plan of %s is\n%s", types, query, plan)
			}
		}
	}
}
