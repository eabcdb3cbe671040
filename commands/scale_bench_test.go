package commands

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/creditd/creditd/domain"
)

// seedLines puts n lines of tenant ids from..from+n on partition p, each
// with a grant that never expires (no due work), straight into the
// writer's state: building them through the log would take minutes.
func seedLines(b *testing.B, h *harness, p *partition, n int) {
	b.Helper()
	r := &request{done: make(chan error, 1), inspect: func(p *partition) {
		for i := range n {
			l := domain.NewLine(domain.DefaultCreditType)
			l.Apply(domain.CreditsGranted{GrantID: "g", Amount: dec("100"), Source: domain.SourcePurchase})
			p.lines[lineRef{int64(1_000_000 + i), domain.DefaultCreditType}] = l
		}
	}}
	if err := h.engine.submitTo(context.Background(), p, r); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSweepIdleLines: one sweep of every partition with 25k idle
// lines on one of them. The due-time schedule makes it independent of the
// number of lines (it was a scan of every line).
func BenchmarkSweepIdleLines(b *testing.B) {
	h := newHarness(b)
	seedLines(b, h, h.engine.partitions[0], 25_000)
	ctx := context.Background()
	for b.Loop() {
		if err := h.engine.Sweep(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHotLineManyDepleted: deciding a usage debit on a line that
// burned through 10k grants (the writer's work for one batch, without the
// append). Depleted grants leave the line's copy, so deciding costs the same
// however many grants the line burned through.
func BenchmarkHotLineManyDepleted(b *testing.B) {
	p := newPartition(0, nil, slog.New(slog.DiscardHandler), newFakeClock().Now, false)
	l := domain.NewLine(domain.DefaultCreditType)
	for i := range 10_000 {
		id := fmt.Sprintf("g-%d", i)
		l.Apply(domain.CreditsGranted{GrantID: id, Amount: dec("1"), Source: domain.SourcePurchase})
		l.Apply(domain.UsageDebited{UsageID: "seed-" + id, Amount: dec("1"), Burned: []domain.Burn{{GrantID: id, Amount: dec("1")}}})
	}
	l.Apply(domain.CreditsGranted{GrantID: "big", Amount: dec("1000000000"), Source: domain.SourcePurchase})
	ref := lineRef{1, domain.DefaultCreditType}
	p.lines[ref] = l
	p.keepDepleted(ref, l)
	now := p.clock()
	ev := usage("u", "0.01")
	o := op{creditType: ev.CreditType, key: makeKey(1, kindUsage, ev.UsageID), fingerprint: 1,
		decide: func(d decision) ([]domain.Event, error) { return domain.DecideUsage(d.line, ev.RecordUsage, d.now) }}
	for b.Loop() {
		st := p.decide([]*request{newRequest(1, []op{o})}, now)
		if len(st.events) != 1 {
			b.Fatalf("%d events", len(st.events))
		}
	}
}

// BenchmarkCheckpointLines: a checkpoint with 25k lines on a partition;
// the writer copies the map of lines, not the lines, and the digest is
// computed outside it.
func BenchmarkCheckpointLines(b *testing.B) {
	h := newHarness(b)
	seedLines(b, h, h.engine.partitions[0], 25_000)
	ctx := context.Background()
	for b.Loop() {
		if _, _, err := h.engine.Checkpoint(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
