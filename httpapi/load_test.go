package httpapi_test

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/internal/stack"
)

// TestLoad runs concurrent clients mixing writes and reads against one
// server on loopback for a bounded time (CREDITD_LOAD_SECONDS, default 8;
// the closing note's figures come from 60) and then checks that no
// acknowledged event was lost or counted twice.
//
//	CREDITD_LOAD_SECONDS=60 go test -run TestLoad -v ./httpapi/
func TestLoad(t *testing.T) {
	t.Parallel()
	seconds := 8
	if v, err := strconv.Atoi(os.Getenv("CREDITD_LOAD_SECONDS")); err == nil && v > 0 && v <= 600 {
		seconds = v
	}
	const writers, readers, tenants, batch = 12, 4, 6, 50
	s := stack.Start(t)
	keys := make([]string, tenants)
	for i := range keys {
		_, keys[i] = s.Tenant(fmt.Sprintf("load-%d", i))
		s.Must(http.StatusCreated, http.MethodPost, "/v1/grants", keys[i], map[string]any{"amount": "100000000"})
	}
	type sample struct {
		write bool
		took  time.Duration
	}
	var mu sync.Mutex
	var samples []sample
	var accepted [tenants]atomic.Int64
	var failures, retryable atomic.Int64
	stop := time.Now().Add(time.Duration(seconds) * time.Second)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for n := 0; time.Now().Before(stop); n++ {
				tenant := (w + n) % tenants
				events := make([]any, batch)
				for i := range events {
					events[i] = map[string]any{"id": fmt.Sprintf("w%d-%d-%d", w, n, i), "amount": "0.001", "module": []string{"a", "b", "c"}[i%3]}
				}
				start := time.Now()
				r := s.Do(http.MethodPost, "/v1/usage", keys[tenant], map[string]any{"events": events})
				took := time.Since(start)
				switch {
				case r.Status == http.StatusOK:
					m := r.JSON(t)
					got, _ := m["accepted"].(interface{ Int64() (int64, error) }).Int64()
					accepted[tenant].Add(got)
				case r.Status == http.StatusServiceUnavailable:
					retryable.Add(1)
				default:
					failures.Add(1)
					t.Errorf("write: %d %.200s", r.Status, r.Body)
				}
				mu.Lock()
				samples = append(samples, sample{true, took})
				mu.Unlock()
			}
		})
	}
	paths := []string{"/v1/balance", "/v1/usage?group_by=module", "/v1/stats", "/v1/ledger?limit=20", "/compat/openrouter/api/v1/credits"}
	for rd := range readers {
		wg.Go(func() {
			for n := 0; time.Now().Before(stop); n++ {
				start := time.Now()
				r := s.Do(http.MethodGet, paths[n%len(paths)], keys[(rd+n)%tenants], nil)
				took := time.Since(start)
				if r.Status != http.StatusOK {
					failures.Add(1)
					t.Errorf("read: %d %.200s", r.Status, r.Body)
				}
				mu.Lock()
				samples = append(samples, sample{false, took})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	report := func(write bool) (int, time.Duration, time.Duration) {
		var d []time.Duration
		for _, s := range samples {
			if s.write == write {
				d = append(d, s.took)
			}
		}
		slices.Sort(d)
		if len(d) == 0 {
			return 0, 0, 0
		}
		return len(d), d[len(d)/2], d[min(len(d)-1, len(d)*99/100)]
	}
	wn, wp50, wp99 := report(true)
	rn, rp50, rp99 := report(false)
	var events int64
	for i := range accepted {
		events += accepted[i].Load()
	}
	t.Logf("%d s, %d writers, %d readers: %d write requests (%.0f events/s, p50 %s, p99 %s), %d reads (%.0f/s, p50 %s, p99 %s), %d errors, %d retryable 503s",
		seconds, writers, readers, wn, float64(events)/float64(seconds), wp50.Round(time.Microsecond), wp99.Round(time.Microsecond),
		rn, float64(rn)/float64(seconds), rp50.Round(time.Microsecond), rp99.Round(time.Microsecond), failures.Load(), retryable.Load())
	s.Sync()
	for i, key := range keys {
		used := s.Must(http.StatusOK, http.MethodGet, "/v1/balance", key, nil)["total"].(map[string]any)["used"]
		want := decimal.RequireFromString("0.001").Mul(decimal.NewFromInt(accepted[i].Load()))
		if fmt.Sprint(used) != want.String() {
			t.Errorf("tenant %d: used %v, acknowledged %s", i, used, want)
		}
	}
}
