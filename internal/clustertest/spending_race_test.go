package clustertest

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/client"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/queries"
)

// TestSpendingRaceAcrossInstances spends one tenant's small balance with
// far more debits than it holds, sent concurrently through all three
// leased instances: exactly balance/amount debits are accepted and the
// rest rejected, the line is never overspent (available is never
// negative, on any instance's write model or read models, during the
// race or after), and every instance ends with the line spent exactly.
func TestSpendingRaceAcrossInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	_, _, instances, _ := startThreeLeased(t)
	ctx := context.Background()
	balance, amount := decimal.NewFromInt(50), decimal.RequireFromString("0.5")
	fit := balance.Div(amount).IntPart()
	created := createTenants(t, 1, balance, instances[0], instances...)
	// createTenants makes one per partition: the race is on the first.
	scarce := created[0]
	before := map[string]int64{}
	for _, in := range instances {
		before[in.name] = in.counter.conflicted.Load()
	}

	// Each instance has its own producers, so debits enter through all
	// three at once; all but the owner's forward to the owner.
	const producersPerInstance, batchesPerProducer, batch = 4, 10, 5
	// The race is bounded: a debit still unanswered after raceWaitMax
	// fails the test rather than hanging it.
	const raceWaitMax = time.Minute
	raceCtx, cancelRace := context.WithTimeout(ctx, raceWaitMax)
	defer cancelRace()
	started := time.Now()
	routers := map[string]*router{}
	sent := int64(len(instances) * producersPerInstance * batchesPerProducer * batch)
	var accepted, rejected atomic.Int64
	var wg sync.WaitGroup
	for _, in := range instances {
		// Small batches, many in flight: the debits reach the owner in
		// many requests from three places at once.
		routers[in.name] = newRouter(t, in)
		c, err := client.New(client.Config{HTTPURL: routerURL, APIKey: scarce.key, HTTPClient: &http.Client{Transport: routers[in.name]},
			BatchSize: batch, Inflight: producersPerInstance, Retries: producerRetries, RetryBackoff: producerRetryBackoff})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for p := range producersPerInstance {
			wg.Go(func() {
				for b := range batchesPerProducer {
					events := make([]client.UsageEvent, batch)
					for i := range events {
						events[i] = client.UsageEvent{ID: fmt.Sprintf("%s-p%d-b%d-%d", in.name, p, b, i), Amount: amount}
					}
					results, err := c.Record(raceCtx, events...)
					if err != nil {
						t.Errorf("through %s: %v", in.name, err)
						return
					}
					for _, res := range results {
						switch {
						// A retry of a debit whose first answer was lost
						// is its duplicate: status duplicate when it was
						// accepted, rejected when it was rejected.
						case res.Status == "accepted" || res.Status == "duplicate":
							accepted.Add(1)
						case res.Status == "rejected" && res.Reason == domain.RejectInsufficientCredits:
							rejected.Add(1)
						default:
							t.Errorf("debit %s: %+v", res.ID, res)
						}
					}
				}
			})
		}
	}
	// While the debits race, every instance's view of the line is
	// watched: available must never be negative.
	racing := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			for _, in := range instances {
				if line, _, err := in.engine.Line(ctx, scarce.id, domain.DefaultCreditType); err == nil && line.Available().IsNegative() {
					t.Errorf("instance %s's write model: available %s during the race", in.name, line.Available())
				}
				report, err := queries.New(in.db.Reader()).Balance(ctx, scarce.id, "", nil)
				if err == nil && report.Total.Available.IsNegative() {
					t.Errorf("instance %s's read model: available %s during the race", in.name, report.Total.Available)
				}
			}
			select {
			case <-racing:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	wg.Wait()
	close(racing)
	<-watched
	if t.Failed() {
		return
	}

	t.Logf("%d debits of %s on a balance of %s in %s: %d accepted, %d rejected", sent, amount, balance, time.Since(started),
		accepted.Load(), rejected.Load())
	if accepted.Load() != fit || rejected.Load() != sent-fit {
		t.Errorf("%d accepted and %d rejected, want %d and %d", accepted.Load(), rejected.Load(), fit, sent-fit)
	}
	for _, in := range instances {
		conflicts := in.counter.conflicted.Load() - before[in.name]
		statuses, netErrors := routers[in.name].answers()
		t.Logf("instance %s: owns %v, %d forwarded, %d conflicts; answers by status %v, network errors %v", in.name, owned(in),
			in.counter.forwarded.Load(), conflicts, statuses, netErrors)
		if conflicts != 0 {
			t.Errorf("instance %s: %d append conflicts, want 0", in.name, conflicts)
		}
	}
	checked := time.Now()
	want := map[int64]decimal.Decimal{}
	for _, tn := range created {
		want[tn.id] = decimal.Zero
	}
	want[scarce.id] = balance
	checkCounted(t, want, instances...)
	for _, in := range instances {
		line, _, err := in.engine.Line(ctx, scarce.id, domain.DefaultCreditType)
		if err != nil {
			t.Fatal(err)
		}
		if !line.Available().IsZero() {
			t.Errorf("instance %s's write model: available %s after the race, want 0", in.name, line.Available())
		}
		report, err := queries.New(in.db.Reader()).Balance(ctx, scarce.id, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !report.Total.Available.IsZero() {
			t.Errorf("instance %s's read model: available %s after the race, want 0", in.name, report.Total.Available)
		}
	}
	stopped := time.Now()
	stopAll(instances...)
	t.Logf("checked in %s, stopped in %s", stopped.Sub(checked), time.Since(stopped))
}
