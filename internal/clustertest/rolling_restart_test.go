package clustertest

import (
	"slices"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// TestRollingRestartUnderLoad restarts the three leased instances one at a
// time, as a deployment does: each stops cleanly (its partitions handed
// over), a new instance under a new name takes its place on fresh read
// models, and the next restart waits until the partitions are spread over
// three again. Clients write the whole time through the instances that
// are up: no acknowledged event is lost and none is counted twice, on
// every final instance's write model and read models, which verify
// accepts.
func TestRollingRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	urls, log, instances, _ := startThreeLeased(t)
	// One tenant per partition keeps the log short: each new instance
	// reads all of it, and each verify replays it.
	tenants := createTenants(t, 1, decimal.NewFromInt(1_000_000), instances[0], instances...)

	r := newRouter(t, instances...)
	acked := newLedger(tenants)
	stopWriting := make(chan struct{})
	producing := startProducers(t, r, tenants, 1, 0, decimal.RequireFromString("0.5"), stopWriting, acked)
	// Between steps the producers must get more batches acknowledged:
	// every step happens under load.
	const eventsPerStep = 200
	waitAcked(t, acked, eventsPerStep, producing, time.Minute)

	start := time.Now()
	for i := range instances {
		old := instances[i]
		up := slices.Delete(slices.Clone(instances), i, i+1)
		r.set(up...)
		stopped := time.Now()
		old.stop()
		t.Logf("%5.1fs: %s stopped in %s, after %d acknowledged events", time.Since(start).Seconds(), old.name, time.Since(stopped), acked.events.Load())
		waitSpread(t, spreadWaitMax, up...)
		t.Logf("%5.1fs: its partitions owned by %s and %s %s after the stop began", time.Since(start).Seconds(), up[0].name, up[1].name, time.Since(stopped))
		waitAcked(t, acked, acked.events.Load()+eventsPerStep, producing, time.Minute)

		started := time.Now()
		instances[i] = startLeased(t, urls, old.name+"2", log)
		took := waitSpread(t, spreadWaitMax, instances...)
		r.set(instances...)
		t.Logf("%5.1fs: %s started in %s; partitions spread over three %s later", time.Since(start).Seconds(), instances[i].name,
			time.Since(started)-took, took)
		waitAcked(t, acked, acked.events.Load()+eventsPerStep, producing, time.Minute)
	}
	close(stopWriting)
	<-producing
	if t.Failed() {
		return
	}

	statuses, netErrors := r.answers()
	t.Logf("%d events acknowledged; answers by status %v; network errors (retried) %v", acked.events.Load(), statuses, netErrors)
	for _, in := range instances {
		t.Logf("instance %s: owns %v, %d events committed, %d forwarded (%d failed), %d conflicts", in.name, owned(in),
			in.counter.committed.Load(), in.counter.forwarded.Load(), in.counter.forwardErrs.Load(), in.counter.conflicted.Load())
	}
	checkCounted(t, acked.snapshot(), instances...)
	stopAll(instances...)
}
