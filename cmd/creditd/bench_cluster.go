package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/client"
	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/httpapi"
)

// clusterNodes is the size of the cluster `creditd bench cluster` starts:
// the three nodes a production cluster has, so the streams and the lease
// bucket keep three replicas as they would there.
const clusterNodes = 3

type benchClusterConfig struct {
	instances, events, tenants, batch, producers, partitions int
	leaseTTL                                                 time.Duration
}

// benchClusterResult is the JSON line `creditd bench cluster` prints.
type benchClusterResult struct {
	Instances  int     `json:"instances"`
	Nodes      int     `json:"nodes"`
	Partitions int     `json:"partitions"`
	Events     int     `json:"events"`
	EventsPerS float64 `json:"events_per_s"`
	// Conflicts are appends refused by the fence, over every instance;
	// Unavailable the 503 answers producers got (and retried).
	Conflicts   int64 `json:"conflicts"`
	Unavailable int64 `json:"unavailable"`
	// Forwarded are the writes an instance sent to another's partition,
	// with the time from sending to the owner's answer.
	Forwarded        int64   `json:"forwarded"`
	ForwardP50Ms     float64 `json:"forward_p50_ms"`
	ForwardP99Ms     float64 `json:"forward_p99_ms"`
	SpreadSeconds    float64 `json:"spread_s"`
	VerifiedUsedEach string  `json:"verified_used_per_tenant"`
}

