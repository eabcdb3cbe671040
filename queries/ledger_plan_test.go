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
// schema, that what asks for entries of a type other than debit searches
// the type index, which leaves debits out and so serves only a query that
// states so, and that nothing reads the whole ledger. A type filter
// without that condition read every entry of the tenant, debits included,
// to find its few grants; a reversal's lookup read the line's every later
// entry for each debit.
func TestLedgerQueriesReachTheTypeIndex(t *testing.T) {
	db, err := projections.Open(filepath.Join(t.TempDir(), "rm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkLedgerPlans(t, db.Reader(), true)
	// A database made before the type index left debits out keeps the
	// whole index: the same queries must run on it, as narrowly.
	if err := db.Exec(context.Background(), `DROP INDEX ledger_tenant_type_time;
		CREATE INDEX ledger_tenant_type_time ON ledger (tenant_id, type, created_at)`); err != nil {
		t.Fatal(err)
	}
	checkLedgerPlans(t, db.Reader(), false)
}

// checkLedgerPlans checks the plans of the ledger's queries on db; partial
// says its type index leaves debits out, as this creditd makes it.
func checkLedgerPlans(t *testing.T, db *sql.DB, partial bool) {
	t.Helper()
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
		plan := queryPlan(t, db, query, args...)
		// The whole index may serve debits too; a type other than debit
		// searches it either way.
		want := partial || c.index == "ledger_tenant_type_time"
		if want && !strings.Contains(plan, "USING INDEX "+c.index+" ") || strings.Contains(plan, "SCAN") {
			t.Errorf("%s (partial index %t): the page's plan is\n%s\nwant a search of %s", c.name, partial, plan, c.index)
		}
	}
	plan := queryPlan(t, db, usedEdgeQuery, 1, from.UnixMicro(), to.UnixMicro(), len(reversalDescriptionPrefix), reversalDescriptionPrefix)
	if !strings.Contains(plan, "SEARCH v USING INDEX ledger_tenant_type_time (tenant_id=? AND type=? AND created_at>?)") || strings.Contains(plan, "SCAN") {
		t.Errorf("usage of a partial day (partial index %t): the plan is\n%s\nwant each debit's reversal searched by type and time", partial, plan)
	}
	for _, types := range [][]string{{"credit"}, {"adjustment", "expiry"}, nil} {
		withOccurred, withoutOccurred := occurredTypes(types)
		for _, source := range occurredSources(withOccurred, withoutOccurred) {
			query := `SELECT entry_id FROM ledger ` + source.index + ` WHERE tenant_id = ? AND ` + source.where + ` AND ` + source.time + ` BETWEEN ? AND ?`
			plan := queryPlan(t, db, query, append(append([]any{1}, source.args...), 0, 1)...)
			if strings.Contains(plan, "SCAN") {
				t.Errorf("occurrence order, %v (partial index %t): the plan of %s is\n%s", types, partial, query, plan)
			}
		}
	}
}
