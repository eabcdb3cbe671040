package projections

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/internal/testnats"
)

// A cube cell is keyed by one *dimsText, which carries the line's credit
// type and the usage's outcome besides its dimensions: usage with equal
// dimensions on two lines, succeeded and failed, in one commit, and a
// capture with those dimensions, still lands in four cells.
func TestCubeCellsKeepCreditTypeAndOutcomeApart(t *testing.T) {
	t.Parallel()
	srv := testnats.Start(t, t.TempDir())
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	engine, err := commands.New(context.Background(), srv.Store, commands.Options{Clock: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close()
	ctx := context.Background()
	created, err := engine.CreateTenant(ctx, commands.CreateTenant{Name: "cube"})
	if err != nil {
		t.Fatal(err)
	}
	tenant := created.Tenant.ID
	for _, line := range []string{"default", "gpu"} {
		if _, err := engine.Grant(ctx, tenant, line, domain.Grant{GrantID: "g-" + line, Amount: decimal.NewFromInt(100), Source: domain.SourcePurchase}); err != nil {
			t.Fatal(err)
		}
	}
	dims := func(success bool) domain.Dimensions {
		return domain.Dimensions{Module: "search", Endpoint: "/v1/search", UserID: "u1", Success: success}
	}
	var batch []commands.UsageEvent
	for i, u := range []struct {
		line    string
		success bool
	}{{"default", true}, {"default", false}, {"gpu", true}, {"default", true}} {
		batch = append(batch, commands.UsageEvent{CreditType: u.line, RecordUsage: domain.RecordUsage{
			UsageID: string(rune('a' + i)), Amount: decimal.NewFromInt(int64(i + 1)), OccurredAt: at, Dimensions: dims(u.success)}})
	}
	if _, err := engine.RecordUsage(ctx, tenant, batch); err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Reserve(ctx, tenant, "gpu", domain.Reserve{ReservationID: "r", Amount: decimal.NewFromInt(10), TTL: time.Hour, Dimensions: dims(false)}); err != nil {
		t.Fatal(err)
	}
	part := decimal.NewFromInt(7)
	if _, err := engine.Capture(ctx, tenant, "gpu", domain.Capture{ReservationID: "r", Amount: &part}); err != nil {
		t.Fatal(err)
	}
	engine.Close()

	db := rebuild(t, srv)
	got := typedRows(t, db, `SELECT credit_type, success, requests, successes, failures, credits FROM usage_daily
		WHERE tenant_id = ? ORDER BY credit_type, success`, 6, tenant)
	want := [][]any{
		{"default", int64(0), int64(1), int64(0), int64(1), int64(2_000_000)},
		{"default", int64(1), int64(2), int64(2), int64(0), int64(5_000_000)},
		{"gpu", int64(0), int64(1), int64(0), int64(1), int64(7_000_000)},
		{"gpu", int64(1), int64(1), int64(1), int64(0), int64(3_000_000)},
	}
	if len(got) != len(want) {
		t.Fatalf("usage_daily rows %v, want %v", got, want)
	}
	for i := range want {
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Fatalf("usage_daily rows %v, want %v", got, want)
			}
		}
	}
}
