package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/client"
	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/ingest"
	"github.com/creditd/creditd/projections"
	"github.com/creditd/creditd/queries"
)

type benchConfig struct {
	events, tenants, lines, batch, producers, payload int
	warmup                                            int
	partitions                                        int
	sync                                              string
	cpuProfile                                        string
	memProfile                                        string
	memoryLimit                                       memoryLimit
}

// benchResult is the JSON line `creditd bench` prints.
type benchResult struct {
	Events               int     `json:"events"`
	Tenants              int     `json:"tenants"`
	Batch                int     `json:"batch"`
	Sync                 string  `json:"sync"`
	Partitions           int     `json:"partitions"`
	RawJetStreamMsgsPerS float64 `json:"raw_jetstream_msgs_per_s"`
	// WarmupEvents went in over HTTP, from tenants of their own, before
	// the measured phases; WarmupHTTPEventsPerS is their rate: the HTTP
	// ingest of a process that has just started (benchWarmup).
	WarmupEvents         int     `json:"warmup_events"`
	WarmupHTTPEventsPerS float64 `json:"warmup_http_events_per_s"`
	IngestHTTPEventsPerS float64 `json:"ingest_http_events_per_s"`
	IngestNATSEventsPerS float64 `json:"ingest_nats_events_per_s"`
	// IngestNATSRequestEventsPerS is ingest by NATS requests
	// (credits.record.<tenant_id>), answered once stored, with no work
	// stream.
	IngestNATSRequestEventsPerS float64 `json:"ingest_nats_request_events_per_s"`
	EndToEndEventsPerS          float64 `json:"end_to_end_events_per_s"`
	HotLineEventsPerS           float64 `json:"hot_line_events_per_s"`
	Ratio                       float64 `json:"ratio"`
	ProjectionLagP99Ms          float64 `json:"projection_lag_p99_ms"`
	RSSBytesMax                 int64   `json:"rss_bytes_max"`
	EventBytes                  int     `json:"event_bytes"`
	ElapsedSeconds              float64 `json:"elapsed_s"`
	VerifiedUsedPerTenant       string  `json:"verified_used_per_tenant"`
	// MemoryLimitBytes is the Go runtime's soft memory limit during the
	// run (math.MaxInt64: none).
	MemoryLimitBytes int64 `json:"memory_limit_bytes"`
	// HTTPCommitsPerS and HTTPEventsPerCommit describe the group commits
	// of the HTTP ingest phase: with an fsync per commit, throughput is
	// their product.
	HTTPCommitsPerS     float64 `json:"http_commits_per_s"`
	HTTPEventsPerCommit float64 `json:"http_events_per_commit"`
}

// commitCounter counts the writers' commits and their events.
type commitCounter struct{ commits, events atomic.Int64 }

func (c *commitCounter) Committed(events int) {
	c.commits.Add(1)
	c.events.Add(int64(events))
}
func (c *commitCounter) Conflicted() {}
func (c *commitCounter) Retried()    {}

func (c *commitCounter) reset() { c.commits.Store(0); c.events.Store(0) }

// rates is the commits per second over d and the events per commit.
func (c *commitCounter) rates(d time.Duration) (perS, eventsPer float64) {
	n := c.commits.Load()
	if n == 0 {
		return 0, 0
	}
	return float64(n) / d.Seconds(), float64(c.events.Load()) / float64(n)
}

