package queries_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/seed"
	"github.com/creditd/creditd/projections"
	"github.com/creditd/creditd/queries"
)

// The read benchmarks run on one tenant with CREDITD_BENCH_EVENTS usage
// events (default 10 million) over two years, built once into a database
// under the temp dir and reused by later runs:
//
//	go test -run '^$' -bench . -benchtime 2000x ./queries/
var benchEnd = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func benchReader(b *testing.B) *queries.Reader {
	b.Helper()
	events := 10_000_000
	if v, err := strconv.Atoi(os.Getenv("CREDITD_BENCH_EVENTS")); err == nil && v > 0 {
		events = v
	}
	path := filepath.Join(os.TempDir(), fmt.Sprintf("creditd-bench-%d.db", events))
	if _, err := os.Stat(path + ".done"); err != nil {
		os.Remove(path)
		start := time.Now()
		if err := buildBenchDB(path, events); err != nil {
			b.Fatal(err)
		}
		os.WriteFile(path+".done", nil, 0o600)
		b.Logf("seeded %d events in %s (%.0f events/s)", events, time.Since(start), float64(events)/time.Since(start).Seconds())
	}
	db, err := projections.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return queries.New(db.Reader())
}

func buildBenchDB(path string, events int) error {
	db, err := projections.Open(path)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := projections.NewProjector(context.Background(), db, nil)
	if err != nil {
		return err
	}
	var chunk []eventstore.StoredMsg
	flush := func() error {
		err := p.Apply(context.Background(), chunk)
		chunk = chunk[:0]
		return err
	}
	shape := seed.Shape{TenantID: 1, Events: events, Days: 730, End: benchEnd, EventsPerCommit: 200, Seed: 1}
	err = seed.Commits(shape, func(seq uint64, data []byte) error {
		chunk = append(chunk, shape.Msg(seq, data))
		if len(chunk) == 256 {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// measure runs query b.N times and reports p50 and p99 latency.
func measure(b *testing.B, query func() error) {
	b.Helper()
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := query(); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(durations)
	pct := func(p float64) float64 {
		return float64(durations[min(len(durations)-1, int(float64(len(durations))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
}

func BenchmarkBalance(b *testing.B) {
	r := benchReader(b)
	measure(b, func() error {
		_, err := r.Balance(context.Background(), 1, "", nil)
		return err
	})
}

func BenchmarkStats90Days(b *testing.B) {
	r := benchReader(b)
	rng, err := queries.ParseRange("2026-08-03", "2026-10-31", benchEnd, 30)
	if err != nil {
		b.Fatal(err)
	}
	measure(b, func() error {
		s, err := r.Stats(context.Background(), 1, rng)
		if err == nil && len(s.Daily) != 90 {
			err = fmt.Errorf("daily has %d days, want 90", len(s.Daily))
		}
		return err
	})
}

func BenchmarkUsageMonthlyByModuleOneYear(b *testing.B) {
	r := benchReader(b)
	rng, err := queries.ParseRange("2025-11-01", "2026-10-31", benchEnd, 30)
	if err != nil {
		b.Fatal(err)
	}
	module, _ := queries.ParseDimension("module")
	measure(b, func() error {
		u, err := r.Usage(context.Background(), 1, queries.UsageQuery{Range: rng, Granularity: queries.GranularityMonth, GroupBy: []queries.Dimension{module}})
		if err == nil && len(u.Rows) != 12*6 {
			err = fmt.Errorf("%d rows, want 72", len(u.Rows))
		}
		return err
	})
}

func BenchmarkLedgerFirstPage(b *testing.B) {
	r := benchReader(b)
	measure(b, func() error {
		_, err := r.Ledger(context.Background(), 1, queries.LedgerFilter{})
		return err
	})
}
