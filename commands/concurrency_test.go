package commands

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
)

// 8 goroutines × 500 debits on one line whose balance fits only some of
// them: the line is never overdrawn, the sum is exact, every refusal is
// recorded.
func TestConcurrentDebitsOnOneLine(t *testing.T) {
	t.Parallel()
	const workers, perWorker = 8, 500
	h := newHarness(t)
	tenant := h.tenant()
	h.grant(tenant, "g1", "1234.5", nil)

	var mu sync.Mutex
	accepted, rejected := decimal.Zero, 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				// 0.5 per debit: 2469 fit, the rest must be refused.
				res := h.use(tenant, fmt.Sprintf("w%d-%d", w, i), "0.5")
				mu.Lock()
				switch res.Status {
				case StatusAccepted:
					accepted = accepted.Add(dec("0.5"))
				case StatusRejected:
					rejected++
				default:
					t.Errorf("unexpected %+v", res)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()

	line := h.line(tenant)
	wantDecimal(t, "accepted", accepted, "1234.5")
	wantDecimal(t, "used", line.Used, "1234.5")
	wantDecimal(t, "available", line.Available(), "0")
	if rejected != workers*perWorker-2469 {
		t.Fatalf("rejected = %d, want %d", rejected, workers*perWorker-2469)
	}
	logged := 0
	for _, env := range h.events() {
		if r, ok := env.Event.(domain.DebitRejected); ok && r.Reason == domain.RejectInsufficientCredits {
			logged++
		}
	}
	if logged != rejected {
		t.Fatalf("DebitRejected in the log = %d, want %d", logged, rejected)
	}
}

// Two engines (two creditd instances) write the same line through the same
// store: the fence on the partition subject keeps them exact. Under such
// contention a write may be refused with ErrContention; clients retry it
// with the same id, as they would any retryable error.
func TestTwoWritersOnOneLineStayExact(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tenant := h.tenant()
	h.grant(tenant, "g1", "300", nil)
	other := h.newEngine(h.server.Store)

	var wg sync.WaitGroup
	counts := make([]int, 2)
	for w, engine := range []*Engine{h.engine, other} {
		wg.Go(func() {
			for i := range 250 {
				var results []Result
				var err error
				for range 50 {
					results, err = engine.RecordUsage(context.Background(), tenant, []UsageEvent{usage(fmt.Sprintf("e%d-%d", w, i), "1")})
					if !errors.Is(err, ErrContention) {
						break
					}
				}
				if err != nil {
					t.Errorf("engine %d: %v", w, err)
					return
				}
				if results[0].Status == StatusAccepted {
					counts[w]++
				}
			}
		})
	}
	wg.Wait()
	if counts[0]+counts[1] != 300 {
		t.Fatalf("accepted %v, want 300 in all", counts)
	}
	for _, engine := range []*Engine{h.engine, other} {
		line, _, err := engine.Line(context.Background(), tenant, domain.DefaultCreditType)
		if err != nil {
			t.Fatal(err)
		}
		wantDecimal(t, "used", line.Used, "300")
		wantDecimal(t, "balance", line.Balance(), "0")
	}
}
