package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creditd/creditd/ingest"
	"github.com/creditd/creditd/internal/metrics"
	"github.com/creditd/creditd/internal/testnats"
)

// TestDeadLetterStreamIsBounded: dead letters are kept for a while, not
// for ever: a producer that publishes garbage without end must not fill
// the server's disk. The bounds drop the oldest first, so dead-lettering
// never fails and never holds ingestion up.
func TestDeadLetterStreamIsBounded(t *testing.T) {
	t.Parallel()
	srv := testnats.Start(t, t.TempDir())
	js, _ := jetstream.New(srv.Conn)
	ctx := context.Background()
	if err := ingest.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, ingest.DeadStreamName)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	if cfg.MaxAge != ingest.DeadLetterMaxAgeDefault || cfg.MaxBytes != ingest.DeadLetterMaxBytesDefault || cfg.Discard != jetstream.DiscardOld {
		t.Fatalf("dead letters kept for %s up to %d bytes, discard %s; want %s, %d, old",
			cfg.MaxAge, cfg.MaxBytes, cfg.Discard, ingest.DeadLetterMaxAgeDefault, ingest.DeadLetterMaxBytesDefault)
	}
	// Again, on the stream as it now is: its limits are no reason to refuse it.
	if err := ingest.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
}

// TestDroppedDeadLettersAreCounted bounds the dead-letter stream to a few
// kilobytes, publishes dead letters past it, and reads the metric of those
// dropped.
func TestDroppedDeadLettersAreCounted(t *testing.T) {
	t.Parallel()
	srv := testnats.Start(t, t.TempDir())
	js, _ := jetstream.New(srv.Conn)
	ctx := context.Background()
	const maxBytes = 8 << 10
	if err := ingest.EnsureStreamsWith(ctx, js, ingest.StreamOptions{Replicas: 1, DeadLetters: ingest.DeadLetterLimits{MaxAge: time.Hour, MaxBytes: maxBytes}}); err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	m.WatchDeadLetters(func(ctx context.Context) (uint64, error) { return ingest.DeadLettersDropped(ctx, js) })
	if got := droppedMetric(t, m); got != 0 {
		t.Fatalf("dropped %v before any dead letter", got)
	}
	const published = 40
	for i := range published {
		if _, err := js.Publish(ctx, ingest.DeadPrefix+"1", bytes.Repeat([]byte{'x'}, 1<<10)); err != nil {
			t.Fatalf("dead letter %d: %v", i, err)
		}
	}
	stream, err := js.Stream(ctx, ingest.DeadStreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Bytes > maxBytes || info.State.Msgs == 0 || info.State.Msgs >= published {
		t.Fatalf("the stream holds %d dead letters in %d bytes, want some, within %d bytes", info.State.Msgs, info.State.Bytes, maxBytes)
	}
	if got, want := droppedMetric(t, m), float64(published-info.State.Msgs); got != want {
		t.Fatalf("creditd_usage_dead_letters_dropped_total = %v, want %v", got, want)
	}
}

func droppedMetric(t *testing.T, m *metrics.Metrics) float64 {
	t.Helper()
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "creditd_usage_dead_letters_dropped_total" {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no creditd_usage_dead_letters_dropped_total metric")
	return 0
}

// TestEnsureStreamsRefusesAWorkStreamThatCanLoseUsage: the work stream
// holds usage producers were told is stored, until it is recorded; one an
// operator made in memory is refused, naming the setting.
func TestEnsureStreamsRefusesAWorkStreamThatCanLoseUsage(t *testing.T) {
	t.Parallel()
	srv := testnats.Start(t, t.TempDir())
	js, _ := jetstream.New(srv.Conn)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: ingest.StreamName, Subjects: []string{ingest.SubjectPrefix + "*"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	err := ingest.EnsureStreams(ctx, js, 1)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("stream %s: storage is memory", ingest.StreamName)) {
		t.Fatalf("EnsureStreams on a work stream in memory: %v", err)
	}
}
