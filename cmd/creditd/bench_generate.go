package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// Bounds of `creditd bench generate`.
const (
	// generateCommitEventsDefault is the usage events per commit: what the
	// writer's group commit gathers under load (bench's 128 producers of
	// 100 events fill commits of thousands).
	generateCommitEventsDefault = 2000
	// generateCommitEventsMax matches the writer's bound on the operations
	// of one commit, so no generated commit is larger than serve's.
	generateCommitEventsMax = 8192
	// generateInflightDefault bounds the commits published and not yet
	// acknowledged: enough to keep the store busy through each fsync, few
	// enough that memory stays some tens of MiB.
	generateInflightDefault = 32
	generateInflightMax     = 1024
	// generateQueuedCommits bounds the encoded commits waiting for the
	// publisher, per partition.
	generateQueuedCommits = 4
	// generateTenantsMax bounds the tenants created (each is a registry
	// append of its own).
	generateTenantsMax = 100_000
	// generateAckWait bounds the wait for the last acknowledgements.
	generateAckWait = 5 * time.Minute
)

// generateUsageID is the id of a tenant's n-th generated usage event: the
// same in every run, so a test or an operator can send one again and expect
// a duplicate.
func generateUsageID(n int) string { return "gen-" + strconv.Itoa(n) }

// generateAmount is each generated event's cost: a tenant's usage is
// exactly its event count times it.
var generateAmount = decimal.RequireFromString("0.001")

type generateConfig struct {
	dataDir      string
	events       int
	tenants      int
	partitions   int
	commitEvents int
	inflight     int
	keysFile     string
	cpuProfile   string
}

// generateResult is the JSON line `creditd bench generate` prints.
type generateResult struct {
	Events         int     `json:"events"`
	Tenants        int     `json:"tenants"`
	Partitions     int     `json:"partitions"`
	Commits        int     `json:"commits"`
	CommitEvents   int     `json:"commit_events"`
	LogPosition    uint64  `json:"log_position"`
	LogBytes       int64   `json:"log_bytes"`
	TenantsSeconds float64 `json:"tenants_s"`
	ElapsedSeconds float64 `json:"elapsed_s"`
	EventsPerS     float64 `json:"events_per_s"`
	RSSBytesMax    int64   `json:"rss_bytes_max"`
}

// generatedTenant is one line of the --keys file.
type generatedTenant struct {
	TenantID int64  `json:"tenant_id"`
	APIKey   string `json:"api_key"`
	// UsageEvents are the tenant's events, ids generateUsageID(0) up to
	// UsageEvents-1, each of generateAmount.
	UsageEvents int    `json:"usage_events"`
	Granted     string `json:"granted"`
	Used        string `json:"used"`
	// FirstUsage is the tenant's first usage event as POST /v1/usage takes
	// it: sent again, it is answered as a duplicate.
	FirstUsage *generatedUsageRequest `json:"first_usage,omitempty"`
}

// generatedUsageRequest is a generated usage event in the HTTP API's form.
type generatedUsageRequest struct {
	ID       string `json:"id"`
	Amount   string `json:"amount"`
	Module   string `json:"module"`
	Service  string `json:"service"`
	Endpoint string `json:"endpoint"`
	UserID   string `json:"user_id"`
	Quantity string `json:"quantity"`
}

// generatedUsage is a tenant's n-th usage event. Dimensions vary by user
// only, a hundred of them, so the usage read models hold some cells per
// tenant and day rather than one per event.
func generatedUsage(n int) domain.RecordUsage {
	return domain.RecordUsage{UsageID: generateUsageID(n), Amount: generateAmount, Dimensions: domain.Dimensions{
		Module: "search", Service: "api", Endpoint: "/v1/search", UserID: "user-" + strconv.Itoa(n%100),
		Success: true, Quantity: decimal.NewFromInt(1)}}
}

// asRequest is the usage event as a client would have sent it.
func asRequest(u domain.RecordUsage) *generatedUsageRequest {
	d := u.Dimensions
	return &generatedUsageRequest{ID: u.UsageID, Amount: u.Amount.String(), Module: d.Module, Service: d.Service,
		Endpoint: d.Endpoint, UserID: d.UserID, Quantity: d.Quantity.String()}
}

