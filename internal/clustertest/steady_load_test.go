package clustertest

import (
	"net/http"
	"testing"

	"github.com/shopspring/decimal"
)

// TestLeasedInstancesUnderSteadyLoad writes usage over HTTP through three
// instances that own the partitions by leases, each client's batches
// entering through every instance in turn, for tenants on every
// partition: no append ever conflicts (one writer per partition), no
// request is answered 503, and every acknowledged event is counted once
// on every instance's write model and read models, which verify accepts.
func TestLeasedInstancesUnderSteadyLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	_, _, instances, took := startThreeLeased(t)
	t.Logf("partitions spread over three instances in %s", took)
	tenants := createTenants(t, 1, decimal.NewFromInt(1_000_000), instances[0], instances...)
	for _, in := range instances {
		if len(owned(in)) == 0 {
			t.Fatalf("instance %s owns no partition", in.name)
		}
	}
	// Only the producers' writes are counted from here on.
	before := map[string]int64{}
	for _, in := range instances {
		before[in.name] = in.counter.conflicted.Load()
	}

	r := newRouter(t, instances...)
	acked := newLedger(tenants)
	// Two producers per tenant, so one tenant's batches also race.
	<-startProducers(t, r, tenants, 2, 15, decimal.RequireFromString("0.5"), nil, acked)
	if t.Failed() {
		return
	}

	statuses, netErrors := r.answers()
	t.Logf("%d events acknowledged; answers by status %v", acked.events.Load(), statuses)
	if len(netErrors) > 0 {
		t.Errorf("network errors: %v", netErrors)
	}
	for status, n := range statuses {
		if status != http.StatusOK {
			t.Errorf("%d requests answered %d under steady load, want every one 200", n, status)
		}
	}
	for _, in := range instances {
		conflicts := in.counter.conflicted.Load() - before[in.name]
		t.Logf("instance %s: owns %v, %d events committed, %d forwarded (%d failed), %d conflicts", in.name, owned(in),
			in.counter.committed.Load(), in.counter.forwarded.Load(), in.counter.forwardErrs.Load(), conflicts)
		if conflicts != 0 {
			t.Errorf("instance %s: %d append conflicts, want 0", in.name, conflicts)
		}
		if in.counter.forwarded.Load() == 0 {
			t.Errorf("instance %s forwarded nothing: every write took the local path", in.name)
		}
		if in.counter.committed.Load() == 0 {
			t.Errorf("instance %s committed nothing", in.name)
		}
	}
	checkCounted(t, acked.snapshot(), instances...)
	stopAll(instances...)
}
