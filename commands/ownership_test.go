package commands

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/testnats"
)

// leaseTTL is short in these tests so a takeover after a crash is quick.
const leaseTTL = 2 * time.Second

// counter counts what the writers and the leases do.
type counter struct {
	committed, conflicted, retried, renewed, lost, forwarded, forwardErrs atomic.Int64
	mu                                                                    sync.Mutex
	owned                                                                 []int
}

func (c *counter) Committed(n int) { c.committed.Add(int64(n)) }
func (c *counter) Conflicted()     { c.conflicted.Add(1) }
func (c *counter) Retried()        { c.retried.Add(1) }
func (c *counter) LeaseRenewed()   { c.renewed.Add(1) }
func (c *counter) LeaseLost(int)   { c.lost.Add(1) }
func (c *counter) Owned(ps []int)  { c.mu.Lock(); c.owned = ps; c.mu.Unlock() }
func (c *counter) Forwarded(_ time.Duration, err error) {
	c.forwarded.Add(1)
	if err != nil {
		c.forwardErrs.Add(1)
	}
}

// member is one instance on the shared server: its own connections (so a
// crash can cut them), store, cluster and engine.
type member struct {
	faults  *lossyCoordinator
	name    string
	conns   []*nats.Conn
	engine  *Engine
	counter *counter
}

func startMember(t *testing.T, srv *testnats.Server, name string) *member {
	return startMemberWith(t, srv, name, SnapshotOptions{})
}

func startMemberWith(t testing.TB, srv *testnats.Server, name string, snapshots SnapshotOptions) *member {
	return startMemberOn(t, srv.Embedded.Connect, name, snapshots)
}