// benchGenerate writes a large valid log into an empty data dir at the
// store's speed, for measuring starts on a long history: tenants and their
// keys through the write side, as serve creates them, then one grant per
// tenant and its usage, decided by the domain's rules on the tenant's line
// and published as hash-chained commits straight to the partitions.
func benchGenerate(args []string) error {
	var cfg generateConfig
	fs := flag.NewFlagSet("bench generate", flag.ContinueOnError)
	fs.StringVar(&cfg.dataDir, "data-dir", "", "data directory to fill (required; its log must be empty)")
	fs.IntVar(&cfg.events, "events", 1_000_000, "usage events to write")
	fs.IntVar(&cfg.tenants, "tenants", 1000, "tenants the events are spread over")
	fs.IntVar(&cfg.partitions, "partitions", eventstore.PartitionsDefault, "write partitions of the new stream (as serve --partitions)")
	fs.IntVar(&cfg.commitEvents, "commit-events", generateCommitEventsDefault, "usage events per stored commit")
	fs.IntVar(&cfg.inflight, "inflight", generateInflightDefault, "commits published and not yet acknowledged")
	fs.StringVar(&cfg.keysFile, "keys", "", "write each tenant's id, API key and expected usage to this file (NDJSON)")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
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
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	started := time.Now()

	unlock, err := lockDataDir(cfg.dataDir, "bench generate", lockExclusive)
	if err != nil {
		return err
	}
	defer unlock()
	// The same embedded server, settings and stream as serve: fsync before
	// every acknowledgement, so the generated log is one serve could have
	// written, not one that only exists in the page cache.
	link, err := openNATS(serveConfig{dataDir: cfg.dataDir}, nil, newLogger())
	if err != nil {
		return err
	}
	defer link.close()
	nc, err := link.dial("creditd-generate")
	if err != nil {
		return err
	}
	defer nc.Close()
	store, err := eventstore.Open(ctx, nc, eventstore.Config{Partitions: cfg.partitions})
	if err != nil {
		return err
	}
	if last, err := store.LastPosition(ctx); err != nil {
		return err
	} else if last != 0 {
		return fmt.Errorf("bench generate: %s already holds a log (position %d); give an empty --data-dir", cfg.dataDir, last)
	}
	if store.Partitions() != cfg.partitions {
		return fmt.Errorf("bench generate: the stream has %d partitions, not %d", store.Partitions(), cfg.partitions)
	}

	tenants, err := generateTenants(ctx, store, cfg)
	if err != nil {
		return err
	}
	res := generateResult{Events: cfg.events, Tenants: cfg.tenants, Partitions: cfg.partitions, CommitEvents: cfg.commitEvents,
		TenantsSeconds: time.Since(started).Seconds()}
	fmt.Fprintf(os.Stderr, "creditd bench generate: %d tenants in %.1f s; %d usage events...\n", cfg.tenants, res.TenantsSeconds, cfg.events)

	if res.Commits, res.LogBytes, err = generateUsage(ctx, nc, store, tenants, cfg); err != nil {
		return err
	}
	if res.LogPosition, err = store.LastPosition(ctx); err != nil {
		return err
	}
	res.ElapsedSeconds = time.Since(started).Seconds()
	res.EventsPerS = float64(cfg.events) / res.ElapsedSeconds
	res.RSSBytesMax = rssMax()
	if cfg.keysFile != "" {
		if err := writeGeneratedKeys(cfg.keysFile, tenants); err != nil {
			return err
		}
	}
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	return nil
}

func (c generateConfig) validate() error {
	var errs []error
	if c.dataDir == "" {
		errs = append(errs, errors.New("--data-dir is required"))
	}
	if c.tenants < 1 || c.tenants > generateTenantsMax {
		errs = append(errs, fmt.Errorf("--tenants must be 1 to %d", generateTenantsMax))
	}
	if c.events < 0 {
		errs = append(errs, errors.New("--events must not be negative"))
	}
	if c.partitions < 1 {
		errs = append(errs, errors.New("--partitions must be at least 1"))
	}
	if c.commitEvents < 1 || c.commitEvents > generateCommitEventsMax {
		errs = append(errs, fmt.Errorf("--commit-events must be 1 to %d", generateCommitEventsMax))
	}
	if c.inflight < 1 || c.inflight > generateInflightMax {
		errs = append(errs, fmt.Errorf("--inflight must be 1 to %d", generateInflightMax))
	}
	return errors.Join(errs...)
}

