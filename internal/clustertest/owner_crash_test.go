package clustertest

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// TestOwnerCrashDuringWrites crashes an instance that owns partitions (all
// its NATS connections cut at once, as kill -9 would) while clients write
// through the two others, which forward to it: the survivors own its
// partitions within the lease TTL and 2 s, clients see only retryable
// answers (and retry with the same ids), and every acknowledged event is
// counted exactly once on both survivors' write models and read models,
// which verify accepts.
func TestOwnerCrashDuringWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	_, _, instances, _ := startThreeLeased(t)
	tenants := createTenants(t, 1, decimal.NewFromInt(1_000_000), instances[0], instances...)
	// The victim is the instance owning the most partitions, so the most
	// writes are in flight to it when it dies.
	victim := slices.MaxFunc(instances, func(x, y *instance) int { return len(owned(x)) - len(owned(y)) })
	var survivors []*instance
	for _, in := range instances {
		if in != victim {
			survivors = append(survivors, in)
		}
	}
	victimPartitions := owned(victim)
	t.Logf("victim %s owns %v", victim.name, victimPartitions)

	r := newRouter(t, survivors...)
	acked := newLedger(tenants)
	const batchesPerProducer = 25
	producing := startProducers(t, r, tenants, 2, batchesPerProducer, decimal.RequireFromString("0.5"), nil, acked)
	total := int64(len(tenants) * 2 * batchesPerProducer * producerBatch)
	waitAcked(t, acked, total/4, producing, time.Minute)

	committedBefore := victim.counter.committed.Load()
	ackedBefore := acked.events.Load()
	if committedBefore == 0 {
		t.Fatalf("the victim %s committed nothing before its crash: no writes were forwarded to it", victim.name)
	}
	crashed := time.Now()
	victim.crash()
	waitSpread(t, takeoverMax+10*time.Second, survivors...)
	// waitSpread begins after crash returns: the takeover is measured from
	// the moment the connections were cut.
	took := time.Since(crashed)
	t.Logf("crash of %s after %d acknowledged events (%d committed by it): its partitions %v owned by the survivors %s later",
		victim.name, ackedBefore, committedBefore, victimPartitions, took)
	if took > takeoverMax {
		t.Errorf("the crashed owner's partitions were taken over after %s, want within %s", took, takeoverMax)
	}
	for _, p := range victimPartitions {
		if !slices.ContainsFunc(survivors, func(in *instance) bool { return slices.Contains(owned(in), p) }) {
			t.Errorf("partition %d of the victim has no surviving owner", p)
		}
	}
	ackedAtTakeover := acked.events.Load()
	<-producing
	if t.Failed() {
		return
	}
	if ackedAtTakeover >= total {
		t.Errorf("the producers were done by the takeover: no write went through the new owners")
	}

	statuses, netErrors := r.answers()
	t.Logf("%d events acknowledged (%d by the takeover); answers by status %v", acked.events.Load(), ackedAtTakeover, statuses)
	if len(netErrors) > 0 {
		t.Errorf("network errors through the survivors: %v", netErrors)
	}
	for status, n := range statuses {
		if status != http.StatusOK && status != http.StatusServiceUnavailable {
			t.Errorf("%d requests answered %d, which a client does not retry", n, status)
		}
	}
	for _, in := range survivors {
		t.Logf("instance %s: owns %v, %d events committed, %d forwarded (%d failed), %d conflicts, %d leases lost", in.name, owned(in),
			in.counter.committed.Load(), in.counter.forwarded.Load(), in.counter.forwardErrs.Load(), in.counter.conflicted.Load(), in.counter.lost.Load())
	}
	checkCounted(t, acked.snapshot(), survivors...)
	stopAll(survivors...)
}
