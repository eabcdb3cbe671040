package audit_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/audit"
	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/internal/stack"
	"github.com/creditd/creditd/internal/testnats"
	"github.com/creditd/creditd/projections"
	"github.com/creditd/creditd/queries"
)

// A tenant's NDJSON events export, imported into an empty creditd, yields
// identical balances and ledger, and a log that verifies.
func TestExportImportRoundTrip(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	tenant, _ := scenario(t, s)
	ctx := context.Background()

	var ndjson bytes.Buffer
	if err := audit.ExportEvents(ctx, s.NATS.Store, tenant, time.Time{}, time.Time{}, audit.FormatNDJSON, &ndjson); err != nil {
		t.Fatal(err)
	}
	var csvOut bytes.Buffer
	if err := audit.ExportEvents(ctx, s.NATS.Store, tenant, time.Time{}, time.Time{}, audit.FormatCSV, &csvOut); err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(&csvOut).ReadAll()
	if err != nil || len(records)-1 != strings.Count(ndjson.String(), "\n") || records[0][2] != "type" {
		t.Fatalf("csv export: %d records (%v), ndjson %d lines", len(records), err, strings.Count(ndjson.String(), "\n"))
	}

	fresh := testnats.Start(t, t.TempDir())
	n, err := audit.Import(ctx, fresh.Store, bytes.NewReader(ndjson.Bytes()))
	if err != nil || n == 0 {
		t.Fatalf("import: %d events, %v", n, err)
	}
	if _, err := audit.Import(ctx, fresh.Store, bytes.NewReader(ndjson.Bytes())); err != audit.ErrNotEmpty {
		t.Fatalf("a second import: %v, want ErrNotEmpty", err)
	}
	// The imported log loads as creditd's own: chains intact, state rebuilt.
	engine, err := commands.New(ctx, fresh.Store, commands.Options{CheckInvariants: true})
	if err != nil {
		t.Fatalf("engine on the imported log: %v", err)
	}
	engine.Close()
	db, err := projections.Open(filepath.Join(t.TempDir(), "imported.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, _ := projections.NewProjector(ctx, db, nil)
	if err := p.CatchUp(ctx, fresh.Store, 0); err != nil {
		t.Fatal(err)
	}
	want, err := queries.New(s.DB.Reader()).Balance(ctx, tenant, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := queries.New(db.Reader()).Balance(ctx, tenant, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Lines) != len(want.Lines) {
		t.Fatalf("imported %d lines, want %d", len(got.Lines), len(want.Lines))
	}
	for i := range want.Lines {
		w, g := want.Lines[i], got.Lines[i]
		if w.CreditType != g.CreditType || !w.Granted.Equal(g.Granted) || !w.Adjusted.Equal(g.Adjusted) || !w.Used.Equal(g.Used) ||
			!w.Expired.Equal(g.Expired) || !w.Reserved.Equal(g.Reserved) || !w.Available.Equal(g.Available) {
			t.Fatalf("line %s: imported %+v, want %+v", w.CreditType, g, w)
		}
	}
	report, err := audit.Verify(ctx, fresh.Store, db.Reader(), 0)
	if err != nil || !report.OK {
		t.Fatalf("verify on the imported log: %+v %v", report, err)
	}
	var ledger bytes.Buffer
	if err := audit.ExportRows(ctx, db.Reader(), `SELECT type, amount FROM ledger WHERE tenant_id = ? ORDER BY entry_id`, []any{tenant}, audit.FormatCSV, &ledger); err != nil {
		t.Fatal(err)
	}
	var original bytes.Buffer
	audit.ExportRows(ctx, s.DB.Reader(), `SELECT type, amount FROM ledger WHERE tenant_id = ? ORDER BY entry_id`, []any{tenant}, audit.FormatCSV, &original)
	if ledger.String() != original.String() {
		t.Fatalf("imported ledger differs:\n%s\nwant\n%s", ledger.String(), original.String())
	}
}
