package clustertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/audit"
	"github.com/creditd/creditd/client"
	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/queries"
)

// leaseTTL is creditd's default (--lease-ttl). A shorter one would make
// takeovers quicker, but the whole test suite runs these three-node
// clusters under the race detector beside other packages on two cores,
// where renewals and appends take seconds: a 2 s lease then lapses under
// load that production never sees.
const leaseTTL = 5 * time.Second

// takeoverMax is how long a crashed owner's partitions may stay ownerless:
// its leases expire a TTL after their last renewal, the survivors see them
// free within a tick, and the rest is room for a loaded machine.
const takeoverMax = leaseTTL + 2*time.Second

// Bounds of the waits in these tests.
const (
	spreadWaitMax     = 30 * time.Second
	knownWaitMax      = 10 * time.Second
	projectionWaitMax = 60 * time.Second
	// logLinesMax bounds the instances' log lines kept for a failure.
	logLinesMax = 4000
)

// printLogEnv, set to anything, prints the instances' logs as they come.
const printLogEnv = "CREDITD_CLUSTERTEST_LOG"

// counter counts what an instance's writers and leases do.
type counter struct {
	committed, conflicted, retried, renewed, lost, forwarded, forwardErrs atomic.Int64
}

func (c *counter) Committed(n int) { c.committed.Add(int64(n)) }
func (c *counter) Conflicted()     { c.conflicted.Add(1) }
func (c *counter) Retried()        { c.retried.Add(1) }
func (c *counter) LeaseRenewed()   { c.renewed.Add(1) }
func (c *counter) LeaseLost(int)   { c.lost.Add(1) }
func (c *counter) Owned([]int)     {}
func (c *counter) Forwarded(_ time.Duration, err error) {
	c.forwarded.Add(1)
	if err != nil {
		c.forwardErrs.Add(1)
	}
}

// testLog keeps the instances' logs, at most logLinesMax lines, and prints
// them when the test fails: a failure under load is read from them. With
// printLogEnv set, it also prints every line as it comes, to watch a
// takeover as it happens.
type testLog struct {
	mu      sync.Mutex
	lines   []string
	dropped int
}

func newTestLog(t *testing.T) (*testLog, *slog.Logger) {
	l := &testLog{}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		t.Logf("instance logs (%d lines dropped):\n%s", l.dropped, strings.Join(l.lines, ""))
	})
	return l, slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) >= logLinesMax {
		l.dropped++
		return len(p), nil
	}
	l.lines = append(l.lines, string(p))
	if os.Getenv(printLogEnv) != "" {
		os.Stderr.Write(p)
	}
	return len(p), nil
}

// startLeased starts an instance that owns partitions by leases, with its
// logs in log.
func startLeased(t *testing.T, urls, name string, log *slog.Logger) *instance {
	t.Helper()
	return startInstanceOpts(t, urls, name, instanceOptions{replicas: 3, leaseTTL: leaseTTL, log: log.With("instance", name)})
}

// startThreeLeased starts a three-node cluster and three instances on it,
// "a", "b" and "c", owning the partitions by leases, and waits until the
// partitions are spread over them (took).
func startThreeLeased(t *testing.T) (urls string, log *slog.Logger, instances []*instance, took time.Duration) {
	t.Helper()
	_, log = newTestLog(t)
	_, urls = startCluster(t)
	instances = []*instance{startLeased(t, urls, "a", log), startLeased(t, urls, "b", log), startLeased(t, urls, "c", log)}
	took = waitSpread(t, spreadWaitMax, instances...)
	return urls, log, instances, took
}

// stopAll stops instances cleanly, all at once: a clean stop writes each
// partition's last snapshot, which takes a second or so, and a test ends
// sooner when they do so side by side.
func stopAll(instances ...*instance) {
	var wg sync.WaitGroup
	for _, in := range instances {
		wg.Go(in.stop)
	}
	wg.Wait()
}

