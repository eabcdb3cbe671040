package clustertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/audit"
	"github.com/creditd/creditd/client"
	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/projections"
	"github.com/creditd/creditd/queries"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type node struct {
	opts *server.Options
	srv  *server.Server
}

func (n *node) start(t *testing.T) {
	t.Helper()
	if err := n.tryStart(); err != nil {
		t.Fatal(err)
	}
}

// tryStart starts the node and reports why it does not accept connections
// within 10 s (then it is shut down again).
func (n *node) tryStart() error {
	srv, err := server.NewServer(n.opts.Clone())
	if err != nil {
		return err
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("node %s not ready", n.opts.ServerName)
	}
	n.srv = srv
	return nil
}

func (n *node) stop() {
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// startCluster starts three JetStream nodes on loopback, each fsyncing
// every write, routed to each other.
//
// freePort's port is free when picked, not necessarily when the node binds
// it: a test of another package running alongside may take it first, and
// the node then never becomes ready. A start that fails is made again on
// fresh ports, at most three times.
func startCluster(t *testing.T) ([]*node, string) {
	t.Helper()
	var err error
	for range 3 {
		nodes, urls, startErr := tryStartCluster(t)
		if startErr == nil {
			return nodes, urls
		}
		err = startErr
		t.Logf("cluster start, again on fresh ports: %v", err)
	}
	t.Fatal(err)
	return nil, ""
}

func tryStartCluster(t *testing.T) ([]*node, string, error) {
	t.Helper()
	nodes, urls := clusterNodes(t)
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Go(func() { errs[i] = n.tryStart() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		stopNodes(nodes)
		return nil, "", err
	}
	t.Cleanup(func() { stopNodes(nodes) })
	return nodes, urls, nil
}

// stopNodes stops the nodes that run.
func stopNodes(nodes []*node) {
	for _, n := range nodes {
		if n.srv != nil && n.srv.Running() {
			n.stop()
		}
	}
}

// clusterNodes configures three JetStream nodes on loopback, each fsyncing
// every write, each routed to all three, without starting them.
func clusterNodes(t *testing.T) ([]*node, string) {
	t.Helper()
	clusterPorts := []int{freePort(t), freePort(t), freePort(t)}
	var routes []*url.URL
	for _, p := range clusterPorts {
		u, _ := url.Parse(fmt.Sprintf("nats-route://127.0.0.1:%d", p))
		routes = append(routes, u)
	}
	var nodes []*node
	var urls []string
	for i := range 3 {
		port := freePort(t)
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", port))
		n := &node{opts: &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: filepath.Join(t.TempDir(), "js"),
			SyncAlways: true, MaxPayload: eventstore.MaxPayloadBytes, NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "creditd", Host: "127.0.0.1", Port: clusterPorts[i]}, Routes: routes,
		}}
		nodes = append(nodes, n)
	}
	return nodes, strings.Join(urls, ",")
}

// Bounds of an instance's start.
const (
	// openTryMax bounds one try at opening the stream and reading it.
	openTryMax = 2 * time.Second
	// bucketWaitMax bounds one try at listing the snapshot bucket.
	bucketWaitMax = 2 * time.Second
	// engineStartWaitMax bounds the engine's load of the log and snapshots.
	engineStartWaitMax = time.Minute
)

// instance is one creditd: its own engine, read models and HTTP server on
// the shared cluster, over NATS connections of its own (so a crash can cut
// them all at once).
type instance struct {
	name      string
	store     *eventstore.Store
	engine    *commands.Engine
	db        *projections.DB
	projector *projections.Projector
	http      *httptest.Server
	// counter hears what the engine's writers and leases do.
	counter *counter
	conns   []*nats.Conn

	ended   sync.Once
	release func(crashed bool)
}

// instanceOptions are what differs between the instances the tests start.
type instanceOptions struct {
	// replicas of the log stream (and of the lease bucket).
	replicas int
	// leaseTTL, when set, makes the instance own partitions by leases
	// (commands.ClusterOptions) with this TTL; zero: it writes every
	// partition, alone.
	leaseTTL time.Duration
	// log receives the engine's logs; nil discards them.
	log *slog.Logger
}

// stop is a clean stop, as on SIGTERM: the HTTP server finishes its
// requests, the engine hands its partitions over, then the connections
// close. Stopping twice, or after a crash, does nothing.
func (in *instance) stop() { in.ended.Do(func() { in.release(false) }) }