// bench measures creditd on this machine in a temporary directory: the
// naive one-event-per-message JetStream ceiling, ingestion through the full
// write path over HTTP and NATS, end-to-end visibility in the read models,
// one hot line, and the projection lag; same embedded server settings
// throughout. `creditd bench generate` (bench_generate.go) instead fills a
// data dir with a long log, for measuring starts on it.
func bench(args []string) error {
	if len(args) > 0 && args[0] == "generate" {
		return benchGenerate(args[1:])
	}
	if len(args) > 0 && args[0] == "cluster" {
		return benchCluster(args[1:])
	}
	var cfg benchConfig
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: creditd bench [flags]\n       creditd bench generate --data-dir DIR [flags] (a long log to start serve on; generate --help)\n       creditd bench cluster [--instances N] (writes through N instances on a three-node cluster; cluster --help)")
		fs.PrintDefaults()
	}
	fs.IntVar(&cfg.events, "events", 200_000, "usage events per measured run")
	fs.IntVar(&cfg.tenants, "tenants", 1000, "tenants the events are spread over")
	fs.IntVar(&cfg.warmup, "warmup", 200_000, "usage events sent over HTTP by tenants of their own before the measured phases, their rate reported apart (0: none, the HTTP phase then measures a process that has just started)")
	fs.IntVar(&cfg.lines, "lines", 1, "credit lines per tenant")
	fs.IntVar(&cfg.batch, "batch", 100, "events per client batch")
	fs.IntVar(&cfg.producers, "producers", 128, "concurrent producers")
	fs.IntVar(&cfg.payload, "payload", 0, "extra bytes of description per event (payload size)")
	fs.IntVar(&cfg.partitions, "partitions", eventstore.PartitionsDefault, "write partitions of the bench's new stream (as serve --partitions)")
	fs.StringVar(&cfg.sync, "sync", "always", "fsync mode: always (every acknowledged write) or a duration such as 1s")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	fs.StringVar(&cfg.memProfile, "memprofile", "", "write a heap profile, taken at the end of the run while everything is still open, to this file (go tool pprof)")
	cfg.memoryLimit = newMemoryLimit()
	fs.Var(&cfg.memoryLimit, "memory-limit", memoryLimitUsage)
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	var syncInterval time.Duration
	if cfg.sync != "always" {
		d, err := time.ParseDuration(cfg.sync)
		if err != nil || d <= 0 {
			return fmt.Errorf("--sync %q: always or a positive duration", cfg.sync)
		}
		syncInterval = d
	}
	if cfg.tenants < 1 || cfg.events < cfg.tenants || cfg.batch < 1 || cfg.batch > client.BatchSizeMax || cfg.producers < 1 || cfg.lines < 1 || cfg.partitions < 1 || (cfg.warmup != 0 && cfg.warmup < cfg.tenants) {
		return errors.New("bench: need events ≥ tenants ≥ 1, 1 ≤ batch ≤ 1000, producers ≥ 1, lines ≥ 1, partitions ≥ 1, and a warmup of 0 or ≥ tenants")
	}
	dir, err := os.MkdirTemp("", "creditd-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res := benchResult{Events: cfg.events, Tenants: cfg.tenants, Batch: cfg.batch, Sync: cfg.sync, Partitions: cfg.partitions, WarmupEvents: cfg.warmup,
		MemoryLimitBytes: cfg.memoryLimit.apply(slog.New(slog.DiscardHandler))}
	started := time.Now()
	ctx := context.Background()

	emb, err := eventstore.StartEmbedded(eventstore.EmbeddedOptions{StoreDir: filepath.Join(dir, "jetstream"), SyncInterval: syncInterval})
	if err != nil {
		return err
	}
	defer emb.Shutdown()
	conn := func(name string) *nats.Conn {
		nc, err := emb.Connect(name)
		if err != nil {
			panic(err)
		}
		return nc
	}
	nc := conn("bench")
	defer nc.Close()
	sample := benchEvent("sample", cfg.payload)
	sampleJSON, _ := json.Marshal(sample)
	res.EventBytes = len(sampleJSON)

	fmt.Fprintln(os.Stderr, "creditd bench: raw JetStream, one event per message...")
	// A rate: a bounded count measures it well without taking minutes at
	// a few thousand messages a second.
	if res.RawJetStreamMsgsPerS, err = benchRaw(ctx, nc, min(cfg.events, rawMessagesMax), sampleJSON); err != nil {
		return err
	}

	store, err := eventstore.Open(ctx, nc, eventstore.Config{Partitions: cfg.partitions})
	if err != nil {
		return err
	}
	commits := &commitCounter{}
	// Snapshots (which bound the ids each writer keeps in memory) go
	// under the run's directory, as serve's go under its data dir.
	engine, err := commands.New(ctx, store, commands.Options{Observer: commits, Snapshots: commands.SnapshotOptions{Dir: filepath.Join(dir, "index")}})
	if err != nil {
		return err
	}
	defer engine.Close()
	db, err := projections.Open(filepath.Join(dir, "readmodel.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	projector, err := projections.NewProjector(ctx, db, nil)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	var workers sync.WaitGroup
	defer func() {
		stop()
		workers.Wait()
	}()
	lag := &lagRecorder{}
	projector.ObserveLag(lag)
	workers.Go(func() { projections.Consume(runCtx, conn("projection"), projector, store, nil) })
	js, _ := jetstream.New(nc)
	if err := ingest.EnsureStreams(ctx, js, 1); err != nil {
		return err
	}
	workers.Go(func() { ingest.Consume(runCtx, conn("ingest"), engine, ingest.Options{}) })
	answerer := httpapi.NewUsageAnswerer(httpapi.Config{Writer: engine, Logger: slog.New(slog.DiscardHandler)})
	workers.Go(func() { ingest.Respond(runCtx, conn("usage-requests"), answerer, ingest.RespondOptions{}) })
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: httpapi.New(httpapi.Config{Writer: engine, Reader: queries.New(db.Reader()), Projection: projector,
		LogPosition: store.LastPosition, AdminToken: "bench", Logger: slog.New(slog.DiscardHandler)})}
	go srv.Serve(listener)
	defer srv.Close()
	base := "http://" + listener.Addr().String()

	fmt.Fprintf(os.Stderr, "creditd bench: %d tenants...\n", cfg.tenants+1)
	tenants, err := benchTenants(ctx, engine, "bench-", cfg.tenants+1, cfg.lines)
	if err != nil {
		return err
	}
	hot, tenants := tenants[0], tenants[1:]

	// Each next phase starts on a settled server, so that the phases
	// compare: once the read models have applied the backlog a phase that
	// measures ingest alone leaves, and once the embedded server has let
	// go of the log blocks the phase before wrote (it keeps a block's 8
	// MiB buffer until benchSettle after its last read or write). Without
	// the pause, a phase that followed a fast one ran with up to 300 MB of
	// those buffers live, and the collector ran near-continuously under
	// the memory limit: the hot line fell from 110,000 to 50,000 events/s.
	settle := func() error {
		wait, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		last, err := store.LastPosition(wait)
		if err != nil {
			return err
		}
		if err := projector.WaitFor(wait, last); err != nil {
			return err
		}
		time.Sleep(benchSettle)
		return nil
	}
	// One client per tenant, as a tenant's metering producer would have.
	httpClient := func(t benchTenant) (*client.Client, error) {
		return client.New(client.Config{HTTPURL: base, APIKey: t.key, BatchSize: cfg.batch, Inflight: 2})
	}
	// The measured phases run on a warm process, as a server runs after
	// its first seconds: the warm-up sends the HTTP phase's load from
	// tenants of its own, so the measured tenants start as fresh as
	// before, and reports its rate apart. A process's first load touches
	// its memory for the first time (the heap up to its limit, SQLite's
	// page cache, the embedded server's block buffers); on this project's
	// machine, a virtual machine, a first touch of a 4 KiB page costs
	// about 15 µs. The HTTP phase measured cold took ~98,000 such faults
	// and 4.7–4.9 s of CPU, warm 27,000 and 3.3 s: 75,000–86,000 events/s
	// cold against 108,000–117,000 warm (README, "Benchmarks").
	if cfg.warmup > 0 {
		fmt.Fprintln(os.Stderr, "creditd bench: warm-up over HTTP (not measured)...")
		warm, err := benchTenants(ctx, engine, "warmup-", cfg.tenants, cfg.lines)
		if err != nil {
			return err
		}
		wcfg := cfg
		wcfg.events = cfg.warmup
		start := time.Now()
		if err := benchProduce(wcfg, warm, "w", httpClient); err != nil {
			return err
		}
		res.WarmupHTTPEventsPerS = float64(cfg.warmup) / time.Since(start).Seconds()
		if err := settle(); err != nil {
			return err
		}
	}

	lag.start()
	fmt.Fprintln(os.Stderr, "creditd bench: ingest over HTTP, then end to end...")
	commits.reset()
	start := time.Now()
	if err := benchProduce(cfg, tenants, "h", httpClient); err != nil {
		return err
	}
	res.IngestHTTPEventsPerS = float64(cfg.events) / time.Since(start).Seconds()
	res.HTTPCommitsPerS, res.HTTPEventsPerCommit = commits.rates(time.Since(start))
	last, err := store.LastPosition(ctx)
	if err != nil {
		return err
	}
	if err := benchVisible(ctx, base, tenants, projector, last, cfg, "h"); err != nil {
		return err
	}
	res.EndToEndEventsPerS = float64(cfg.events) / time.Since(start).Seconds()
	res.ProjectionLagP99Ms = lag.stop()
	if err := settle(); err != nil {
		return err
	}

	fmt.Fprintln(os.Stderr, "creditd bench: ingest over NATS requests...")
	start = time.Now()
	if err := benchProduce(cfg, tenants, "r", func(t benchTenant) (*client.Client, error) {
		return client.New(client.Config{NATS: nc, TenantID: t.id, NATSRequest: true, BatchSize: cfg.batch, Inflight: 2})
	}); err != nil {
		return err
	}
	// Answered means stored: the check is not timed.
	res.IngestNATSRequestEventsPerS = float64(cfg.events) / time.Since(start).Seconds()
	if err := benchRecorded(ctx, engine, tenants, cfg, 2); err != nil {
		return err
	}

	if err := settle(); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "creditd bench: ingest over NATS, work stream...")
	start = time.Now()
	if err := benchProduce(cfg, tenants, "n", func(t benchTenant) (*client.Client, error) {
		return client.New(client.Config{NATS: nc, TenantID: t.id, BatchSize: cfg.batch, Inflight: 2})
	}); err != nil {
		return err
	}
	if err := benchRecorded(ctx, engine, tenants, cfg, 3); err != nil {
		return err
	}
	res.IngestNATSEventsPerS = float64(cfg.events) / time.Since(start).Seconds()

	if err := settle(); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "creditd bench: one hot line...")
	hotEvents := cfg.events / 2
	start = time.Now()
	if err := benchProduce(benchConfig{events: hotEvents, batch: cfg.batch, producers: cfg.producers, payload: cfg.payload, lines: 1}, []benchTenant{hot}, "x",
		func(t benchTenant) (*client.Client, error) {
			return client.New(client.Config{HTTPURL: base, APIKey: t.key, BatchSize: cfg.batch, Inflight: cfg.producers})
		}); err != nil {
		return err
	}
	res.HotLineEventsPerS = float64(hotEvents) / time.Since(start).Seconds()

	res.Ratio = res.EndToEndEventsPerS / res.RawJetStreamMsgsPerS
	res.RSSBytesMax = rssMax()
	if cfg.memProfile != "" {
		if err := writeHeapProfile(cfg.memProfile); err != nil {
			return err
		}
	}
	res.ElapsedSeconds = time.Since(started).Seconds()
	res.VerifiedUsedPerTenant = benchAmount.Mul(decimal.NewFromInt(int64(3 * cfg.events / cfg.tenants))).String()
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	printBenchTable(os.Stdout, res)
	return nil
}

