package clustertest

import (
	"context"
	"fmt"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
)

// TestAFreshTenantsFirstWriteIsForwarded creates tenants through one
// instance and at once grants each of them credits through that same
// instance, which forwards the grant to the partition's owner. The owner
// has not read the tenant yet and reads its registry again; on three
// replicas that read must end where the stream's leader ends, not where a
// follower answering the direct get has got to. (Before, the owner read
// up to a follower's last message and answered tenant not found: 3 runs
// of 3 of `creditd bench cluster --instances 3`.)
func TestAFreshTenantsFirstWriteIsForwarded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	_, _, instances, _ := startThreeLeased(t)
	ctx := context.Background()
	forwarded := 0
	for i := range 60 {
		via := instances[i%len(instances)]
		created, err := via.engine.CreateTenant(ctx, commands.CreateTenant{Name: fmt.Sprintf("t%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if !via.engine.OwnsTenant(created.Tenant.ID) {
			forwarded++
		}
		grant := domain.Grant{GrantID: "g", Amount: decimal.NewFromInt(10), Source: domain.SourcePurchase}
		if _, err := via.engine.Grant(ctx, created.Tenant.ID, "default", grant); err != nil {
			t.Fatalf("tenant %d's first grant, through %s, owned elsewhere %v: %v", created.Tenant.ID, via.name, !via.engine.OwnsTenant(created.Tenant.ID), err)
		}
	}
	if forwarded == 0 {
		t.Fatal("no grant was forwarded")
	}
	t.Logf("%d of 60 first grants forwarded", forwarded)
}
