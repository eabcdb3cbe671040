package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/ingest"
	"github.com/creditd/creditd/internal/metrics"
	"github.com/creditd/creditd/internal/webhook"
	"github.com/creditd/creditd/projections"
)

// HTTP server bounds: slow or stuck clients must not hold connections.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	shutdownWait      = 30 * time.Second
	natsConnectWait   = 10 * time.Second
)

type serveConfig struct {
	dataDir        string
	httpAddr       string
	adminToken     string
	natsURL        string
	replicas       int
	partitions     int
	natsListen     string
	natsToken      string
	natsTLS        struct{ cert, key string }
	workers        int
	requestWorkers int
	webhookKey     string
	notices        bool
	checkpoint     time.Duration
	webhooks       webhook.Policy
	// deadLetters bound the dead-letter stream; zero: no limit.
	deadLetters ingest.DeadLetterLimits
	memoryLimit memoryLimit
	// leaseTTL and instance configure partition ownership on a cluster
	// (--nats-url): how long a lease outlives its last renewal, and the
	// name this instance shows among the others.
	leaseTTL time.Duration
	instance string
	// idWindow bounds the write ids kept in memory between snapshots.
	idWindow int
}

func envOr(name, fallback string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return fallback
}

// parseServeFlags reads the configuration: command-line flags, then
// CREDITD_<FLAG> environment variables, then the optional --config file,
// then the defaults `creditd serve --help` lists.
func parseServeFlags(args []string) (serveConfig, error) {
	var cfg serveConfig
	var configFile string
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&configFile, "config", "", "optional config file: one line name = value per setting, names as the flags; # starts a comment")
	fs.StringVar(&cfg.dataDir, "data-dir", "./data", "directory for the embedded event store, read models and the generated secrets")
	fs.StringVar(&cfg.httpAddr, "http-addr", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&cfg.adminToken, "admin-token", "", "admin token for tenant administration; generated and stored in the data dir when unset")
	fs.StringVar(&cfg.natsURL, "nats-url", "", "external NATS JetStream server or cluster; empty runs an embedded server")
	fs.IntVar(&cfg.replicas, "replicas", 0, "least replicas of the streams; 0 chooses: 1 on the embedded server, on a cluster (--nats-url) 3, or every JetStream server when there are fewer")
	fs.IntVar(&cfg.partitions, "partitions", eventstore.PartitionsDefault, "write partitions when creating the stream; fixed afterwards (docs/architecture.md)")
	fs.StringVar(&cfg.natsListen, "nats-listen", "", "host:port on which the embedded NATS server accepts producers (each authenticates with its tenant's API key); empty: in-process only")
	fs.StringVar(&cfg.natsToken, "nats-token", "", "operator token for the embedded NATS server: full access to every subject and the JetStream API; for operators only, never for producers")
	fs.StringVar(&cfg.natsTLS.cert, "nats-tls-cert", "", "PEM certificate for the embedded NATS listener; with --nats-tls-key, producers must use TLS")
	fs.StringVar(&cfg.natsTLS.key, "nats-tls-key", "", "PEM private key of --nats-tls-cert")
	fs.IntVar(&cfg.workers, "ingest-workers", ingest.WorkersDefault, "usage messages from NATS recorded at once")
	fs.IntVar(&cfg.requestWorkers, "usage-request-workers", ingest.RespondersDefault, "usage requests from NATS (credits.record.<tenant_id>) recorded at once")
	fs.StringVar(&cfg.webhookKey, "webhook-key", "", "key that derives each tenant's webhook signing secret; generated and stored in the data dir when unset")
	fs.DurationVar(&cfg.deadLetters.MaxAge, "dead-letter-max-age", ingest.DeadLetterMaxAgeDefault, "how long NATS usage messages that could not be recorded are kept on the dead-letter stream; 0: no limit")
	fs.Int64Var(&cfg.deadLetters.MaxBytes, "dead-letter-max-bytes", ingest.DeadLetterMaxBytesDefault, "bytes of dead letters kept, the oldest dropped first; 0: no limit")
	fs.DurationVar(&cfg.checkpoint, "checkpoint-interval", time.Hour, "how often to append a checkpoint (subject heads and balances digest); 0 disables")
	fs.IntVar(&cfg.idWindow, "id-window", commands.SnapshotWindowDefault, "write ids the partition writers keep in memory together before they snapshot them to the id index, about 65 bytes each (docs/architecture.md, \"Snapshots\")")
	cfg.memoryLimit = newMemoryLimit()
	fs.Var(&cfg.memoryLimit, "memory-limit", memoryLimitUsage)
	fs.BoolVar(&cfg.notices, "notices", true, "deliver low-balance notices from this instance; on a cluster, each instance delivers those of the partitions it owns")
	fs.DurationVar(&cfg.leaseTTL, "lease-ttl", leaseTTLDefault, "on a cluster (--nats-url): how long a partition's lease outlives its owner's last renewal, so how soon the others take over from an instance that died; the same on every instance")
	fs.StringVar(&cfg.instance, "instance", "", "on a cluster (--nats-url): this instance's name among the others, in /readyz and the logs; a random suffix is added at each start; empty: the host name")
	fs.BoolVar(&cfg.webhooks.AllowHTTP, "webhook-allow-http", false, "accept plain http webhook URLs; for local development only (notices travel unencrypted)")
	fs.Func("webhook-allow-hosts", "comma-separated host names, IP addresses or CIDR ranges that webhooks may reach although internal (loopback, private, link-local, CGNAT and metadata addresses are refused otherwise)", func(v string) error {
		cfg.webhooks.AllowHosts = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
		return cfg.webhooks.Validate()
	})
	fs.VisitAll(func(f *flag.Flag) { f.Usage += " (env " + envName(f.Name) + ")" })
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := os.LookupEnv(envName(f.Name)); ok && v != "" && !explicit[f.Name] {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
			explicit[f.Name] = true
		}
	})
	if configFile != "" {
		values, err := readConfigFile(configFile)
		if err != nil {
			return cfg, err
		}
		for name, v := range values {
			if fs.Lookup(name) == nil || name == "config" {
				errs = append(errs, fmt.Errorf("%s: unknown setting %q", configFile, name))
				continue
			}
			if !explicit[name] {
				if err := fs.Set(name, v); err != nil {
					errs = append(errs, fmt.Errorf("%s: %s: %w", configFile, name, err))
				}
			}
		}
	}
	errs = append(errs, cfg.validate())
	return cfg, errors.Join(errs...)
}

