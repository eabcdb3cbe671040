package commands

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/creditd/creditd/internal/testnats"
)

// benchEngine is an engine on a real embedded JetStream with fsync on every
// commit, as creditd runs by default, without the test-only invariant checks.
func benchEngine(b *testing.B, tenants int) (*Engine, []int64) {
	b.Helper()
	server := testnats.Start(b, b.TempDir())
	engine, err := New(context.Background(), server.Store, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(engine.Close)
	ids := make([]int64, tenants)
	for i := range ids {
		created, err := engine.CreateTenant(context.Background(), CreateTenant{Name: fmt.Sprintf("t%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = created.Tenant.ID
		res, err := engine.Grant(context.Background(), ids[i], "default", grantCommand("g", "1000000000"))
		if err != nil || res.Status != StatusAccepted {
			b.Fatal(res, err)
		}
	}
	return engine, ids
}

func reportEventsPerSecond(b *testing.B, events int64) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRecordUsage measures usage events appended per second through the
// full write path (idempotency, balance check, burn-down, durable append).
//
//	go test -run '^$' -bench RecordUsage -benchtime 5s ./commands/
func BenchmarkRecordUsage(b *testing.B) {
	b.Run("sequential_one_event_per_call", func(b *testing.B) {
		engine, ids := benchEngine(b, 1)
		b.ResetTimer()
		for i := range b.N {
			results, err := engine.RecordUsage(context.Background(), ids[0], []UsageEvent{usage(fmt.Sprintf("u%d", i), "0.001")})
			if err != nil || results[0].Status != StatusAccepted {
				b.Fatal(results, err)
			}
		}
		reportEventsPerSecond(b, int64(b.N))
	})

	b.Run("sequential_batches_of_100", func(b *testing.B) {
		engine, ids := benchEngine(b, 1)
		b.ResetTimer()
		for i := range b.N {
			batch := make([]UsageEvent, 100)
			for j := range batch {
				batch[j] = usage(fmt.Sprintf("u%d-%d", i, j), "0.001")
			}
			if _, err := engine.RecordUsage(context.Background(), ids[0], batch); err != nil {
				b.Fatal(err)
			}
		}
		reportEventsPerSecond(b, int64(b.N)*100)
	})

	// Many producers, each sending one event per call for its own line: the
	// writers gather whatever queued during the previous fsync into the
	// next commit.
	b.Run("parallel_256_lines_one_event_per_call", func(b *testing.B) {
		engine, ids := benchEngine(b, 256)
		var next atomic.Int64
		b.SetParallelism(64)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			worker := next.Add(1)
			tenant := ids[int(worker)%len(ids)]
			i := 0
			for pb.Next() {
				i++
				results, err := engine.RecordUsage(context.Background(), tenant, []UsageEvent{usage(fmt.Sprintf("w%d-%d", worker, i), "0.001")})
				if err != nil || results[0].Status != StatusAccepted {
					b.Error(results, err)
					return
				}
			}
		})
		reportEventsPerSecond(b, int64(b.N))
	})

	// One hot line, many concurrent producers.
	b.Run("parallel_one_hot_line_one_event_per_call", func(b *testing.B) {
		engine, ids := benchEngine(b, 1)
		var next atomic.Int64
		b.SetParallelism(64)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			worker := next.Add(1)
			i := 0
			for pb.Next() {
				i++
				results, err := engine.RecordUsage(context.Background(), ids[0], []UsageEvent{usage(fmt.Sprintf("w%d-%d", worker, i), "0.001")})
				if err != nil || results[0].Status != StatusAccepted {
					b.Error(results, err)
					return
				}
			}
		})
		reportEventsPerSecond(b, int64(b.N))
	})
}