// registryOnly hides the store's snapshot methods from the engine that
// creates the tenants: it takes no snapshot then, and the generated log is
// one whose first start reads it all, as after an upgrade or a lost index.
type registryOnly struct{ commands.FullStore }

// generateTenants creates the tenants through the write side, so their
// registry events and API keys are exactly serve's, and plans each one's
// share of the events.
func generateTenants(ctx context.Context, store *eventstore.Store, cfg generateConfig) ([]generatedTenant, error) {
	engine, err := commands.New(ctx, registryOnly{store}, commands.Options{})
	if err != nil {
		return nil, err
	}
	defer engine.Close()
	out := make([]generatedTenant, cfg.tenants)
	for i := range out {
		created, err := engine.CreateTenant(ctx, commands.CreateTenant{Name: "generated-" + strconv.Itoa(i)})
		if err != nil {
			return nil, fmt.Errorf("create tenant %d: %w", i, err)
		}
		n := cfg.events / cfg.tenants
		if i < cfg.events%cfg.tenants {
			n++
		}
		out[i] = generatedTenant{TenantID: created.Tenant.ID, APIKey: created.APIKey, UsageEvents: n,
			Granted: newBenchGrant().Amount.String(), Used: generateAmount.Mul(decimal.NewFromInt(int64(n))).String()}
		if n > 0 {
			out[i].FirstUsage = asRequest(generatedUsage(0))
		}
	}
	return out, nil
}

// encodedCommit is one partition's next commit, ready to publish.
type encodedCommit struct {
	partition int
	data      []byte
}

// generateUsage decides and encodes each partition's commits on its own
// goroutine and publishes them all from one, pipelined: the publisher
// predicts the stream sequence each commit gets (it is the log's only
// writer: the data dir is locked and the server listens to no one) and
// fences each on its partition's previous one, so a wrong prediction is
// refused as a conflict rather than stored out of chain.
func generateUsage(ctx context.Context, nc *nats.Conn, store *eventstore.Store, tenants []generatedTenant, cfg generateConfig) (commits int, bytes int64, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	byPartition := make([][]generatedTenant, cfg.partitions)
	for _, t := range tenants {
		p := store.PartitionOf(t.TenantID)
		byPartition[p] = append(byPartition[p], t)
	}
	// The tenants were created through an engine that wrote nothing but
	// the registry: every partition starts empty, its chain with "".
	base, err := store.LastPosition(ctx)
	if err != nil {
		return 0, 0, err
	}
	for p := range cfg.partitions {
		if last, err := store.LastSeq(ctx, eventstore.PartitionSubject(p)); err != nil || last != 0 {
			return 0, 0, errors.Join(err, fmt.Errorf("partition %d is not empty", p))
		}
	}

	queue := make(chan encodedCommit, generateQueuedCommits*cfg.partitions)
	var deciders sync.WaitGroup
	for p, ts := range byPartition {
		if len(ts) == 0 {
			continue
		}
		deciders.Go(func() {
			if err := generatePartition(ctx, p, ts, cfg.commitEvents, store.MaxCommitBytes(), queue); err != nil {
				cancel(fmt.Errorf("partition %d: %w", p, err))
			}
		})
	}
	go func() {
		deciders.Wait()
		close(queue)
	}()

	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(cfg.inflight))
	if err != nil {
		return 0, 0, err
	}
	type pending struct {
		ack      jetstream.PubAckFuture
		sequence uint64
	}
	acks := make(chan pending, cfg.inflight)
	checked := make(chan struct{})
	go func() {
		defer close(checked)
		for p := range acks {
			select {
			case ack := <-p.ack.Ok():
				if ack.Sequence != p.sequence {
					cancel(fmt.Errorf("commit stored at %d, expected %d", ack.Sequence, p.sequence))
				}
			case err := <-p.ack.Err():
				cancel(fmt.Errorf("commit %d: %w", p.sequence, err))
			case <-ctx.Done():
			}
		}
	}()
	lastOf := make([]uint64, cfg.partitions)
	next := base
	for c := range queue {
		if ctx.Err() != nil {
			continue // drains the deciders, which stop on the cancelled ctx
		}
		next++
		ack, err := js.PublishMsgAsync(&nats.Msg{Subject: eventstore.PartitionSubject(c.partition), Data: c.data},
			jetstream.WithExpectLastSequencePerSubject(lastOf[c.partition]), jetstream.WithStallWait(generateAckWait))
		if err != nil {
			cancel(fmt.Errorf("publish commit %d: %w", next, err))
			continue
		}
		lastOf[c.partition] = next
		acks <- pending{ack: ack, sequence: next}
		commits++
		bytes += int64(len(c.data))
	}
	close(acks)
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(generateAckWait):
		cancel(errors.New("commits not acknowledged in time"))
	}
	<-checked
	if err := context.Cause(ctx); err != nil {
		return 0, 0, err
	}
	return commits, bytes, nil
}

