package commands

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/testnats"
)

// fakeClock is a settable clock shared by an engine and its test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// harness is a real embedded JetStream and an engine on it.
type harness struct {
	t      testing.TB
	dir    string
	clock  *fakeClock
	server *testnats.Server
	engine *Engine
	// snapshots configures the engines' snapshots (default: the
	// defaults, in a temporary directory).
	snapshots SnapshotOptions
}

func newHarness(t testing.TB) *harness {
	h := &harness{t: t, dir: t.TempDir(), clock: newFakeClock()}
	h.start()
	return h
}

func (h *harness) start() {
	h.t.Helper()
	h.server = testnats.Start(h.t, h.dir)
	h.engine = h.newEngine(h.server.Store)
}

func (h *harness) newEngine(store FullStore) *Engine {
	h.t.Helper()
	e, err := New(context.Background(), store, Options{Clock: h.clock.Now, CheckInvariants: true, SweepInterval: 20 * time.Millisecond, Snapshots: h.snapshots})
	if err != nil {
		h.t.Fatalf("new engine: %v", err)
	}
	h.t.Cleanup(e.Close)
	return e
}

// restart stops the engine and the server and starts both again on the same
// data directory.
func (h *harness) restart() {
	h.t.Helper()
	h.engine.Close()
	h.server.Stop()
	h.start()
}

func (h *harness) tenant() int64 {
	h.t.Helper()
	created, err := h.engine.CreateTenant(context.Background(), CreateTenant{Name: "acme"})
	if err != nil {
		h.t.Fatalf("create tenant: %v", err)
	}
	return created.Tenant.ID
}

func (h *harness) grant(tenantID int64, id, amount string, mod func(*domain.Grant)) Result {
	h.t.Helper()
	g := domain.Grant{GrantID: id, Amount: dec(amount), Source: domain.SourcePurchase}
	if mod != nil {
		mod(&g)
	}
	res, err := h.engine.Grant(context.Background(), tenantID, domain.DefaultCreditType, g)
	if err != nil {
		h.t.Fatalf("grant %s: %v", id, err)
	}
	return res
}

func (h *harness) use(tenantID int64, id, amount string) Result {
	h.t.Helper()
	results, err := h.engine.RecordUsage(context.Background(), tenantID, []UsageEvent{usage(id, amount)})
	if err != nil {
		h.t.Fatalf("usage %s: %v", id, err)
	}
	return results[0]
}

func (h *harness) line(tenantID int64) *domain.Line {
	h.t.Helper()
	l, _, err := h.engine.Line(context.Background(), tenantID, domain.DefaultCreditType)
	if err != nil {
		h.t.Fatalf("line: %v", err)
	}
	return l
}

// events reads every event of the log back from the store.
func (h *harness) events() []domain.Envelope {
	h.t.Helper()
	var out []domain.Envelope
	for p := range h.server.Store.Partitions() {
		err := h.server.Store.ReadSubject(context.Background(), eventstore.PartitionSubject(p), 0, func(m eventstore.StoredMsg) error {
			c, err := eventstore.DecodeCommit(m.Data)
			out = append(out, c.Events...)
			return err
		})
		if err != nil {
			h.t.Fatalf("read partition %d: %v", p, err)
		}
	}
	return out
}

func usage(id, amount string) UsageEvent {
	return UsageEvent{CreditType: domain.DefaultCreditType, RecordUsage: domain.RecordUsage{
		UsageID: id, Amount: dec(amount), Dimensions: domain.Dimensions{Module: "search", Success: true},
	}}
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func wantDecimal(t testing.TB, name string, got decimal.Decimal, want string) {
	t.Helper()
	if !got.Equal(dec(want)) {
		t.Errorf("%s = %s, want %s", name, got, want)
	}
}

// eventually polls cond until it holds or the wait runs out.
func eventually(t testing.TB, wait time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", wait)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func grantCommand(id, amount string) domain.Grant {
	return domain.Grant{GrantID: id, Amount: dec(amount), Source: domain.SourcePurchase}
}