// streamReplicasMax is the most replicas JetStream gives a stream.
const streamReplicasMax = 5

// idWindowMin and idWindowMax bound --id-window: below the minimum,
// writers snapshot every few ids (a share is the window over the
// partitions: 1,024 at 16); the maximum is about 70 GiB of ids in memory.
const (
	idWindowMin = 1 << 14
	idWindowMax = 1 << 30
)

// validate checks the settings that flags alone cannot.
func (cfg serveConfig) validate() error {
	var errs []error
	switch {
	case cfg.replicas < 0 || cfg.replicas > streamReplicasMax:
		errs = append(errs, fmt.Errorf("--replicas %d: want 0 (choose) to %d", cfg.replicas, streamReplicasMax))
	case cfg.replicas > 1 && cfg.natsURL == "":
		errs = append(errs, fmt.Errorf("--replicas %d needs a cluster (--nats-url): the embedded server keeps one copy", cfg.replicas))
	}
	if cfg.leaseTTL < leaseTTLMin || cfg.leaseTTL > leaseTTLMax {
		errs = append(errs, fmt.Errorf("--lease-ttl %s: want %s to %s", cfg.leaseTTL, leaseTTLMin, leaseTTLMax))
	}
	if cfg.deadLetters.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("--dead-letter-max-age %s: want 0 (no limit) or more", cfg.deadLetters.MaxAge))
	}
	if cfg.deadLetters.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("--dead-letter-max-bytes %d: want 0 (no limit) or more", cfg.deadLetters.MaxBytes))
	}
	if cfg.idWindow < idWindowMin || cfg.idWindow > idWindowMax {
		errs = append(errs, fmt.Errorf("--id-window %d: want %d to %d ids", cfg.idWindow, idWindowMin, idWindowMax))
	}
	return errors.Join(errs...)
}

