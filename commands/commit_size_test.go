package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// heldStore holds the first partition append at its gate until released,
// so that the requests sent meanwhile queue up for one group commit.
type heldStore struct {
	FullStore
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (s *heldStore) Append(ctx context.Context, subject string, expectedSeq uint64, data []byte) (uint64, error) {
	if strings.HasPrefix(subject, "credits.events.") {
		s.once.Do(func() {
			close(s.entered)
			<-s.release
		})
	}
	return s.FullStore.Append(ctx, subject, expectedSeq, data)
}

// defaultPayloadServer starts a nats-server with JetStream and NATS's
// default max_payload (1 MiB), as an external server has unless told
// otherwise, and opens the store on it.
func defaultPayloadServer(t *testing.T) *eventstore.Store {
	t.Helper()
	ns, err := server.NewServer(&server.Options{JetStream: true, StoreDir: t.TempDir(), DontListen: true, NoSigs: true, NoLog: true, SyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		nc.Close()
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if nc.MaxPayload() != 1<<20 {
		t.Fatalf("max_payload is %d, want NATS's default 1 MiB", nc.MaxPayload())
	}
	store, err := eventstore.Open(context.Background(), nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// bigUsage returns n usage events of about 1.3 KB each once stored (the
// longest description a request may carry).
func bigUsage(prefix string, n int) []UsageEvent {
	events := make([]UsageEvent, n)
	for i := range events {
		events[i] = usage(fmt.Sprintf("%s-%d", prefix, i), "0.001")
		events[i].Description = strings.Repeat("d", domain.TextLengthMax)
	}
	return events
}

// TestCommitsFitTheServersMaxPayload runs on a server with NATS's default
// 1 MiB max_payload. Requests that queue while a commit is in flight are
// gathered into one group commit; when together they exceed the limit,
// the commit is split and every request succeeds (they once all failed
// as unavailable). One request larger than the limit alone is refused as
// too large, and nothing of it is stored.
func TestCommitsFitTheServersMaxPayload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	held := &heldStore{FullStore: defaultPayloadServer(t), entered: make(chan struct{}), release: make(chan struct{})}
	engine, err := New(ctx, held, Options{CheckInvariants: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(engine.Close)
	created, err := engine.CreateTenant(ctx, CreateTenant{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	tenant := created.Tenant.ID
	granted := make(chan error, 1)
	go func() {
		_, err := engine.Grant(ctx, tenant, domain.DefaultCreditType, grantCommand("g", "1000000"))
		granted <- err
	}()
	<-held.entered // the grant's append, held
	// The grant is still held: these queue behind it, about 2.3 MB in all.
	const requests, eventsEach = 6, 300
	errs := make(chan error, requests)
	for r := range requests {
		go func() {
			results, err := engine.RecordUsage(ctx, tenant, bigUsage(fmt.Sprintf("r%d", r), eventsEach))
			if err == nil {
				for _, res := range results {
					if res.Status != StatusAccepted {
						err = fmt.Errorf("status %s", res.Status)
					}
				}
			}
			errs <- err
		}()
	}
	p := engine.partitions[held.PartitionOf(tenant)]
	eventually(t, 10*time.Second, func() bool { return len(p.inbox) == requests })
	close(held.release)
	if err := <-granted; err != nil {
		t.Fatal(err)
	}
	for range requests {
		if err := <-errs; err != nil {
			t.Fatalf("a request of a group commit over max_payload failed: %v", err)
		}
	}
	l, _, err := engine.Line(ctx, tenant, domain.DefaultCreditType)
	if err != nil {
		t.Fatal(err)
	}
	wantDecimal(t, "used", l.Used, fmt.Sprint(0.001*requests*eventsEach))

	subject := eventstore.PartitionSubject(p.id)
	store := held.FullStore.(*eventstore.Store)
	before, err := store.LastSeq(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	_, err = engine.RecordUsage(ctx, tenant, bigUsage("huge", UsageBatchMax))
	if !errors.Is(err, ErrCommitTooLarge) {
		t.Fatalf("a request over max_payload: %v, want ErrCommitTooLarge", err)
	}
	if after, err := store.LastSeq(ctx, subject); err != nil || after != before {
		t.Fatalf("the refused request moved the partition from %d to %d (%v)", before, after, err)
	}
}

// TestASweepOverTheServersMaxPayloadStoresEveryExpiry expires, in one
// sweep, more grants than 1 MiB of commit holds: the sweep stores them
// over several commits instead of failing at every tick.
func TestASweepOverTheServersMaxPayloadStoresEveryExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store := defaultPayloadServer(t)
	clock := newFakeClock()
	engine, err := New(ctx, store, Options{Clock: clock.Now, CheckInvariants: true, SweepInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(engine.Close)
	created, err := engine.CreateTenant(ctx, CreateTenant{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	tenant := created.Tenant.ID
	// About 6000 expiries of some 250 bytes each: 1.5 MB, under
	// sweepEventsMax, over 1 MiB.
	const lines, grantsEach = 100, 60
	expires := clock.Now().Add(time.Hour)
	errs := make(chan error, lines)
	for l := range lines {
		go func() {
			var err error
			for g := 0; g < grantsEach && err == nil; g++ {
				grant := grantCommand(fmt.Sprintf("%s-%d-%d", strings.Repeat("g", 100), l, g), "1")
				grant.ExpiresAt = &expires
				_, err = engine.Grant(ctx, tenant, fmt.Sprintf("type-%d", l), grant)
			}
			errs <- err
		}()
	}
	for range lines {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(2 * time.Hour)
	if err := engine.Sweep(ctx); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	for l := range lines {
		line, _, err := engine.Line(ctx, tenant, fmt.Sprintf("type-%d", l))
		if err != nil {
			t.Fatal(err)
		}
		wantDecimal(t, fmt.Sprintf("line %d expired", l), line.Expired, fmt.Sprint(grantsEach))
	}
}