// benchSettle is the pause between phases: the embedded server's cache
// expiry (10 s, nats-server's default), and a margin.
const benchSettle = 11 * time.Second

// rawMessagesMax bounds the naive publishes measured.
const rawMessagesMax = 20_000

// benchAmount is each event's cost; a tenant's expected usage is exact.
var benchAmount = decimal.RequireFromString("0.001")

func benchEvent(id string, payload int) client.UsageEvent {
	return client.UsageEvent{ID: id, Amount: benchAmount, Module: "search", Service: "api", Endpoint: "/v1/search",
		UserID: "user-7", Description: strings.Repeat("x", payload)}
}

// benchRaw publishes one event per message asynchronously to a file stream
// on the same server: the naive design's ceiling.
func benchRaw(ctx context.Context, nc *nats.Conn, n int, payload []byte) (float64, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4000))
	if err != nil {
		return 0, err
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH_RAW", Subjects: []string{"bench.raw"}, Storage: jetstream.FileStorage}); err != nil {
		return 0, err
	}
	start := time.Now()
	for range n {
		if _, err := js.PublishAsync("bench.raw", payload, jetstream.WithStallWait(time.Minute)); err != nil {
			return 0, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		return 0, errors.New("raw publishes did not complete")
	}
	rate := float64(n) / time.Since(start).Seconds()
	return rate, js.DeleteStream(ctx, "BENCH_RAW")
}

