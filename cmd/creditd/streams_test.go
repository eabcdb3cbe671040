package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/ingest"
)

// externalNATS starts nodes nats-servers with JetStream on loopback, routed
// into one cluster when nodes > 1, each with NATS's defaults otherwise (a
// 1 MiB max_payload): an external server as an operator may run it. It
// returns the client URLs, comma-separated, and the servers.
//
// A port is free when picked, not necessarily when the server binds it: a
// test of another package running alongside may take it first, and that
// server then never becomes ready, or the cluster never elects a leader. A
// start that fails is made again on fresh ports, at most three times.
func externalNATS(t *testing.T, nodes int) (string, []*server.Server) {
	t.Helper()
	return externalNATSOn(t, nodes, freeLoopbackPort)
}

func externalNATSOn(t *testing.T, nodes int, port func() (int, error)) (string, []*server.Server) {
	t.Helper()
	var err error
	for range 3 {
		urls, servers, startErr := tryExternalNATS(t, nodes, port)
		if startErr == nil {
			return urls, servers
		}
		err = startErr
		t.Logf("nats-server start, again on fresh ports: %v", err)
	}
	t.Fatal(err)
	return "", nil
}

// freeLoopbackPort is a TCP port on loopback that was free when picked.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// natsReadyWait bounds a server's start, and natsLeaderWait the cluster's
// election of a JetStream meta leader.
const (
	natsReadyWait  = 10 * time.Second
	natsLeaderWait = 20 * time.Second
)

func tryExternalNATS(t *testing.T, nodes int, port func() (int, error)) (string, []*server.Server, error) {
	t.Helper()
	ports := make([]int, 2*nodes)
	for i := range ports {
		p, err := port()
		if err != nil {
			return "", nil, err
		}
		ports[i] = p
	}
	routePorts := ports[nodes:]
	var routes []*url.URL
	for _, p := range routePorts {
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: "127.0.0.1:" + strconv.Itoa(p)})
	}
	var urls []string
	servers := make([]*server.Server, nodes)
	errs := make([]error, nodes)
	stop := func() {
		for _, ns := range servers {
			if ns != nil {
				ns.Shutdown()
				ns.WaitForShutdown()
			}
		}
	}
	var wg sync.WaitGroup
	for i := range servers {
		opts := &server.Options{ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: ports[i], JetStream: true,
			StoreDir: filepath.Join(t.TempDir(), "js"), SyncAlways: true, NoSigs: true, NoLog: true}
		if nodes > 1 {
			opts.Cluster = server.ClusterOpts{Name: "creditd", Host: "127.0.0.1", Port: routePorts[i]}
			opts.Routes = routes
		}
		ns, err := server.NewServer(opts)
		if err != nil {
			stop()
			return "", nil, err
		}
		servers[i] = ns
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", opts.Port))
		wg.Go(func() {
			ns.Start()
			if !ns.ReadyForConnections(natsReadyWait) {
				errs[i] = fmt.Errorf("nats-server %s not ready on port %d", opts.ServerName, opts.Port)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		stop()
		return "", nil, err
	}
	if nodes > 1 {
		// JetStream's meta group elects a leader before it places streams.
		for deadline := time.Now().Add(natsLeaderWait); ; time.Sleep(100 * time.Millisecond) {
			leader := false
			for _, ns := range servers {
				leader = leader || ns.JetStreamIsLeader()
			}
			if leader {
				break
			}
			if time.Now().After(deadline) {
				stop()
				return "", nil, errors.New("no JetStream meta leader")
			}
		}
	}
	t.Cleanup(stop)
	return strings.Join(urls, ","), servers, nil
}

// TestExternalNATSStartsAgainOnFreshPorts: a port taken between its pick
// and the server's bind (by a test of another package, in a full run)
// costs the harness one more start, not the test that asked for servers.
func TestExternalNATSStartsAgainOnFreshPorts(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	picks := 0
	port := func() (int, error) {
		picks++
		if picks == 2 {
			return taken.Addr().(*net.TCPAddr).Port, nil // n2's client port
		}
		return freeLoopbackPort()
	}
	natsURL, servers := externalNATSOn(t, 3, port)
	if len(servers) != 3 || picks != 12 {
		t.Fatalf("%d servers after %d port picks, want 3 after 12 (two starts)", len(servers), picks)
	}
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "HARNESS", Subjects: []string{"harness"}, Replicas: 3}); err != nil {
		t.Fatalf("a stream of three replicas: %v", err)
	}
	if got := replicasOf(t, natsURL, "HARNESS"); got != 3 {
		t.Fatalf("the stream has %d replicas, want 3", got)
	}
}

func replicasOf(t *testing.T, natsURL, name string) int {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stream, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return stream.CachedInfo().Config.Replicas
}

// TestServeReplicasDefaultToTheCluster runs `creditd serve --nats-url` on
// a three-node cluster without --replicas: the log and the ingest streams
// get three replicas (they once got one, the flag's old default).
func TestServeReplicasDefaultToTheCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and starts a three-node cluster")
	}
	natsURL, _ := externalNATS(t, 3)
	bin, dataDir, addr := newBinaryRun(t)
	stop := startServerArgs(t, bin, dataDir, addr, "--nats-url", natsURL, "--admin-token", "admin")
	defer stop()
	for _, name := range []string{eventstore.StreamName, ingest.StreamName, ingest.DeadStreamName} {
		if got := replicasOf(t, natsURL, name); got != eventstore.ReplicasWanted {
			t.Errorf("stream %s has %d replicas, want %d", name, got, eventstore.ReplicasWanted)
		}
	}
}