// startMemberOn starts an instance whose connections connect makes.
func startMemberOn(t testing.TB, connect func(name string) (*nats.Conn, error), name string, snapshots SnapshotOptions) *member {
	t.Helper()
	ctx := context.Background()
	m := &member{name: name, counter: &counter{}}
	dial := func(suffix string) *nats.Conn {
		nc, err := connect(name + suffix)
		if err != nil {
			t.Fatal(err)
		}
		m.conns = append(m.conns, nc)
		return nc
	}
	store, err := eventstore.Open(ctx, dial(""), eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cluster, err := eventstore.OpenCluster(ctx, dial("-cluster"), 1, leaseTTL)
	if err != nil {
		t.Fatal(err)
	}
	m.faults = &lossyCoordinator{Cluster: cluster}
	var co Coordinator = m.faults
	m.engine, err = New(ctx, store, Options{CheckInvariants: true, Observer: m.counter, Snapshots: snapshots,
		Cluster: &ClusterOptions{Coordinator: co, Instance: name, Observer: m.counter}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.stop)
	return m
}

// stop is a clean stop: partitions handed over, then connections closed.
func (m *member) stop() {
	m.engine.Close()
	for _, nc := range m.conns {
		nc.Close()
	}
}

// crash cuts the instance off at once, as kill -9 would: no handover, no
// release, no goodbye. Its engine is closed afterwards only to free the
// test's goroutines; it can reach nothing by then.
func (m *member) crash() {
	for _, nc := range m.conns {
		nc.Close()
	}
	m.engine.Close()
}

// waitSpread waits until every partition has exactly one owner among
// members and each owns its share, and returns the time it took.
func waitSpread(t testing.TB, wait time.Duration, members ...*member) time.Duration {
	t.Helper()
	start := time.Now()
	partitions := members[0].engine.store.Partitions()
	for {
		owners := map[int]int{}
		balanced := true
		for _, m := range members {
			o, _ := m.engine.Ownership()
			for _, p := range o.Owned {
				owners[p]++
			}
			if n := len(o.Owned); n < partitions/len(members) || n > (partitions+len(members)-1)/len(members) {
				balanced = false
			}
		}
		whole := len(owners) == partitions
		for _, n := range owners {
			if n != 1 {
				whole = false
			}
		}
		if whole && balanced {
			return time.Since(start)
		}
		if time.Since(start) > wait {
			t.Fatalf("partitions not spread over %d instances in %s: owners per partition %v", len(members), wait, owners)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newTenant(t *testing.T, e *Engine, grant string) int64 {
	t.Helper()
	ctx := context.Background()
	created, err := e.CreateTenant(ctx, CreateTenant{Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if grant != "" {
		if _, err := e.Grant(ctx, created.Tenant.ID, "default", domain.Grant{GrantID: "g", Amount: decimal.RequireFromString(grant), Source: domain.SourcePurchase}); err != nil {
			t.Fatal(err)
		}
	}
	return created.Tenant.ID
}

// known waits until every member's registry holds the tenant: one created
// through another instance is known within about a second
// (registryRefreshMin); clients meet the same through their API keys.
func known(t *testing.T, tenant int64, members ...*member) {
	t.Helper()
	for _, m := range members {
		for deadline := time.Now().Add(5 * time.Second); ; {
			if _, err := m.engine.Tenant(tenant); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("instance %s does not know tenant %d", m.name, tenant)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// record writes one usage event, retrying with the same id while the
// answer is retryable (as a client does on a 503), and fails the test
// on any other error.
func record(t *testing.T, e *Engine, tenant int64, id, amount string) Result {
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := e.RecordUsage(ctx, tenant, usageEvent(id, amount))
		cancel()
		switch {
		case err == nil:
			return res[0]
		case !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrContention) || attempt == 20:
			t.Errorf("usage %s: %v", id, err)
			return Result{}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func usageEvent(id, amount string) []UsageEvent {
	return []UsageEvent{{CreditType: "default", RecordUsage: domain.RecordUsage{UsageID: id, Amount: decimal.RequireFromString(amount)}}}
}

// Writes through three instances, to tenants of every partition and to
// one tenant whose credits run out mid-way: no append ever conflicts
// (each partition has one writer), every write is answered without
// error wherever it entered, the small balance is spent exactly and never
// overspent, and a retry through another instance is a duplicate.
func TestOwnedPartitionsWriteWithoutConflicts(t *testing.T) {
	srv := testnats.Start(t, t.TempDir())
	members := []*member{startMember(t, srv, "a"), startMember(t, srv, "b"), startMember(t, srv, "c")}
	waitSpread(t, 10*time.Second, members...)
	ctx := context.Background()

	var tenants []int64
	for range 12 {
		tenants = append(tenants, newTenant(t, members[0].engine, "1000000"))
	}
	// 100 credits, 0.5 per debit: exactly 200 of the 600 debits fit.
	scarce := newTenant(t, members[1].engine, "100")
	for _, tenant := range append(slices.Clone(tenants), scarce) {
		known(t, tenant, members...)
	}

	const workers, perWorker = 6, 100
	var accepted, rejected atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				via := members[(w+i)%len(members)].engine
				tenant := tenants[(w*perWorker+i)%len(tenants)]
				if _, err := via.RecordUsage(ctx, tenant, usageEvent(fmt.Sprintf("u-%d-%d", w, i), "1")); err != nil {
					t.Errorf("usage through %d: %v", (w+i)%len(members), err)
					return
				}
				res, err := via.RecordUsage(ctx, scarce, usageEvent(fmt.Sprintf("s-%d-%d", w, i), "0.5"))
				if err != nil {
					t.Errorf("scarce usage: %v", err)
					return
				}
				switch res[0].Status {
				case StatusAccepted:
					accepted.Add(1)
				case StatusRejected:
					rejected.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if accepted.Load() != 200 || rejected.Load() != workers*perWorker-200 {
		t.Fatalf("scarce line: %d accepted, %d rejected; want 200 and %d", accepted.Load(), rejected.Load(), workers*perWorker-200)
	}
	for _, m := range members {
		if n := m.counter.conflicted.Load(); n != 0 {
			t.Errorf("instance %s: %d append conflicts, want 0", m.name, n)
		}
		if m.counter.forwarded.Load() == 0 {
			t.Errorf("instance %s forwarded nothing: every write took the local path", m.name)
		}
	}
	for _, m := range members {
		line, _, err := m.engine.Line(ctx, scarce, "default")
		if err != nil {
			t.Fatal(err)
		}
		if !line.Used.Equal(decimal.NewFromInt(100)) || line.Available().Sign() != 0 {
			t.Fatalf("instance %s sees the scarce line used %s, available %s; want 100 and 0", m.name, line.Used, line.Available())
		}
	}
	// A retry through each instance is the original's duplicate.
	first, err := members[0].engine.RecordUsage(ctx, tenants[0], usageEvent("u-0-0", "1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		res, err := m.engine.RecordUsage(ctx, tenants[0], usageEvent("u-0-0", "1"))
		if err != nil || !res[0].Duplicate || res[0].Position != first[0].Position {
			t.Fatalf("retry through %s: %+v %v; want a duplicate at %d", m.name, res, err, first[0].Position)
		}
	}
}

// A write's errors reach the caller through a forward as they would
// locally: the same sentinel, the same text, the same field errors.
func TestForwardedErrorsKeepTheirMeaning(t *testing.T) {
	srv := testnats.Start(t, t.TempDir())
	a, b := startMember(t, srv, "a"), startMember(t, srv, "b")
	waitSpread(t, 10*time.Second, a, b)
	ctx := context.Background()
	// A tenant of a partition b owns, written through a.
	var tenant int64
	for tenant == 0 {
		id := newTenant(t, a.engine, "10")
		known(t, id, a, b)
		if !a.engine.cluster.owns(a.engine.store.PartitionOf(id)) {
			tenant = id
		}
	}
	_, err := a.engine.Reserve(ctx, tenant, "default", domain.Reserve{ReservationID: "r", Amount: decimal.NewFromInt(11)})
	if !errors.Is(err, domain.ErrInsufficientCredits) {
		t.Fatalf("reserve beyond the balance through a forward: %v, want insufficient credits", err)
	}
	_, local := b.engine.Reserve(ctx, tenant, "default", domain.Reserve{ReservationID: "r", Amount: decimal.NewFromInt(11)})
	if err.Error() != local.Error() {
		t.Fatalf("forwarded error %q, local %q", err, local)
	}
	_, err = a.engine.Grant(ctx, tenant, "default", domain.Grant{GrantID: "", Amount: decimal.Zero, Source: domain.SourcePurchase})
	fields := domain.FieldErrors(err)
	if !errors.Is(err, domain.ErrInvalidCommand) || len(fields) < 2 || fields[0].Location != "grant_id" {
		t.Fatalf("invalid grant through a forward: %v, fields %+v", err, fields)
	}
	_, err = a.engine.Capture(ctx, tenant, "", domain.Capture{ReservationID: "nope"})
	if !errors.Is(err, domain.ErrReservationNotFound) {
		t.Fatalf("capture of an unknown reservation through a forward: %v", err)
	}
	res, err := a.engine.Grant(ctx, tenant, "default", domain.Grant{GrantID: "g2", Amount: decimal.RequireFromString("2.50"), Source: domain.SourcePurchase})
	if err != nil || len(res.Events) != 1 {
		t.Fatalf("grant through a forward: %+v %v", res, err)
	}
	if g, ok := res.Events[0].(domain.CreditsGranted); !ok || !g.Amount.Equal(decimal.RequireFromString("2.5")) {
		t.Fatalf("forwarded grant's event: %#v", res.Events[0])
	}
}

// An instance that stops cleanly hands its partitions over at once; one
// that crashes loses them when its leases expire, and the others take
// them within the TTL and a tick. Writes go on through the survivors the
// whole time, each acknowledged once.
func TestPartitionsMoveOnStopAndCrash(t *testing.T) {
	srv := testnats.Start(t, t.TempDir())
	a, b, c := startMember(t, srv, "a"), startMember(t, srv, "b"), startMember(t, srv, "c")
	waitSpread(t, 10*time.Second, a, b, c)
	ctx := context.Background()
	var tenants []int64
	for range 8 {
		tenants = append(tenants, newTenant(t, a.engine, "1000000"))
	}
	for _, tenant := range tenants {
		known(t, tenant, a, b, c)
	}

	stopWriting := make(chan struct{})
	var acked atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stopWriting:
					return
				default:
				}
				if record(t, a.engine, tenants[(w+i)%len(tenants)], fmt.Sprintf("w%d-%d", w, i), "1").Status == "" {
					return
				}
				acked.Add(1)
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	c.stop()
	took := waitSpread(t, 10*time.Second, a, b)
	t.Logf("clean stop of c: its partitions taken over in %s", took)
	if took > leaseTTL {
		t.Errorf("a clean stop's partitions waited %s, as long as an expiry (%s)", took, leaseTTL)
	}
	time.Sleep(300 * time.Millisecond)
	crashed := time.Now()
	b.crash()
	took = waitSpread(t, leaseTTL+2*time.Second+5*time.Second, a)
	t.Logf("crash of b: its partitions taken over %s after", time.Since(crashed))
	if time.Since(crashed) > leaseTTL+2*time.Second {
		t.Errorf("a crashed instance's partitions were taken over after %s, want within the TTL %s + 2 s", time.Since(crashed), leaseTTL)
	}
	time.Sleep(300 * time.Millisecond)
	close(stopWriting)
	wg.Wait()
	if t.Failed() {
		return
	}
	total := decimal.Zero
	for _, tenant := range tenants {
		line, _, err := a.engine.Line(ctx, tenant, "default")
		if err != nil {
			t.Fatal(err)
		}
		total = total.Add(line.Used)
	}
	if !total.Equal(decimal.NewFromInt(acked.Load())) {
		t.Fatalf("used %s over all lines, acknowledged %d writes of 1", total, acked.Load())
	}
	if a.counter.conflicted.Load() != 0 {
		t.Logf("conflicts on a: %d (the crash's unfinished appends)", a.counter.conflicted.Load())
	}
	o, _ := a.engine.Ownership()
	all := make([]int, a.engine.store.Partitions())
	for i := range all {
		all[i] = i
	}
	if !slices.Equal(o.Owned, all) {
		t.Fatalf("a owns %v", o.Owned)
	}
}

// assign gives every partition one member, shares differing by at most
// one; when a member joins, only the newcomer's share moves, and when one
// leaves, only its partitions do.
func TestAssignSpreadsEvenlyAndMovesLittle(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5} {
		for _, partitions := range []int{4, 16, 32} {
			members := []string{}
			for i := range n {
				members = append(members, fmt.Sprintf("creditd-%d-x%d", i, i*7))
			}
			slices.Sort(members)
			want := assign(members, partitions, nil)
			checkShares := func(what string, members []string, want map[int]string) {
				t.Helper()
				if len(want) != partitions {
					t.Fatalf("%s, %d members, %d partitions: %d assigned", what, len(members), partitions, len(want))
				}
				shares := map[string]int{}
				for _, m := range want {
					shares[m]++
				}
				for _, m := range members {
					if s := shares[m]; s < partitions/len(members) || s > (partitions+len(members)-1)/len(members) {
						t.Fatalf("%s, %d members, %d partitions: %s gets %d", what, len(members), partitions, m, s)
					}
				}
			}
			checkShares("first", members, want)
			if again := assign(members, partitions, want); !maps.Equal(again, want) {
				t.Fatalf("%d members, %d partitions: the same members and owners moved partitions", n, partitions)
			}
			joined := append(slices.Clone(members), "creditd-new")
			slices.Sort(joined)
			after := assign(joined, partitions, want)
			checkShares("join", joined, after)
			moved := 0
			for p, m := range want {
				if after[p] != m {
					moved++
				}
			}
			if limit := (partitions + n) / (n + 1); moved > limit {
				t.Errorf("%d members, %d partitions: a join moved %d partitions, want at most the newcomer's %d", n, partitions, moved, limit)
			}
			if n > 1 {
				gone := members[1]
				left := slices.DeleteFunc(slices.Clone(members), func(m string) bool { return m == gone })
				after := assign(left, partitions, want)
				checkShares("leave", left, after)
				for p, m := range want {
					if m != gone && after[p] != m {
						t.Errorf("%d members, %d partitions: %s left, and partition %d moved from %s to %s", n, partitions, gone, p, m, after[p])
					}
				}
			}
		}
	}
}

// Two instances snapshot the partitions, each the ones it owns and the
// ones it follows, into the shared bucket. Only owners prune: every kept
// snapshot stays whole, with every segment it names. (When followers
// pruned too, one deleted the segments of the owner's newer snapshot,
// which its own kept ones did not name.)
func TestFollowersDoNotPruneTheOwnersSnapshots(t *testing.T) {
	srv := testnats.Start(t, t.TempDir())
	snapshots := SnapshotOptions{Window: 8, Interval: 50 * time.Millisecond}
	a, b := startMemberWith(t, srv, "a", snapshots), startMemberWith(t, srv, "b", snapshots)
	waitSpread(t, 10*time.Second, a, b)
	ctx := context.Background()
	var tenants []int64
	for range 6 {
		tenants = append(tenants, newTenant(t, a.engine, "1000000"))
	}
	for _, tenant := range tenants {
		known(t, tenant, a, b)
	}
	for i := range 300 {
		via := []*member{a, b}[i%2]
		record(t, via.engine, tenants[i%len(tenants)], fmt.Sprintf("u%d", i), "1")
		if i%50 == 49 {
			time.Sleep(150 * time.Millisecond) // snapshots of both, in turn
		}
	}
	// Stopped first: a snapshot pruned while it is checked is not found.
	a.stop()
	b.stop()
	checks, err := VerifySnapshots(ctx, srv.Store, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) == 0 {
		t.Fatal("no snapshot was written")
	}
	for _, c := range checks {
		if c.Problem != "" {
			t.Errorf("snapshot %s at %d: %s", c.Name, c.Position, c.Problem)
		}
	}
}

// A batch too large to forward under the server's max_payload (NATS's
// default 1 MiB here) is refused at once as too large, the 413 a commit
// too large gets, not sent again until its deadline and answered 503.
func TestABatchTooLargeToForwardIsRefusedAtOnce(t *testing.T) {
	ns, err := server.NewServer(&server.Options{JetStream: true, StoreDir: t.TempDir(), DontListen: true, NoSigs: true, NoLog: true, MaxPayload: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	connect := func(name string) (*nats.Conn, error) {
		return nats.Connect("", nats.InProcessServer(ns), nats.Name(name))
	}
	a, b := startMemberOn(t, connect, "a", SnapshotOptions{}), startMemberOn(t, connect, "b", SnapshotOptions{})
	waitSpread(t, 10*time.Second, a, b)
	var tenant int64
	for tenant == 0 {
		id := newTenant(t, a.engine, "1000000")
		known(t, id, a, b)
		if !a.engine.OwnsTenant(id) {
			tenant = id
		}
	}
	events := make([]UsageEvent, UsageBatchMax)
	for i := range events {
		events[i] = usageEvent(fmt.Sprintf("big-%d", i), "1")[0]
		events[i].Description = strings.Repeat("d", domain.TextLengthMax)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err = a.engine.RecordUsage(ctx, tenant, events)
	if !errors.Is(err, ErrCommitTooLarge) {
		t.Fatalf("a batch of %d events of 1 KiB through another instance: %v, want too large", len(events), err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("refused after %s", took)
	}
	// A batch that fits is forwarded as usual.
	if _, err := a.engine.RecordUsage(ctx, tenant, events[:100]); err != nil {
		t.Fatalf("a batch of 100 through another instance: %v", err)
	}
}

// lossyCoordinator is the real cluster coordination, with faults on
// demand: loseRenewals > 0 makes that many renewals land in the bucket
// and then answer as if timed out, as when the answer is lost on the way;
// loseAcquires does the same to acquisitions.
type lossyCoordinator struct {
	*eventstore.Cluster
	loseRenewals, loseAcquires atomic.Int64
}

func (l *lossyCoordinator) Renew(ctx context.Context, partition int, instance string, rev uint64) (uint64, error) {
	next, err := l.Cluster.Renew(ctx, partition, instance, rev)
	if err == nil && l.loseRenewals.Add(-1) >= 0 {
		return 0, fmt.Errorf("%w: renew lease %d: context deadline exceeded (answer lost)", eventstore.ErrUnavailable, partition)
	}
	return next, err
}

func (l *lossyCoordinator) Acquire(ctx context.Context, partition int, instance string) (uint64, error) {
	rev, err := l.Cluster.Acquire(ctx, partition, instance)
	if err == nil && l.loseAcquires.Add(-1) >= 0 {
		return 0, fmt.Errorf("%w: acquire lease %d: context deadline exceeded (answer lost)", eventstore.ErrUnavailable, partition)
	}
	return rev, err
}

// A renewal or an acquisition that lands but whose answer is lost leaves
// the lease in this instance's name at a revision it does not know. The
// instance finds it there and goes on holding it, rather than dropping a
// lease it holds (every partition lost for a TTL) or leaving one in its
// name unowned until it expires.
func TestLeasesWhoseAnswersWereLostAreKept(t *testing.T) {
	srv := testnats.Start(t, t.TempDir())
	a := startMember(t, srv, "a")
	a.faults.loseAcquires.Store(3)
	waitSpread(t, 10*time.Second, a)
	a.faults.loseRenewals.Store(int64(2 * a.engine.store.Partitions()))
	time.Sleep(3 * leaseTTL)
	if n := a.counter.lost.Load(); n != 0 {
		t.Errorf("%d leases dropped after renewals whose answers were lost", n)
	}
	waitSpread(t, time.Second, a)
}

// The step after a key stops changing runs when it has stood still for a
// TTL, not at the next tick: keys already stale, which this instance may
// never take, do not make it step again at once.
func TestNextStepWhenAKeyGoesStale(t *testing.T) {
	t.Parallel()
	c := &cluster{ttl: 5 * time.Second, tick: time.Second}
	if _, ok := c.nextStale(); ok {
		t.Fatal("a step scheduled with no key seen")
	}
	now := time.Now()
	c.seen = map[string]seenRevision{
		"renewed": {rev: 9, at: now},
		"dying":   {rev: 3, at: now.Add(-4900 * time.Millisecond)},
		"dead":    {rev: 1, at: now.Add(-time.Minute)},
	}
	d, ok := c.nextStale()
	if !ok || d <= 0 || d > 101*time.Millisecond {
		t.Fatalf("next step in %s (%v), want within the 100 ms until \"dying\" is stale", d, ok)
	}
	delete(c.seen, "dying")
	if d, ok := c.nextStale(); !ok || d < 4900*time.Millisecond {
		t.Fatalf("next step in %s (%v), want when \"renewed\" would be stale", d, ok)
	}
}