// crash cuts the instance off at once, as kill -9 would: every NATS
// connection closes together, with no handover, no lease release and no
// goodbye, and its HTTP clients are disconnected. Its engine and read
// models are closed afterwards only to free the test's goroutines and
// files; they can reach nothing by then.
func (in *instance) crash() { in.ended.Do(func() { in.release(true) }) }

func connect(t *testing.T, urls, name string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(urls, nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

func startInstance(t *testing.T, urls, name string) *instance {
	return startInstanceWith(t, urls, name, 3)
}

func startInstanceWith(t *testing.T, urls, name string, replicas int) *instance {
	return startInstanceOpts(t, urls, name, instanceOptions{replicas: replicas})
}

func startInstanceOpts(t *testing.T, urls, name string, opts instanceOptions) *instance {
	t.Helper()
	ctx := context.Background()
	in := &instance{name: name, counter: &counter{}}
	dial := func(suffix string) *nats.Conn {
		nc := connect(t, urls, name+suffix)
		in.conns = append(in.conns, nc)
		return nc
	}
	nc := dial("")
	var clusterConn *nats.Conn
	if opts.leaseTTL > 0 {
		clusterConn = dial("-cluster")
	}
	var store *eventstore.Store
	var coordinator *eventstore.Cluster
	var err error
	opening := time.Now()
	var tries []string
	for deadline := time.Now().Add(30 * time.Second); ; {
		// The stream can exist before its replicas have elected a leader,
		// which answers reads: wait for a read too. Each try is short: on
		// a cluster started moments ago, the first requests go unanswered
		// until the meta leader is elected, and a retry then is answered
		// at once.
		attempt, cancel := context.WithTimeout(ctx, openTryMax)
		if store, err = eventstore.Open(attempt, nc, eventstore.Config{Replicas: opts.replicas}); err == nil {
			_, err = store.LastSeq(attempt, eventstore.RegistrySubject)
		}
		cancel()
		if err == nil {
			// The same holds for the snapshot bucket, which the engine lists
			// first, with no deadline: on a cluster started moments ago that
			// list can wait for minutes. Here it waits at most
			// bucketWaitMax, and a failed try is made again on a store
			// opened anew (a store keeps the outcome of its first use of
			// the bucket).
			attempt, cancel := context.WithTimeout(ctx, bucketWaitMax)
			_, err = store.Objects(attempt, "")
			cancel()
		}
		if err == nil && clusterConn != nil && coordinator == nil {
			attempt, cancel := context.WithTimeout(ctx, openTryMax)
			coordinator, err = eventstore.OpenCluster(attempt, clusterConn, opts.replicas, opts.leaseTTL)
			cancel()
		}
		if err == nil || time.Now().After(deadline) {
			break
		}
		tries = append(tries, err.Error())
		time.Sleep(200 * time.Millisecond) // the cluster is still electing
	}
	if err != nil {
		t.Fatalf("%s: open store: %v", name, err)
	}
	if len(tries) > 0 {
		t.Logf("%s: store ready after %s; failed tries: %q", name, time.Since(opening), tries)
	}
	engineOpts := commands.Options{CheckInvariants: true, Observer: in.counter, Logger: opts.log}
	if coordinator != nil {
		engineOpts.Cluster = &commands.ClusterOptions{Coordinator: coordinator, Instance: name, Observer: in.counter}
	}
	// A start that hangs fails the test, naming where, rather than
	// running into the package's timeout.
	starting, cancelStart := context.WithTimeout(ctx, engineStartWaitMax)
	engine, err := commands.New(starting, store, engineOpts)
	cancelStart()
	if err != nil {
		t.Fatalf("%s: engine start: %v", name, err)
	}
	db, err := projections.Open(filepath.Join(t.TempDir(), "rm.db"))
	if err != nil {
		t.Fatal(err)
	}
	projector, _ := projections.NewProjector(ctx, db, nil)
	consumeCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	projectionConn := dial("-projection")
	go func() {
		done <- projections.Consume(consumeCtx, projectionConn, projector, store, nil)
	}()
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Writer: engine, Reader: queries.New(db.Reader()), Projection: projector,
		LogPosition: store.LastPosition, AdminToken: "admin"}))
	in.store, in.engine, in.db, in.projector, in.http = store, engine, db, projector, srv
	in.release = func(crashed bool) {
		if crashed {
			for _, c := range in.conns {
				c.Close()
			}
			srv.CloseClientConnections()
			// The rest frees the test's goroutines and files, and takes a
			// while (the engine's close waits on a store it cannot reach):
			// done in the background, so that what the test times from the
			// crash is the others' takeover, not this close.
			closed := make(chan struct{})
			go func() {
				defer close(closed)
				srv.Close()
				cancel()
				<-done
				engine.Close()
				db.Close()
			}()
			t.Cleanup(func() { <-closed })
			return
		}
		srv.Close()
		cancel()
		<-done
		engine.Close()
		db.Close()
		for _, c := range in.conns {
			c.Close()
		}
	}
	t.Cleanup(in.stop)
	return in
}