// TestServeOnADefaultNATSServerSplitsCommits runs `creditd serve` on an
// external server with NATS's default 1 MiB max_payload. Concurrent usage
// requests of 2.4 MB in all are every one recorded (a group commit over
// 1 MiB once failed each request in it with 503); one request of more than
// 1 MiB is a 413 problem, and nothing of it is stored.
func TestServeOnADefaultNATSServerSplitsCommits(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	natsURL, _ := externalNATS(t, 1)
	bin, dataDir, addr := newBinaryRun(t)
	base := "http://" + addr
	stop := startServerArgs(t, bin, dataDir, addr, "--nats-url", natsURL, "--admin-token", "admin")
	defer stop()
	if got := replicasOf(t, natsURL, eventstore.StreamName); got != 1 {
		t.Fatalf("one server: %d replicas", got)
	}
	var tenant testTenant
	post(t, base+"/v1/tenants", "admin", `{"name":"acme"}`, http.StatusCreated, &tenant)
	post(t, base+"/v1/grants", tenant.APIKey, `{"grant_id":"g1","amount":"1000000"}`, http.StatusCreated, nil)
	description := strings.Repeat("d", 1000)
	batch := func(prefix string, n int) string {
		events := make([]string, n)
		for i := range events {
			events[i] = fmt.Sprintf(`{"id":"%s-%d","amount":"1","description":"%s"}`, prefix, i, description)
		}
		return `{"events":[` + strings.Join(events, ",") + `]}`
	}
	const requests, eventsEach = 6, 400
	var wg sync.WaitGroup
	for r := range requests {
		wg.Go(func() {
			// Not post: t.Fatal belongs to the test's goroutine.
			req, _ := http.NewRequest(http.MethodPost, base+"/v1/usage", strings.NewReader(batch(fmt.Sprintf("r%d", r), eventsEach)))
			req.Header.Set("Authorization", "Bearer "+tenant.APIKey)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("request %d: %v", r, err)
				return
			}
			defer resp.Body.Close()
			var res struct{ Accepted int }
			json.NewDecoder(resp.Body).Decode(&res)
			if resp.StatusCode != http.StatusOK || res.Accepted != eventsEach {
				t.Errorf("request %d: %d with %d accepted, want 200 with %d", r, resp.StatusCode, res.Accepted, eventsEach)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	var refused struct{ Type string }
	post(t, base+"/v1/usage", tenant.APIKey, batch("huge", 1000), http.StatusRequestEntityTooLarge, &refused)
	if !strings.HasSuffix(refused.Type, "request-too-large") {
		t.Fatalf("problem type %q", refused.Type)
	}
	// The refused ids were not stored: the same ids in small requests are
	// recorded, not duplicates.
	var again struct{ Accepted int }
	post(t, base+"/v1/usage", tenant.APIKey, batch("huge", 10), http.StatusOK, &again)
	if again.Accepted != 10 {
		t.Fatalf("after the 413: %+v, want the ids still unused", again)
	}
	var position struct{ Position uint64 }
	post(t, base+"/v1/usage", tenant.APIKey, batch("last", 1), http.StatusOK, &position)
	balance := get(t, fmt.Sprintf("%s/v1/balance?min_position=%d", base, position.Position), tenant.APIKey)
	if got, want := fmt.Sprint(balance["total"].(map[string]any)["used"]), strconv.Itoa(requests*eventsEach+10+1); got != want {
		t.Fatalf("used %s, want %s", got, want)
	}
}

// TestServeRefusesAnUnsafeLogStream: a CREDITS stream an operator made in
// memory on the external server stops creditd at start, with the reason.
func TestServeRefusesAnUnsafeLogStream(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	natsURL, _ := externalNATS(t, 1)
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: eventstore.StreamName, Subjects: []string{"credits.events.>"},
		Storage: jetstream.MemoryStorage, DenyDelete: true, DenyPurge: true, Metadata: map[string]string{"creditd_partitions": "4"}}); err != nil {
		t.Fatal(err)
	}
	bin, dataDir, addr := newBinaryRun(t)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--http-addr", addr, "--nats-url", natsURL, "--admin-token", "admin")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("creditd served on a log stream in memory")
	}
	if !strings.Contains(string(out), "stream CREDITS: storage is memory") {
		t.Fatalf("the refusal does not name the stream and its storage:\n%s", out)
	}
}

func TestReplicaAndDeadLetterFlags(t *testing.T) {
	t.Setenv("CREDITD_REPLICAS", "")
	cfg, err := parseServeFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.replicas != 0 || cfg.deadLetters != (ingest.DeadLetterLimits{MaxAge: ingest.DeadLetterMaxAgeDefault, MaxBytes: ingest.DeadLetterMaxBytesDefault}) {
		t.Fatalf("defaults: replicas %d, dead letters %+v; want 0 (choose) and the bounded defaults", cfg.replicas, cfg.deadLetters)
	}
	if cfg, err := parseServeFlags([]string{"--dead-letter-max-age", "0", "--dead-letter-max-bytes", "0"}); err != nil || cfg.deadLetters != (ingest.DeadLetterLimits{}) {
		t.Fatalf("no dead-letter limits: %+v %v", cfg.deadLetters, err)
	}
	if _, err := parseServeFlags([]string{"--nats-url", "nats://n1:4222", "--replicas", "3"}); err != nil {
		t.Fatalf("three replicas on a cluster: %v", err)
	}
	for _, args := range [][]string{
		{"--replicas", "3"}, // the embedded server keeps one copy
		{"--nats-url", "nats://n1:4222", "--replicas", "-1"},
		{"--nats-url", "nats://n1:4222", "--replicas", "7"},
		{"--dead-letter-max-age", "-1h"},
		{"--dead-letter-max-bytes", "-5"},
	} {
		if _, err := parseServeFlags(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
