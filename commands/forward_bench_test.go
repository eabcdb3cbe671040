package commands

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/internal/testnats"
)

// BenchmarkForwardedWrite measures one usage batch of 20 events written
// through an instance that owns the tenant's partition (local) and through
// one that forwards it to the owner (forwarded), one at a time, on one
// embedded server: the difference is what forwarding costs a write.
//
//	go test -run '^$' -bench ForwardedWrite -benchtime 2000x ./commands/
func BenchmarkForwardedWrite(b *testing.B) {
	srv := testnats.Start(b, b.TempDir())
	a, c := startMemberWith(b, srv, "a", SnapshotOptions{}), startMemberWith(b, srv, "b", SnapshotOptions{})
	waitSpread(b, 10*time.Second, a, c)
	ctx := context.Background()
	created, err := a.engine.CreateTenant(ctx, CreateTenant{Name: "t"})
	if err != nil {
		b.Fatal(err)
	}
	tenant := created.Tenant.ID
	if _, err := a.engine.Grant(ctx, tenant, "default", domain.Grant{GrantID: "g", Amount: decimal.NewFromInt(1_000_000_000), Source: domain.SourcePurchase}); err != nil {
		b.Fatal(err)
	}
	owner, other := a, c
	if !a.engine.OwnsTenant(tenant) {
		owner, other = c, a
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := other.engine.Tenant(tenant); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("tenant unknown to the other instance")
		}
	}
	batch := func(prefix string, i int) []UsageEvent {
		events := make([]UsageEvent, 20)
		for j := range events {
			events[j] = usageEvent(fmt.Sprintf("%s-%d-%d", prefix, i, j), "1")[0]
		}
		return events
	}
	for _, path := range []struct {
		name string
		via  *member
	}{{"local", owner}, {"forwarded", other}} {
		b.Run(path.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := path.via.engine.RecordUsage(ctx, tenant, batch(path.name, i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