// TestClusterSurvivesLosingTheStreamLeader writes idempotent usage through
// two creditd instances while the CREDITS stream's leader node is stopped
// and later restarted: every acknowledged event counts exactly once, both
// instances' balances agree with verify, and clients saw only retryable
// errors (their retries succeeded).
func TestClusterSurvivesLosingTheStreamLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	nodes, urls := startCluster(t)
	a := startInstance(t, urls, "a")
	b := startInstance(t, urls, "b")
	ctx := context.Background()
	created, err := a.engine.CreateTenant(ctx, commands.CreateTenant{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.engine.Grant(ctx, created.Tenant.ID, "default", newGrant()); err != nil {
		t.Fatal(err)
	}
	clients := make([]*client.Client, 2)
	for i, in := range []*instance{a, b} {
		c, err := client.New(client.Config{HTTPURL: in.http.URL, APIKey: created.APIKey, BatchSize: 50, Retries: 200, RetryBackoff: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}

	const producers, perProducer = 6, 600
	var acked atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Go(func() {
			for i := 0; i < perProducer; i += 20 {
				batch := make([]client.UsageEvent, 20)
				for j := range batch {
					batch[j] = client.UsageEvent{ID: fmt.Sprintf("p%d-%d", p, i+j), Amount: decimal.RequireFromString("0.5")}
				}
				// Each batch goes to one instance, alternating.
				if _, err := clients[(p+i/20)%2].Record(ctx, batch...); err != nil {
					errs <- fmt.Errorf("producer %d: %w", p, err)
					return
				}
				acked.Add(20)
			}
		})
	}
	// Wait for a quarter of the events to be acknowledged before the fault,
	// but never past the producers: if they all stopped early (an error),
	// waiting on the count would hang the test instead of reporting it.
	producing := make(chan struct{})
	go func() { wg.Wait(); close(producing) }()
	for deadline := time.Now().Add(60 * time.Second); acked.Load() < producers*perProducer/4; {
		select {
		case err := <-errs:
			t.Fatalf("before the fault: %v", err)
		case <-producing:
			t.Fatalf("the producers stopped after %d acknowledged events, before the fault", acked.Load())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d events acknowledged in 60 s, before the fault", acked.Load())
		}
	}
	js, _ := jetstream.New(connect(t, urls, "probe"))
	stream, err := js.Stream(ctx, eventstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil || info.Cluster == nil {
		t.Fatalf("stream info: %v", err)
	}
	var leader *node
	for _, n := range nodes {
		if n.opts.ServerName == info.Cluster.Leader {
			leader = n
		}
	}
	if leader == nil {
		t.Fatalf("no node is the leader %q", info.Cluster.Leader)
	}
	t.Logf("stopping the stream leader %s after %d acknowledged events", leader.opts.ServerName, acked.Load())
	leader.stop()
	time.Sleep(3 * time.Second)
	t.Logf("restarting %s after %d acknowledged events", leader.opts.ServerName, acked.Load())
	leader.start(t)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a client saw a non-retryable error or gave up: %v", err)
	}

	want := decimal.RequireFromString("0.5").Mul(decimal.NewFromInt(producers * perProducer))
	last, err := a.store.LastPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]*instance{"a": a, "b": b} {
		wait, cancel := context.WithTimeout(ctx, 60*time.Second)
		err := in.projector.WaitFor(wait, last)
		cancel()
		if err != nil {
			t.Fatalf("instance %s's read models did not reach %d: %v", name, last, err)
		}
		line, _, err := in.engine.Line(ctx, created.Tenant.ID, "default")
		if err != nil {
			t.Fatal(err)
		}
		if !line.Used.Equal(want) {
			t.Fatalf("instance %s: write model used %s, want %s", name, line.Used, want)
		}
		report, err := audit.Verify(ctx, in.store, in.db.Reader(), 0)
		if err != nil || !report.OK {
			t.Fatalf("instance %s: verify %+v %v", name, report, err)
		}
		balance, err := queries.New(in.db.Reader()).Balance(ctx, created.Tenant.ID, "", nil)
		if err != nil || !balance.Total.Used.Equal(want) {
			t.Fatalf("instance %s: read model used %s (%v), want %s", name, balance.Total.Used, err, want)
		}
	}

}