// waitSpread waits until every partition has exactly one owner among
// instances and each owns its share, and returns the time it took.
func waitSpread(t *testing.T, wait time.Duration, instances ...*instance) time.Duration {
	t.Helper()
	start := time.Now()
	partitions := instances[0].store.Partitions()
	for {
		owners := map[int][]string{}
		balanced := true
		for _, in := range instances {
			o, _ := in.engine.Ownership()
			for _, p := range o.Owned {
				owners[p] = append(owners[p], in.name)
			}
			if n := len(o.Owned); n < partitions/len(instances) || n > (partitions+len(instances)-1)/len(instances) {
				balanced = false
			}
		}
		whole := len(owners) == partitions
		for _, names := range owners {
			if len(names) != 1 {
				whole = false
			}
		}
		if whole && balanced {
			return time.Since(start)
		}
		if time.Since(start) > wait {
			t.Fatalf("partitions not spread over %d instances in %s: owners %v", len(instances), wait, owners)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// owned returns the partitions an instance owns now.
func owned(in *instance) []int {
	o, _ := in.engine.Ownership()
	return o.Owned
}

// tenant is one tenant the producers write for, with its API key.
type tenant struct {
	id  int64
	key string
}

// createTenants creates tenants through in until every partition has at
// least perPartition of them, grants each grant credits, and waits until
// every instance knows them (their API keys authenticate everywhere).
func createTenants(t *testing.T, perPartition int, grant decimal.Decimal, via *instance, everywhere ...*instance) []tenant {
	t.Helper()
	ctx := context.Background()
	partitions := via.store.Partitions()
	count := map[int]int{}
	var tenants []tenant
	for len(count) < partitions || slices.ContainsFunc(mapValues(count), func(n int) bool { return n < perPartition }) {
		created, err := via.engine.CreateTenant(ctx, commands.CreateTenant{Name: fmt.Sprintf("t%d", len(tenants))})
		if err != nil {
			t.Fatal(err)
		}
		p := via.store.PartitionOf(created.Tenant.ID)
		if count[p] >= perPartition {
			continue // a tenant nobody writes for: harmless
		}
		count[p]++
		if _, err := via.engine.Grant(ctx, created.Tenant.ID, domain.DefaultCreditType,
			domain.Grant{GrantID: "g", Amount: grant, Source: domain.SourcePurchase}); err != nil {
			t.Fatal(err)
		}
		tenants = append(tenants, tenant{id: created.Tenant.ID, key: created.APIKey})
	}
	for _, tn := range tenants {
		known(t, tn.id, everywhere...)
	}
	return tenants
}

func mapValues(m map[int]int) []int {
	values := make([]int, 0, len(m))
	for _, v := range m {
		values = append(values, v)
	}
	return values
}

// known waits until every instance's registry holds the tenant: one
// created through another instance is known within about a second.
func known(t *testing.T, tenantID int64, instances ...*instance) {
	t.Helper()
	for _, in := range instances {
		for deadline := time.Now().Add(knownWaitMax); ; {
			if _, err := in.engine.Tenant(tenantID); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("instance %s does not know tenant %d", in.name, tenantID)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// router is the HTTP transport of the producers' clients: it sends each
// request to the next of the instances that are up, in turn (so a
// client's batches enter through every instance), and counts the answers
// by status. Requests it sends are never retried by it: the client
// retries, with the same ids, on another instance.
type router struct {
	transport *http.Transport

	mu        sync.Mutex
	up        []*instance
	next      int
	statuses  map[int]int
	netErrors []string
}

func newRouter(t *testing.T, up ...*instance) *router {
	r := &router{transport: &http.Transport{MaxIdleConnsPerHost: 16}, up: slices.Clone(up), statuses: map[int]int{}}
	t.Cleanup(r.transport.CloseIdleConnections)
	return r
}

// routerURL is the address the clients are configured with; the router
// replaces it by an instance's.
const routerURL = "http://creditd"

func (r *router) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	if len(r.up) == 0 {
		r.mu.Unlock()
		return nil, errors.New("no instance is up")
	}
	in := r.up[r.next%len(r.up)]
	r.next++
	r.mu.Unlock()
	target, err := url.Parse(in.http.URL)
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host, req.Host = target.Scheme, target.Host, target.Host
	resp, err := r.transport.RoundTrip(req)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.netErrors = append(r.netErrors, fmt.Sprintf("%s: %v", in.name, err))
		return nil, err
	}
	r.statuses[resp.StatusCode]++
	return resp, nil
}

// set replaces the instances requests go to.
func (r *router) set(up ...*instance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.up = slices.Clone(up)
}

// answers returns the count of answers by status and the network errors.
func (r *router) answers() (map[int]int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	statuses := make(map[int]int, len(r.statuses))
	for k, v := range r.statuses {
		statuses[k] = v
	}
	return statuses, slices.Clone(r.netErrors)
}

// Client settings of the producers: small batches, so each client's
// batches spread over the instances, and retries enough to outlast a
// takeover (a 503 or a refused connection is retried with the same ids).
// A producer pauses between its batches: the load is steady, not as
// much as the machine can take, so a test that runs beside others on two
// cores measures creditd and not the scheduler.
const (
	producerBatch        = 20
	producerPause        = 10 * time.Millisecond
	producerRetries      = 100
	producerRetryBackoff = 20 * time.Millisecond
)

func newClient(t *testing.T, r *router, key string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{HTTPURL: routerURL, APIKey: key, HTTPClient: &http.Client{Transport: r, Timeout: 30 * time.Second},
		BatchSize: producerBatch, Retries: producerRetries, RetryBackoff: producerRetryBackoff})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// startProducers starts perTenant producers for each tenant, each with
// its tenant's client on r, writing batches of producerBatch events of
// amount until it has written batches of them, or, with batches 0, until
// stop is closed. Acknowledged events go to acked; any error fails the
// test. The channel returned is closed when every producer has returned.
func startProducers(t *testing.T, r *router, tenants []tenant, perTenant, batches int, amount decimal.Decimal,
	stop <-chan struct{}, acked *ledger) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	clients := make([]*client.Client, len(tenants))
	for i, tn := range tenants {
		clients[i] = newClient(t, r, tn.key)
	}
	// Registered after the clients' own cleanups, so it runs before them:
	// a test that fails with producers still writing stops them first,
	// rather than wait in a client's Close for producers that never end.
	quit := make(chan struct{})
	t.Cleanup(func() {
		close(quit)
		cancel()
		wg.Wait()
	})
	for i, tn := range tenants {
		c := clients[i]
		for p := range perTenant {
			wg.Go(func() {
				for b := 0; batches == 0 || b < batches; b++ {
					select {
					case <-stop:
						return
					case <-quit:
						return
					case <-time.After(producerPause):
					}
					batch := usageBatch(fmt.Sprintf("p%d-b%d", p, b), producerBatch, amount)
					if _, err := c.Record(ctx, batch...); err != nil {
						if ctx.Err() != nil {
							return // the test ended
						}
						t.Errorf("tenant %d, producer %d, batch %d: %v", tn.id, p, b, err)
						return
					}
					acked.add(tn.id, batch)
				}
			})
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}

// usageBatch is n events of amount each, with ids unique to prefix.
func usageBatch(prefix string, n int, amount decimal.Decimal) []client.UsageEvent {
	batch := make([]client.UsageEvent, n)
	for i := range batch {
		batch[i] = client.UsageEvent{ID: fmt.Sprintf("%s-%d", prefix, i), Amount: amount}
	}
	return batch
}

// checkCounted waits until every instance's read models reach the log's
// last position, then asserts that each tenant's usage is exactly want on
// every instance's write model and read models, and that verify agrees
// with the read models everywhere.
func checkCounted(t *testing.T, want map[int64]decimal.Decimal, instances ...*instance) {
	t.Helper()
	ctx := context.Background()
	last, err := instances[0].store.LastPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range instances {
		wait, cancel := context.WithTimeout(ctx, projectionWaitMax)
		err := in.projector.WaitFor(wait, last)
		cancel()
		if err != nil {
			t.Fatalf("instance %s's read models did not reach %d: %v", in.name, last, err)
		}
		for id, used := range want {
			line, _, err := in.engine.Line(ctx, id, domain.DefaultCreditType)
			if err != nil {
				t.Fatalf("instance %s: line of tenant %d: %v", in.name, id, err)
			}
			if !line.Used.Equal(used) {
				t.Errorf("instance %s: tenant %d's write model used %s, acknowledged %s", in.name, id, line.Used, used)
			}
			balance, err := queries.New(in.db.Reader()).Balance(ctx, id, "", nil)
			if err != nil {
				t.Fatalf("instance %s: balance of tenant %d: %v", in.name, id, err)
			}
			if !balance.Total.Used.Equal(used) {
				t.Errorf("instance %s: tenant %d's read model used %s, acknowledged %s", in.name, id, balance.Total.Used, used)
			}
		}
		report, err := audit.Verify(ctx, in.store, in.db.Reader(), 0)
		if err != nil || !report.OK {
			t.Errorf("instance %s: verify %+v %v", in.name, report, err)
		}
	}
}

// ledger counts the usage acknowledged per tenant.
type ledger struct {
	mu   sync.Mutex
	used map[int64]decimal.Decimal
	// events counts the acknowledged events, all tenants together.
	events atomic.Int64
}

// newLedger starts every tenant at zero, so one whose writes all went
// missing is checked too.
func newLedger(tenants []tenant) *ledger {
	l := &ledger{used: map[int64]decimal.Decimal{}}
	for _, tn := range tenants {
		l.used[tn.id] = decimal.Zero
	}
	return l
}

func (l *ledger) add(tenantID int64, batch []client.UsageEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range batch {
		l.used[tenantID] = l.used[tenantID].Add(ev.Amount)
	}
	l.events.Add(int64(len(batch)))
}

func (l *ledger) snapshot() map[int64]decimal.Decimal {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[int64]decimal.Decimal, len(l.used))
	for k, v := range l.used {
		out[k] = v
	}
	return out
}

// waitAcked waits until at least n events are acknowledged, failing the
// test if the producers all stop first (an error) or it takes too long.
func waitAcked(t *testing.T, l *ledger, n int64, producing <-chan struct{}, wait time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(wait); l.events.Load() < n; {
		select {
		case <-producing:
			t.Fatalf("the producers stopped after %d acknowledged events, before %d", l.events.Load(), n)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d events acknowledged in %s, want %d", l.events.Load(), wait, n)
		}
	}
}