// streamReplicas is the least replica count of the streams: --replicas
// when set; otherwise 1 on the embedded server, and on a cluster
// eventstore.ReplicasWanted, or every JetStream server when the cluster
// has fewer after eventstore.ClusterJoinWait (servers still joining a
// cluster that just started are waited for), with a warning: the log then
// has fewer copies than creditd would keep.
func streamReplicas(ctx context.Context, cfg serveConfig, nc *nats.Conn, log *slog.Logger) int {
	if cfg.replicas > 0 {
		return cfg.replicas
	}
	if cfg.natsURL == "" {
		return 1
	}
	size, err := eventstore.ClusterSizeAwaiting(ctx, nc, eventstore.ReplicasWanted, eventstore.ClusterJoinWait)
	if err != nil {
		// Asking for the wanted count is safe: the server refuses a new
		// stream it cannot place, with the reason, and an existing one is
		// checked against it.
		log.Warn("cannot count the NATS cluster's servers; asking for the default replicas (set --replicas to choose)", "replicas", eventstore.ReplicasWanted, "err", err)
		return eventstore.ReplicasWanted
	}
	replicas, short := eventstore.AutoReplicas(size)
	if short {
		log.Warn("the NATS cluster has fewer JetStream servers than creditd keeps copies of its log: one replica per server", "servers", size, "replicas", replicas, "wanted", eventstore.ReplicasWanted)
	}
	return replicas
}

// envName is a flag's environment variable: CREDITD_ and the flag's name
// in capitals with _ for -.
func envName(flagName string) string {
	return "CREDITD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// configFileBytesMax bounds a config file.
const configFileBytesMax = 64 << 10

// readConfigFile reads `name = value` lines.
func readConfigFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	if len(data) > configFileBytesMax {
		return nil, fmt.Errorf("config file %s is larger than %d bytes", path, configFileBytesMax)
	}
	values := map[string]string{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want name = value", path, i+1)
		}
		values[strings.TrimSpace(name)] = strings.Trim(strings.TrimSpace(value), `"`)
	}
	return values, nil
}

func newLogger() *slog.Logger {
	if info, err := os.Stderr.Stat(); err == nil && info.Mode()&os.ModeCharDevice != 0 {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, nil))
}

func serve(args []string) error {
	cfg, err := parseServeFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := newLogger()
	cfg.memoryLimit.apply(log)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return runServe(ctx, cfg, log, serveHooks{})
}

// serveHooks let a test watch or hold serve's start-up; the zero value
// does nothing.
type serveHooks struct {
	// readModelsProgress, when set, is called after each batch the read
	// models' start-up catch-up applies; blocking in it holds the catch-up
	// there.
	readModelsProgress func(projections.Progress)
	// listening, when set, is called with the HTTP address once it accepts
	// connections.
	listening func(addr string)
}