type benchTenant struct {
	id  int64
	key string
}

func benchTenants(ctx context.Context, engine *commands.Engine, name string, n, lines int) ([]benchTenant, error) {
	out := make([]benchTenant, n)
	for i := range out {
		c, err := engine.CreateTenant(ctx, commands.CreateTenant{Name: name + strconv.Itoa(i)})
		if err != nil {
			return nil, err
		}
		out[i] = benchTenant{id: c.Tenant.ID, key: c.APIKey}
	}
	// Grants go in concurrently: group commit makes this quick.
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, t := range out {
		wg.Go(func() {
			for l := range lines {
				if _, err := engine.Grant(ctx, t.id, benchLine(l), newBenchGrant()); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return out, <-errs
}

func benchLine(l int) string {
	if l == 0 {
		return "default"
	}
	return "line-" + strconv.Itoa(l)
}

// benchProduce sends cfg.events events spread over tenants, each producer
// recording batches through its tenants' clients.
func benchProduce(cfg benchConfig, tenants []benchTenant, tag string, newClient func(benchTenant) (*client.Client, error)) error {
	clients := make([]*client.Client, len(tenants))
	for i, t := range tenants {
		c, err := newClient(t)
		if err != nil {
			return err
		}
		clients[i] = c
		defer c.Close()
	}
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	perTenant := cfg.events / len(tenants)
	batches := (perTenant + cfg.batch - 1) / cfg.batch
	for range cfg.producers {
		wg.Go(func() {
			// One batch's slice per producer, reused: Record encodes the
			// events before it returns, and the producers share the cores
			// with the server they measure.
			events := make([]client.UsageEvent, 0, cfg.batch)
			var id []byte // tag-tenant-event, built without fmt's boxing
			for {
				job := int(next.Add(1) - 1)
				if job >= batches*len(tenants) {
					return
				}
				ti, b := job%len(tenants), job/len(tenants)
				events = events[:0]
				for e := b * cfg.batch; e < min((b+1)*cfg.batch, perTenant); e++ {
					id = strconv.AppendInt(append(append(id[:0], tag...), '-'), tenants[ti].id, 10)
					id = strconv.AppendInt(append(id, '-'), int64(e), 10)
					ev := benchEvent(string(id), cfg.payload)
					ev.CreditType = benchLine(e % cfg.lines)
					events = append(events, ev)
				}
				if _, err := clients[ti].Record(context.Background(), events...); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		return err
	}
	return nil
}

// benchVisible waits until the read models reach the last write and checks
// /v1/balance and /v1/usage of a sample of tenants over HTTP.
func benchVisible(ctx context.Context, base string, tenants []benchTenant, p *projections.Projector, last uint64, cfg benchConfig, tag string) error {
	wait, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := p.WaitFor(wait, last); err != nil {
		return err
	}
	want := benchAmount.Mul(decimal.NewFromInt(int64(cfg.events / len(tenants))))
	for _, t := range []benchTenant{tenants[0], tenants[len(tenants)/2], tenants[len(tenants)-1]} {
		for _, path := range []string{"/v1/balance", "/v1/usage"} {
			req, _ := http.NewRequest(http.MethodGet, base+path+"?min_position="+strconv.FormatUint(last, 10), nil)
			req.Header.Set("Authorization", "Bearer "+t.key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var m struct {
				Total  struct{ Used json.Number } `json:"total"`
				Totals struct{ Credits json.Number }
			}
			json.Unmarshal(body, &m)
			got := m.Total.Used
			if path == "/v1/usage" {
				got = m.Totals.Credits
			}
			if d, err := decimal.NewFromString(string(got)); err != nil || !d.Equal(want) {
				return fmt.Errorf("bench: tenant %d %s shows %s, want %s", t.id, path, got, want)
			}
		}
	}
	return nil
}

// benchRecorded waits until every tenant's lines hold rounds × its events.
func benchRecorded(ctx context.Context, engine *commands.Engine, tenants []benchTenant, cfg benchConfig, rounds int) error {
	want := benchAmount.Mul(decimal.NewFromInt(int64(rounds * (cfg.events / len(tenants)))))
	deadline := time.Now().Add(5 * time.Minute)
	for _, t := range tenants {
		for {
			used := decimal.Zero
			for l := range cfg.lines {
				line, _, err := engine.Line(ctx, t.id, benchLine(l))
				if err != nil {
					return err
				}
				used = used.Add(line.Used)
			}
			if used.Equal(want) {
				break
			}
			if used.GreaterThan(want) || time.Now().After(deadline) {
				return fmt.Errorf("bench: tenant %d used %s, want %s", t.id, used, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// lagRecorder keeps the projection's lag per commit (see
// projections.LagObserver) while it is started, up to lagRecordsMax.
type lagRecorder struct {
	mu      sync.Mutex
	started bool
	lags    []time.Duration
}

// lagRecordsMax bounds the commits a bench run records (a commit holds
// hundreds of events).
const lagRecordsMax = 1 << 20

// ProjectionLag implements projections.LagObserver.
func (r *lagRecorder) ProjectionLag(lag time.Duration) {
	r.mu.Lock()
	if r.started && len(r.lags) < lagRecordsMax {
		r.lags = append(r.lags, lag)
	}
	r.mu.Unlock()
}

func (r *lagRecorder) start() {
	r.mu.Lock()
	r.started, r.lags = true, r.lags[:0]
	r.mu.Unlock()
}

// stop ends the recording and returns its p99 in milliseconds.
func (r *lagRecorder) stop() float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = false
	if len(r.lags) == 0 {
		return 0
	}
	slices.Sort(r.lags)
	return float64(r.lags[min(len(r.lags)-1, len(r.lags)*99/100)].Microseconds()) / 1000
}

// rssMax is the process's peak resident set (VmHWM), 0 where unknown.
func rssMax() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func printBenchTable(w io.Writer, r benchResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "measure\tvalue\t\n")
	fmt.Fprintf(tw, "raw JetStream, 1 event/msg, async (msgs/s)\t%.0f\t\n", r.RawJetStreamMsgsPerS)
	if r.WarmupEvents > 0 {
		fmt.Fprintf(tw, "warm-up: ingest over HTTP, the process just started (events/s)\t%.0f\t\n", r.WarmupHTTPEventsPerS)
	}
	fmt.Fprintf(tw, "ingest via client over HTTP (events/s)\t%.0f\t\n", r.IngestHTTPEventsPerS)
	fmt.Fprintf(tw, "ingest via client over NATS, work stream (events/s)\t%.0f\t\n", r.IngestNATSEventsPerS)
	fmt.Fprintf(tw, "ingest via client over NATS, requests (events/s)\t%.0f\t\n", r.IngestNATSRequestEventsPerS)
	fmt.Fprintf(tw, "end to end, visible in /v1/balance and /v1/usage (events/s)\t%.0f\t\n", r.EndToEndEventsPerS)
	fmt.Fprintf(tw, "one hot line over HTTP (events/s)\t%.0f\t\n", r.HotLineEventsPerS)
	fmt.Fprintf(tw, "ratio end to end / raw\t%.1f\t\n", r.Ratio)
	fmt.Fprintf(tw, "commits/s, events per commit (HTTP ingest)\t%.0f, %.1f\t\n", r.HTTPCommitsPerS, r.HTTPEventsPerCommit)
	fmt.Fprintf(tw, "projection lag p99 (ms)\t%.0f\t\n", r.ProjectionLagP99Ms)
	fmt.Fprintf(tw, "peak RSS (MiB)\t%.0f\t\n", float64(r.RSSBytesMax)/(1<<20))
	if r.MemoryLimitBytes < math.MaxInt64 {
		fmt.Fprintf(tw, "Go memory limit (MiB)\t%.0f\t\n", float64(r.MemoryLimitBytes)/(1<<20))
	} else {
		fmt.Fprintf(tw, "Go memory limit (MiB)\tnone\t\n")
	}
	fmt.Fprintf(tw, "events, tenants, batch, sync, partitions\t%d, %d, %d, %s, %d\t\n", r.Events, r.Tenants, r.Batch, r.Sync, r.Partitions)
	tw.Flush()
}

func newBenchGrant() domain.Grant {
	return domain.Grant{GrantID: "bench", Amount: decimal.NewFromInt(1_000_000_000), Source: domain.SourcePurchase}
}

// writeHeapProfile writes what the heap holds now, after a collection, so
// the profile shows live memory rather than garbage waiting for the GC.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.WriteHeapProfile(f)
}
