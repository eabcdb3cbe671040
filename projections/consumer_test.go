package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/testnats"
)

// Commits that arrive while the live projection's transaction runs are
// applied together in the next one, not one transaction each: a
// transaction's fixed costs are what made the projection lag behind heavy
// writes (one per commit: 820–1,160 ms p99 lag in `creditd bench`).
func TestCommitsQueuedDuringATransactionAreAppliedTogether(t *testing.T) {
	t.Parallel()
	f := newLiveFixture(t)
	p, start := f.p, f.start
	// The first transaction after start waits until every commit below is
	// stored; the rest must then arrive in few transactions.
	release := make(chan struct{})
	var transactions atomic.Int64
	p.beforeCommit = func(position uint64) error {
		if transactions.Add(1) == 1 && position > start {
			<-release
		}
		return nil
	}
	wait := f.consume(t)
	ctx := context.Background()
	transactions.Store(0)
	const commits = 20
	for i := range commits {
		f.record(t, fmt.Sprintf("u%d", i))
	}
	last, _ := f.srv.Store.LastPosition(ctx)
	if last-start < commits {
		t.Fatalf("%d commits stored, want %d", last-start, commits)
	}
	// Let every delivery reach the projection's queue before releasing.
	time.Sleep(200 * time.Millisecond)
	close(release)
	if err := p.WaitFor(wait, last); err != nil {
		t.Fatal(err)
	}
	if n := transactions.Load(); n > 3 {
		t.Fatalf("%d commits applied in %d transactions, want them together (at most 3)", last-start, n)
	}
	checkLedgerChains(t, f.db.Reader())
}

// liveFixture is an embedded JetStream with an engine, a tenant whose
// default line holds 1,000 credits, and a projector on a fresh database
// that does not consume yet: a test sets its hooks first.
type liveFixture struct {
	srv      *testnats.Server
	engine   *commands.Engine
	tenantID int64
	db       *DB
	p        *Projector
	// start is the log's last position once the line is funded.
	start uint64
}

func newLiveFixture(t *testing.T) liveFixture {
	t.Helper()
	ctx := context.Background()
	f := liveFixture{srv: testnats.Start(t, t.TempDir())}
	var err error
	if f.engine, err = commands.New(ctx, f.srv.Store, commands.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.engine.Close)
	tenant, err := f.engine.CreateTenant(ctx, commands.CreateTenant{Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	f.tenantID = tenant.Tenant.ID
	if _, err := f.engine.Grant(ctx, f.tenantID, "default", domain.Grant{GrantID: "g", Amount: decimal.NewFromInt(1000), Source: domain.SourcePurchase}); err != nil {
		t.Fatal(err)
	}
	f.db = openDB(t)
	if f.p, err = NewProjector(ctx, f.db, nil); err != nil {
		t.Fatal(err)
	}
	if f.start, err = f.srv.Store.LastPosition(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

// consume runs the live projection on a connection of its own until the
// test ends, and waits for it to reach start. The context it returns
// bounds the test's later waits (20 s).
func (f liveFixture) consume(t *testing.T) context.Context {
	t.Helper()
	conn, err := f.srv.Embedded.Connect("projection-test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Consume(ctx, conn, f.p, f.srv.Store, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	wait, cancelWait := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancelWait)
	if err := f.p.WaitFor(wait, f.start); err != nil {
		t.Fatal(err)
	}
	return wait
}

// record stores one usage event of 1 credit, in a commit of its own.
func (f liveFixture) record(t *testing.T, id string) {
	t.Helper()
	if _, err := f.engine.RecordUsage(context.Background(), f.tenantID, []commands.UsageEvent{{CreditType: "default",
		RecordUsage: domain.RecordUsage{UsageID: id, Amount: decimal.NewFromInt(1)}}}); err != nil {
		t.Fatal(err)
	}
}

// A batch that does not follow the last commit applied (a consumer created
// past a gap) is preceded by the missing commits, read from the log; a
// batch whose transaction fails is retried until it is applied, its error
// shown meanwhile.
func TestApplierFillsGapsAndRetries(t *testing.T) {
	t.Parallel()
	srv, engine, _ := scenario(t, 3)
	engine.Close()
	ctx := context.Background()
	last, _ := srv.Store.LastPosition(ctx)
	var tail []eventstore.StoredMsg
	if err := srv.Store.ReadAll(ctx, last-5, last, func(m eventstore.StoredMsg) error {
		tail = append(tail, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db := openDB(t)
	p, err := NewProjector(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	failures := 0
	p.beforeCommit = func(uint64) error {
		if failures < 3 {
			failures++
			if p.Err() == nil && failures > 1 {
				t.Error("a failed transaction left no error to show")
			}
			return errors.New("disk full")
		}
		return nil
	}
	a := newApplier(p, srv.Store, slog.New(slog.DiscardHandler))
	a.apply(ctx, a.prepareAll(tail))
	if got := p.Position(); got != last {
		t.Fatalf("position %d after the batch, want %d", got, last)
	}
	if p.Err() != nil {
		t.Fatalf("error still shown after the batch was applied: %v", p.Err())
	}
	if a, b := dump(t, db), dump(t, rebuild(t, srv)); a != b {
		t.Fatalf("gap filled from the log differs from a rebuild:\n%s", firstDifference(a, b))
	}
}

// The queue behind the applier holds at most liveQueueBytesMax of
// deliveries (plus one), whatever their count: commits may be megabytes
// each. A delivery larger than the bound still goes through an empty queue.
func TestApplierQueueIsBoundedInBytes(t *testing.T) {
	t.Parallel()
	a := newApplier(nil, nil, slog.New(slog.DiscardHandler))
	a.p = &Projector{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const size = 4 << 20
	enqueued := make(chan uint64, consumerAckPendingMax)
	go func() {
		for seq := uint64(1); seq <= 40; seq++ {
			if err := a.enqueue(ctx, eventstore.StoredMsg{Sequence: seq, Data: make([]byte, size)}); err != nil {
				return
			}
			enqueued <- seq
		}
	}()
	time.Sleep(200 * time.Millisecond)
	if n := len(enqueued); n != liveQueueBytesMax/size {
		t.Fatalf("%d deliveries of %d MiB queued, want %d", n, size>>20, liveQueueBytesMax/size)
	}
	if q := a.queued.Load(); q > liveQueueBytesMax {
		t.Fatalf("%d bytes queued, bound %d", q, liveQueueBytesMax)
	}
	// Taking one lets one more in.
	if m, ok := a.take(ctx, true); !ok || m.Sequence != 1 {
		t.Fatalf("took %d %v", m.Sequence, ok)
	}
	deadline := time.After(5 * time.Second)
	for len(enqueued) < liveQueueBytesMax/size+1 {
		select {
		case <-deadline:
			t.Fatal("taking a delivery did not let the next one in")
		case <-time.After(time.Millisecond):
		}
	}
	// Drained, the queue takes a delivery above the bound.
	for a.queued.Load() > 0 {
		a.take(ctx, true)
	}
	cancel()
	b := newApplier(nil, nil, slog.New(slog.DiscardHandler))
	b.p = &Projector{}
	if err := b.enqueue(context.Background(), eventstore.StoredMsg{Sequence: 1, Data: make([]byte, liveQueueBytesMax+1)}); err != nil {
		t.Fatal(err)
	}
}

// prepareAll decodes msgs as the consumer's handler does when it queues
// them.
func (a *applier) prepareAll(msgs []eventstore.StoredMsg) []delivery {
	out := make([]delivery, len(msgs))
	for i, m := range msgs {
		out[i] = a.prepare(m)
	}
	return out
}