// runServe runs creditd with cfg until ctx ends.
func runServe(ctx context.Context, cfg serveConfig, log *slog.Logger, hooks serveHooks) error {
	unlock, err := lockDataDir(cfg.dataDir, "serve", lockExclusive)
	if err != nil {
		return err
	}
	defer unlock()
	adminToken, generated, err := loadAdminToken(cfg.dataDir, cfg.adminToken)
	if err != nil {
		return err
	}
	if generated {
		// Printed once, on the start that created it; it stays in the data dir.
		fmt.Fprintf(os.Stderr, "creditd: generated admin token (stored in %s): %s\n", filepath.Join(cfg.dataDir, adminTokenFile), adminToken)
	}

	producers := &ingest.Producers{Log: log}
	link, err := openNATS(cfg, producers, log)
	if err != nil {
		return err
	}
	defer link.close()
	nc, err := link.dial("creditd")
	if err != nil {
		return err
	}
	defer nc.Close()

	replicas := streamReplicas(ctx, cfg, nc, log)
	store, err := eventstore.Open(ctx, nc, eventstore.Config{Replicas: replicas, Partitions: cfg.partitions})
	if err != nil {
		return err
	}
	observe := metrics.New()
	// The id index's segments are kept under the data directory: a cache of
	// the objects in JetStream, so a restart need not fetch them again.
	// Start-up reads the log (the tails after the snapshots, the read
	// models' catch-up): a read that takes a while says how far it has come
	// every few seconds, so a long start is seen to progress.
	readProgress := func(p eventstore.ReadProgress) {
		if !p.Done || p.Elapsed >= time.Second || p.Retries > 0 || p.Reopened > 0 {
			log.Info("reading the log", "read", p)
		}
	}
	startCtx := eventstore.WithReadProgress(ctx, readProgress)
	engineOpts := commands.Options{Logger: log, Observer: observe,
		Snapshots: commands.SnapshotOptions{Dir: filepath.Join(cfg.dataDir, "index"), Window: cfg.idWindow}}
	if cfg.natsURL != "" {
		// On a cluster, several instances may share the log: each writes
		// the partitions whose lease it holds and forwards the rest
		// (docs/architecture.md, "Several instances").
		clusterConn, err := link.dial("creditd-cluster")
		if err != nil {
			return err
		}
		defer clusterConn.Close() // after the engine hands its partitions over
		coordinator, err := eventstore.OpenCluster(ctx, clusterConn, replicas, cfg.leaseTTL)
		if err != nil {
			return err
		}
		instance := instanceName(cfg.instance)
		log = log.With("instance", instance)
		engineOpts.Logger = log
		engineOpts.Cluster = &commands.ClusterOptions{Coordinator: coordinator, Instance: instance, Observer: observe}
	}
	engine, err := commands.New(startCtx, store, engineOpts)
	if err != nil {
		return err
	}
	defer engine.Close()
	producers.UseKeys(engine)
	observe.WatchIDs(engine.IDsInMemory)

	// The read models catch up to the log's end as it stands now while
	// writes are served (readmodels.go): in place, or built afresh in bulk
	// when that is cheaper.
	readModels, err := openReadSide(ctx, store, log, filepath.Join(cfg.dataDir, readModelFile), hooks.readModelsProgress)
	if err != nil {
		return err
	}
	readModels.lag = observe
	defer readModels.close()
	projectionConn, err := link.dial("creditd-projection")
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := ingest.EnsureStreamsWith(ctx, js, ingest.StreamOptions{Replicas: replicas, DeadLetters: cfg.deadLetters}); err != nil {
		return err
	}
	webhookKey, err := loadSecret(filepath.Join(cfg.dataDir, webhookKeyFile), cfg.webhookKey, "cdw_")
	if err != nil {
		return err
	}
	if cfg.natsURL != "" && cfg.webhookKey == "" {
		// Each instance delivers the notices of the partitions it owns:
		// with keys of their own, a tenant's signatures would change at
		// every failover.
		log.Warn("on a cluster, give every instance the same --webhook-key: this one uses a key of its own, from its data dir", "file", filepath.Join(cfg.dataDir, webhookKeyFile))
	}
	ingestConn, err := link.dial("creditd-ingest")
	if err != nil {
		return err
	}
	consumeCtx, stopConsuming := context.WithCancel(context.Background())
	// A consumer that returns while creditd is still serving leaves it
	// accepting reads that never advance or NATS events nobody stores: that
	// is a stopped process pretending to run, so it ends creditd with an
	// error and the supervisor restarts it.
	died := make(chan error, 3)
	watch := func(name string, done chan<- error, run func() error) {
		err := run()
		if consumeCtx.Err() == nil {
			if err == nil {
				err = errors.New("returned unexpectedly")
			}
			died <- fmt.Errorf("%s consumer stopped: %w", name, err)
		}
		done <- err
	}
	ingestDone := make(chan error, 1)
	var respondDone chan error // once the HTTP API, which answers them, is made
	go watch("ingest", ingestDone, func() error {
		return ingest.Consume(consumeCtx, ingestConn, engine, ingest.Options{Workers: cfg.workers, Logger: log, Dead: observe.DeadLetter})
	})
	consumeDone := make(chan error, 1)
	go watch("projection", consumeDone, func() error {
		return readModels.run(eventstore.WithReadProgress(consumeCtx, readProgress), projectionConn)
	})
	if link.server != nil {
		go producers.Watch(consumeCtx, link.server)
	}
	if cfg.checkpoint > 0 {
		go func() {
			ticker := time.NewTicker(cfg.checkpoint)
			defer ticker.Stop()
			for {
				select {
				case <-consumeCtx.Done():
					return
				case <-ticker.C:
					if !engine.LeadsCheckpoints() {
						continue
					}
					if _, position, err := engine.Checkpoint(consumeCtx); err != nil {
						log.Warn("checkpoint", "err", err)
					} else {
						log.Info("checkpoint appended", "position", position)
					}
				}
			}
		}()
	}
	dispatchDone := make(chan struct{})
	if cfg.notices {
		// Notices are delivered from the live read models, once caught up.
		go func() {
			defer close(dispatchDone)
			live, ok := readModels.await(consumeCtx)
			if !ok {
				return
			}
			dispatcher := &projections.Dispatcher{DB: live.db, Projector: live.projector, NATS: nc, SigningKey: []byte(webhookKey), Log: log, Webhooks: cfg.webhooks}
			if cfg.natsURL != "" {
				// On a cluster, each tenant's notices are delivered by the
				// owner of its partition, and the instances share a record
				// of what was delivered, so a new owner does not send a
				// crossing again.
				record, err := projections.OpenDeliveryRecord(consumeCtx, nc, replicas)
				if err != nil {
					// Notices that nobody delivers would go unnoticed: stop
					// creditd, as a consumer that stops does.
					select {
					case died <- fmt.Errorf("notice delivery record: %w", err):
					default:
					}
					return
				}
				dispatcher.Owns, dispatcher.Record = engine.OwnsTenant, record
			}
			dispatcher.Run(consumeCtx)
		}()
	} else {
		close(dispatchDone)
	}
	defer func() {
		stopConsuming()
		<-dispatchDone
		if err := <-ingestDone; err != nil {
			log.Warn("ingest consumer", "err", err)
		}
		if err := <-consumeDone; err != nil {
			log.Warn("projection consumer", "err", err)
		}
		if respondDone != nil {
			if err := <-respondDone; err != nil {
				log.Warn("usage requests", "err", err)
			}
		}
	}()

	listener, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.httpAddr, err)
	}
	observe.WatchProjection(readModels.Position, store.LastPosition)
	observe.WatchReadModels(readModels.metrics)
	observe.WatchDeadLetters(func(ctx context.Context) (uint64, error) { return ingest.DeadLettersDropped(ctx, js) })
	observe.WatchIngest(func(ctx context.Context) (uint64, error) {
		consumer, err := js.Consumer(ctx, ingest.StreamName, ingest.ConsumerName)
		if err != nil {
			return 0, err
		}
		info, err := consumer.Info(ctx)
		if err != nil {
			return 0, err
		}
		return info.NumPending + uint64(info.NumAckPending), nil
	})
	apiConfig := httpapi.Config{
		Writer: engine, Reader: readModels, Projection: readModels, ReadModels: readModels, WriteChains: engine, Ownership: engine.Ownership,
		LogPosition: store.LastPosition, AdminToken: adminToken, Logger: log, WebhookSecret: func(tenantID int64) string { return projections.WebhookSecret([]byte(webhookKey), tenantID) }, Webhooks: cfg.webhooks,
		Verify:     readModels.verify,
		Middleware: observe.Middleware,
	}
	api := httpapi.New(apiConfig)
	requestConn, err := link.dial("creditd-usage-requests")
	if err != nil {
		return err
	}
	respondDone = make(chan error, 1)
	go watch("usage request", respondDone, func() error {
		return ingest.Respond(consumeCtx, requestConn, httpapi.NewUsageAnswerer(apiConfig), ingest.RespondOptions{Workers: cfg.requestWorkers, Logger: log, Observer: observe})
	})
	root := http.NewServeMux()
	root.Handle("GET /metrics", observe.Handler())
	root.Handle("/", api)
	srv := &http.Server{
		Handler:           root,
		ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, WriteTimeout: writeTimeout, IdleTimeout: idleTimeout,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(listener) }()
	if hooks.listening != nil {
		hooks.listening(listener.Addr().String())
	}
	log.Info("creditd serving", "http", "http://"+listener.Addr().String(), "data_dir", cfg.dataDir, "nats", natsMode(cfg), "nats_listen", link.clientURL)

	var stopErr error
	select {
	case err := <-serveErr:
		return err
	case stopErr = <-died:
		log.Error("shutting down", "err", stopErr)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownWait)
	defer cancel()
	// In-flight requests finish before the engine and the store close, so
	// every answered write was acknowledged by the store.
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	return stopErr
}