// generatePartition sends a partition's commits to queue: first one
// granting each tenant its credits, then usage round-robin over the
// tenants, so each commit carries many lines as a group commit under load
// does. Each write is decided as the partition writer decides it: on the
// line observed at the commit's instant, after the work due then.
// A commit over commitBytesMax, what the store takes, is refused as the
// writer refuses it.
func generatePartition(ctx context.Context, partition int, tenants []generatedTenant, commitEvents, commitBytesMax int, queue chan<- encodedCommit) error {
	lines := make([]*domain.Line, len(tenants))
	sent := make([]int, len(tenants))
	// observed[i] is the commit that last observed line i: a line is
	// observed once per commit, at the commit's instant.
	observed := make([]int, len(tenants))
	prev := ""
	envelopes := make([]domain.Envelope, 0, commitEvents+len(tenants))
	commit := 0
	emit := func(at time.Time) error {
		data, err := eventstore.EncodeCommit(eventstore.Commit{RecordedAt: at, Prev: prev, Events: envelopes})
		if err != nil {
			return err
		}
		if len(data) > commitBytesMax {
			return fmt.Errorf("a commit of %d events takes %d bytes, over the store's %d: lower --commit-events", len(envelopes), len(data), commitBytesMax)
		}
		prev = eventstore.Hash(data)
		envelopes = envelopes[:0]
		select {
		case queue <- encodedCommit{partition: partition, data: data}:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	decide := func(i int, now time.Time, decision func(*domain.Line) ([]domain.Event, error)) error {
		staged := lines[i]
		if observed[i] != commit {
			staged.Observe(now)
			observed[i] = commit
		}
		line, due := domain.Due(staged, now)
		events, err := decision(line)
		if err != nil {
			return fmt.Errorf("tenant %d: %w", tenants[i].TenantID, err)
		}
		for _, e := range append(due, events...) {
			staged.Apply(e)
			envelopes = append(envelopes, domain.Envelope{TenantID: tenants[i].TenantID, CreditType: domain.DefaultCreditType, Event: e})
		}
		return nil
	}

	commit++
	now := time.Now().UTC()
	grant := newBenchGrant()
	for i := range tenants {
		lines[i] = domain.NewLine(domain.DefaultCreditType)
		if err := decide(i, now, func(l *domain.Line) ([]domain.Event, error) { return domain.DecideGrant(l, grant, now) }); err != nil {
			return err
		}
	}
	if err := emit(now); err != nil {
		return err
	}

	remaining := 0
	for _, t := range tenants {
		remaining += t.UsageEvents
	}
	for i := 0; remaining > 0; i = (i + 1) % len(tenants) {
		if sent[i] == tenants[i].UsageEvents {
			continue
		}
		if len(envelopes) == 0 {
			commit++
			now = time.Now().UTC()
		}
		usage := generatedUsage(sent[i])
		if err := decide(i, now, func(l *domain.Line) ([]domain.Event, error) { return domain.DecideUsage(l, usage, now) }); err != nil {
			return err
		}
		sent[i]++
		remaining--
		if len(envelopes) >= commitEvents || remaining == 0 {
			if err := emit(now); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeGeneratedKeys(path string, tenants []generatedTenant) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, t := range tenants {
		if err := enc.Encode(t); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