// benchCluster measures writes through several instances sharing one log
// on a three-node JetStream cluster, all in this process on loopback:
// throughput, append conflicts (0 while leases hold) and the latency of
// forwarded writes. Run it with --instances 1 and 3 to compare.
func benchCluster(args []string) error {
	var cfg benchClusterConfig
	fs := flag.NewFlagSet("bench cluster", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: creditd bench cluster [flags]: writes through several instances on a three-node cluster, in this process on loopback")
		fs.PrintDefaults()
	}
	fs.IntVar(&cfg.instances, "instances", 3, "creditd instances sharing the log")
	fs.IntVar(&cfg.events, "events", 100_000, "usage events")
	fs.IntVar(&cfg.tenants, "tenants", 1000, "tenants the events are spread over")
	fs.IntVar(&cfg.batch, "batch", 100, "events per batch")
	fs.IntVar(&cfg.producers, "producers", 64, "concurrent producers, each sending to the instances in turn")
	fs.IntVar(&cfg.partitions, "partitions", eventstore.PartitionsDefault, "write partitions of the new stream")
	fs.DurationVar(&cfg.leaseTTL, "lease-ttl", leaseTTLDefault, "partition lease TTL (as serve --lease-ttl)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if cfg.instances < 1 || cfg.instances > 16 || cfg.tenants < 1 || cfg.events < cfg.tenants || cfg.batch < 1 || cfg.batch > client.BatchSizeMax || cfg.producers < 1 || cfg.partitions < 1 {
		return errors.New("bench cluster: need 1 ≤ instances ≤ 16, events ≥ tenants ≥ 1, 1 ≤ batch ≤ 1000, producers ≥ 1, partitions ≥ 1")
	}
	dir, err := os.MkdirTemp("", "creditd-bench-cluster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	res, err := runBenchCluster(context.Background(), cfg, dir)
	if err != nil {
		return err
	}
	printBenchClusterTable(os.Stdout, res)
	return json.NewEncoder(os.Stdout).Encode(res)
}

// benchObserver counts what one instance's writers and leases do.
type benchObserver struct {
	conflicts atomic.Int64
	mu        sync.Mutex
	forwards  []time.Duration
}

func (o *benchObserver) Committed(int) {}
func (o *benchObserver) Conflicted()   { o.conflicts.Add(1) }
func (o *benchObserver) Retried()      {}
func (o *benchObserver) Owned([]int)   {}
func (o *benchObserver) LeaseRenewed() {}
func (o *benchObserver) LeaseLost(int) {}
func (o *benchObserver) Forwarded(d time.Duration, err error) {
	if err != nil {
		return
	}
	o.mu.Lock()
	if len(o.forwards) < forwardSamplesMax {
		o.forwards = append(o.forwards, d)
	}
	o.mu.Unlock()
}

// forwardSamplesMax bounds the latencies kept per instance.
const forwardSamplesMax = 1 << 20

func runBenchCluster(ctx context.Context, cfg benchClusterConfig, dir string) (benchClusterResult, error) {
	res := benchClusterResult{Instances: cfg.instances, Nodes: clusterNodes, Partitions: cfg.partitions, Events: cfg.events}
	// A port picked free may be taken before its node binds it: a start
	// that fails is made again on fresh ports.
	var urls string
	var stopNodes func()
	var err error
	for attempt := range 3 {
		if urls, stopNodes, err = startBenchNodes(filepath.Join(dir, fmt.Sprintf("nodes-%d", attempt))); err == nil {
			break
		}
	}
	if err != nil {
		return res, err
	}
	defer stopNodes()

	type instance struct {
		engine   *commands.Engine
		observer *benchObserver
		base     string
		close    func()
	}
	var instances []*instance
	defer func() {
		for _, in := range slices.Backward(instances) {
			in.close()
		}
	}()
	for i := range cfg.instances {
		var conns []*nats.Conn
		dial := func(name string) (*nats.Conn, error) {
			nc, err := nats.Connect(urls, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1))
			if err == nil {
				conns = append(conns, nc)
			}
			return nc, err
		}
		closeConns := func() {
			for _, nc := range conns {
				nc.Close()
			}
		}
		nc, err := dial(fmt.Sprintf("bench-%d", i))
		if err != nil {
			return res, err
		}
		var store *eventstore.Store
		// A new cluster elects its stream leaders for a moment.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if store, err = eventstore.Open(ctx, nc, eventstore.Config{Replicas: clusterNodes, Partitions: cfg.partitions}); err == nil {
				_, err = store.LastSeq(ctx, eventstore.RegistrySubject)
			}
			if err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			closeConns()
			return res, fmt.Errorf("instance %d: open the log: %w", i, err)
		}
		cnc, err := dial(fmt.Sprintf("bench-%d-cluster", i))
		if err != nil {
			closeConns()
			return res, err
		}
		co, err := eventstore.OpenCluster(ctx, cnc, clusterNodes, cfg.leaseTTL)
		if err != nil {
			closeConns()
			return res, err
		}
		obs := &benchObserver{}
		engine, err := commands.New(ctx, store, commands.Options{Observer: obs,
			Snapshots: commands.SnapshotOptions{Dir: filepath.Join(dir, fmt.Sprintf("index-%d", i))},
			Cluster:   &commands.ClusterOptions{Coordinator: co, Instance: fmt.Sprintf("bench-%d", i), Observer: obs}})
		if err != nil {
			closeConns()
			return res, err
		}
		listener, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			engine.Close()
			closeConns()
			return res, err
		}
		srv := &http.Server{Handler: httpapi.New(httpapi.Config{Writer: engine, AdminToken: "bench"}), ReadHeaderTimeout: readHeaderTimeout}
		go srv.Serve(listener)
		instances = append(instances, &instance{engine: engine, observer: obs, base: "http://" + listener.Addr().String(), close: func() {
			srv.Close()
			engine.Close()
			closeConns()
		}})
	}
	spreadStart := time.Now()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		owned := map[int]int{}
		for _, in := range instances {
			o, _ := in.engine.Ownership()
			for _, p := range o.Owned {
				owned[p]++
			}
		}
		balanced := true
		for _, in := range instances {
			o, _ := in.engine.Ownership()
			if n := len(o.Owned); n < cfg.partitions/cfg.instances || n > (cfg.partitions+cfg.instances-1)/cfg.instances {
				balanced = false
			}
		}
		if balanced && len(owned) == cfg.partitions && !slices.ContainsFunc(slices.Collect(mapValues(owned)), func(n int) bool { return n != 1 }) {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("partitions not owned once each in 30 s: %v", owned)
		}
	}
	res.SpreadSeconds = time.Since(spreadStart).Seconds()

	tenants := make([]benchTenant, cfg.tenants)
	for i := range tenants {
		created, err := instances[0].engine.CreateTenant(ctx, commands.CreateTenant{Name: fmt.Sprintf("bench-%d", i)})
		if err != nil {
			return res, err
		}
		if _, err := instances[0].engine.Grant(ctx, created.Tenant.ID, domain.DefaultCreditType, newBenchGrant()); err != nil {
			return res, err
		}
		tenants[i] = benchTenant{id: created.Tenant.ID, key: created.APIKey}
	}
	// Keys issued through one instance are known to the others at their
	// first use (the registry reads again after a miss): each instance
	// meets every key once before the clock starts, so the run measures
	// writes, not that warm-up.
	for _, in := range instances {
		for _, t := range tenants {
			if _, ok := in.engine.Authenticate(t.key); !ok {
				return res, fmt.Errorf("tenant %d's key is not known to an instance", t.id)
			}
		}
	}

	// Latencies are the timed run's, not the set-up's grants.
	for _, in := range instances {
		in.observer.mu.Lock()
		in.observer.forwards = in.observer.forwards[:0]
		in.observer.mu.Unlock()
	}

	perTenant := cfg.events / len(tenants)
	batches := (perTenant + cfg.batch - 1) / cfg.batch
	httpClient := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.producers}}
	var next, unavailable atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	started := time.Now()
	for range cfg.producers {
		wg.Go(func() {
			for {
				job := int(next.Add(1) - 1)
				if job >= batches*len(tenants) {
					return
				}
				ti, b := job%len(tenants), job/len(tenants)
				var events []string
				for e := b * cfg.batch; e < min((b+1)*cfg.batch, perTenant); e++ {
					events = append(events, fmt.Sprintf(`{"id":"c-%d-%d","amount":"0.001"}`, tenants[ti].id, e))
				}
				body := `{"events":[` + strings.Join(events, ",") + `]}`
				for attempt := 0; ; attempt++ {
					status, err := benchPost(httpClient, instances[(job+attempt)%len(instances)].base+"/v1/usage", tenants[ti].key, body)
					if err == nil && status == http.StatusOK {
						break
					}
					if status == http.StatusServiceUnavailable {
						unavailable.Add(1)
					}
					if attempt >= 100 || (err == nil && status != http.StatusServiceUnavailable) {
						failed.Store(fmt.Errorf("batch %d of tenant %d: status %d %v", b, tenants[ti].id, status, err))
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(started)
	if err, ok := failed.Load().(error); ok {
		return res, err
	}
	res.EventsPerS = float64(perTenant*len(tenants)) / elapsed.Seconds()
	res.Unavailable = unavailable.Load()
	var forwards []time.Duration
	for _, in := range instances {
		res.Conflicts += in.observer.conflicts.Load()
		in.observer.mu.Lock()
		forwards = append(forwards, in.observer.forwards...)
		in.observer.mu.Unlock()
	}
	res.Forwarded = int64(len(forwards))
	if len(forwards) > 0 {
		slices.Sort(forwards)
		res.ForwardP50Ms = float64(forwards[len(forwards)/2]) / float64(time.Millisecond)
		res.ForwardP99Ms = float64(forwards[len(forwards)*99/100]) / float64(time.Millisecond)
	}
	// Every event counted once, on every instance's write model.
	want := decimal.RequireFromString("0.001").Mul(decimal.NewFromInt(int64(perTenant)))
	for _, in := range instances {
		for _, t := range []benchTenant{tenants[0], tenants[len(tenants)-1]} {
			line, _, err := in.engine.Line(ctx, t.id, domain.DefaultCreditType)
			if err != nil {
				return res, err
			}
			if !line.Used.Equal(want) {
				return res, fmt.Errorf("tenant %d used %s, want %s", t.id, line.Used, want)
			}
		}
	}
	res.VerifiedUsedEach = want.String()
	return res, nil
}

func mapValues(m map[int]int) func(func(int) bool) {
	return func(yield func(int) bool) {
		for _, v := range m {
			if !yield(v) {
				return
			}
		}
	}
}

func benchPost(c *http.Client, url, key, body string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// startBenchNodes starts a three-node JetStream cluster on loopback, each
// node fsyncing every write, and returns its client URLs.
func startBenchNodes(dir string) (string, func(), error) {
	ports := make([]int, 2*clusterNodes)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	var routes []*url.URL
	for i := range clusterNodes {
		u, _ := url.Parse(fmt.Sprintf("nats-route://127.0.0.1:%d", ports[clusterNodes+i]))
		routes = append(routes, u)
	}
	var nodes []*server.Server
	stop := func() {
		for _, n := range nodes {
			n.Shutdown()
			n.WaitForShutdown()
		}
	}
	var urls []string
	for i := range clusterNodes {
		n, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: ports[i], JetStream: true,
			StoreDir: filepath.Join(dir, fmt.Sprintf("n%d", i+1)), SyncAlways: true, MaxPayload: eventstore.MaxPayloadBytes, NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "bench", Host: "127.0.0.1", Port: ports[clusterNodes+i]}, Routes: routes,
		})
		if err != nil {
			stop()
			return "", nil, err
		}
		n.Start()
		nodes = append(nodes, n)
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	for _, n := range nodes {
		if !n.ReadyForConnections(10 * time.Second) {
			stop()
			return "", nil, errors.New("a cluster node did not start in 10 s (a port taken meanwhile?)")
		}
	}
	return strings.Join(urls, ","), stop, nil
}

func printBenchClusterTable(w io.Writer, r benchClusterResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "instances\t%d on %d NATS nodes, %d partitions\n", r.Instances, r.Nodes, r.Partitions)
	fmt.Fprintf(tw, "writes\t%.0f events/s (%d events)\n", r.EventsPerS, r.Events)
	fmt.Fprintf(tw, "append conflicts\t%d\n", r.Conflicts)
	fmt.Fprintf(tw, "503 answers\t%d\n", r.Unavailable)
	fmt.Fprintf(tw, "forwarded writes\t%d, p50 %.1f ms, p99 %.1f ms\n", r.Forwarded, r.ForwardP50Ms, r.ForwardP99Ms)
	fmt.Fprintf(tw, "partitions spread in\t%.1f s\n", r.SpreadSeconds)
	tw.Flush()
}