func natsMode(cfg serveConfig) string {
	if cfg.natsURL == "" {
		return "embedded"
	}
	return "external"
}

// readModelFile is the SQLite read-model database in the data dir.
const readModelFile = "readmodel.db"

// natsLink opens connections to the embedded server or the external one.
// Each part of creditd gets its own connection (Watermill drains the one it
// is given when it stops).
type natsLink struct {
	dial  func(name string) (*nats.Conn, error)
	close func()
	// clientURL is where producers connect, when the embedded server listens.
	clientURL string
	// server is the embedded server, nil in external mode.
	server *server.Server
}

// openNATS starts the embedded server, or connects to the external one.
// producers authenticates tenant producers on the embedded server (nil:
// only creditd and the operator token may connect).
func openNATS(cfg serveConfig, producers *ingest.Producers, log *slog.Logger) (natsLink, error) {
	if cfg.natsURL != "" {
		return natsLink{
			dial: func(name string) (*nats.Conn, error) {
				// No reconnect buffer: while NATS is away, appends fail at
				// once (503, retry) instead of queueing until a timeout.
				nc, err := nats.Connect(cfg.natsURL, nats.Name(name), nats.MaxReconnects(-1), nats.Timeout(natsConnectWait), nats.ReconnectBufSize(-1),
					nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("nats disconnected", "conn", name, "err", err) }),
					nats.ReconnectHandler(func(*nats.Conn) { log.Info("nats reconnected", "conn", name) }))
				if err != nil {
					return nil, fmt.Errorf("connect %s: %w", cfg.natsURL, err)
				}
				return nc, nil
			},
			close: func() {},
		}, nil
	}
	// Producers authenticate with their tenant's API key and get only
	// their tenant's subjects, so the listener may face other hosts; TLS
	// (--nats-tls-cert) protects the keys on the way.
	if (cfg.natsTLS.cert == "") != (cfg.natsTLS.key == "") {
		return natsLink{}, errors.New("--nats-tls-cert and --nats-tls-key go together")
	}
	var auth server.Authentication
	if producers != nil {
		auth = producers
	}
	emb, err := eventstore.StartEmbedded(eventstore.EmbeddedOptions{StoreDir: filepath.Join(cfg.dataDir, "jetstream"), Listen: cfg.natsListen,
		Token: cfg.natsToken, Producers: auth, ProducerServices: ingest.ProducerServices, ProducerStreams: ingest.ProducerStreams,
		TLSCertFile: cfg.natsTLS.cert, TLSKeyFile: cfg.natsTLS.key})
	if err != nil {
		return natsLink{}, err
	}
	return natsLink{dial: emb.Connect, close: emb.Shutdown, clientURL: emb.ClientURL(), server: emb.Server()}, nil
}

const (
	adminTokenFile = "admin-token"
	webhookKeyFile = "webhook-key"
)

// loadSecret returns configured, else the secret stored at path, else a new
// random one it stores there.
func loadSecret(path, configured, prefix string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b)), nil
	}
	b := make([]byte, 24)
	rand.Read(b)
	secret := prefix + hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("store %s: %w", path, err)
	}
	return secret, nil
}

// loadAdminToken returns the configured token, else the one stored in the
// data dir, else a new random one that it stores (generated = true).
func loadAdminToken(dataDir, configured string) (token string, generated bool, err error) {
	if configured != "" {
		return configured, false, nil
	}
	path := filepath.Join(dataDir, adminTokenFile)
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b)), false, nil
	}
	b := make([]byte, 24)
	rand.Read(b)
	token = "cda_" + hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("store admin token: %w", err)
	}
	return token, true, nil
}
