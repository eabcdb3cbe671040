// Package metrics exposes creditd's Prometheus metrics. Components report
// through small hooks they declare themselves (commands.Observer, the HTTP
// middleware here); nothing inside a handler knows about Prometheus.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// scrapeTimeout bounds the store calls a scrape makes.
const scrapeTimeout = 2 * time.Second

// Metrics holds creditd's collectors on a registry of its own.
type Metrics struct {
	Registry  *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	events    prometheus.Counter
	commits   prometheus.Counter
	conflicts prometheus.Counter
	retries   prometheus.Counter
	dead      prometheus.Counter
	deadBy    *prometheus.CounterVec
	lag       prometheus.Histogram
	// usageRequests and usageRefused count NATS usage requests: answered,
	// by status, and refused unanswered, by reason.
	usageRequests *prometheus.CounterVec
	usageRefused  *prometheus.CounterVec
	clusterMetrics
}

// New registers the collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "creditd_http_requests_total", Help: "HTTP requests by route and status."},
			[]string{"route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "creditd_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"route"}),
		events:    prometheus.NewCounter(prometheus.CounterOpts{Name: "creditd_events_appended_total", Help: "Events appended to the log."}),
		commits:   prometheus.NewCounter(prometheus.CounterOpts{Name: "creditd_commits_total", Help: "Commits (stored messages) appended to the log."}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "creditd_append_conflicts_total", Help: "Appends refused because another writer moved the subject."}),
		retries:   prometheus.NewCounter(prometheus.CounterOpts{Name: "creditd_append_retries_total", Help: "Appends retried after a failure with an unknown outcome."}),
		dead:      prometheus.NewCounter(prometheus.CounterOpts{Name: "creditd_usage_dead_letters_total", Help: "Usage messages dead-lettered."}),
		deadBy: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "creditd_usage_dead_letters_by_reason_total", Help: "Usage messages dead-lettered, by kind of reason."},
			[]string{"reason"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "creditd_projection_lag_seconds",
			Help:    "Time from the log storing a commit to the read models holding it, per commit the live projection applies.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}),
		usageRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "creditd_usage_requests_total",
			Help: "NATS usage requests (credits.record.<tenant_id>) answered, by the HTTP status of the answer."}, []string{"status"}),
		usageRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "creditd_usage_requests_refused_total",
			Help: "NATS usage requests neither recorded nor answered, by reason (no_reply, reply_not_inbox)."}, []string{"reason"}),
	}
	m.Registry.MustRegister(m.requests, m.latency, m.events, m.commits, m.conflicts, m.retries, m.dead, m.deadBy, m.lag, m.usageRequests, m.usageRefused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Committed, Conflicted and Retried implement commands.Observer.
func (m *Metrics) Committed(events int) {
	m.commits.Inc()
	m.events.Add(float64(events))
}

// Conflicted counts an append refused by the fence.
func (m *Metrics) Conflicted() { m.conflicts.Inc() }

// Retried counts an append retried after an unknown outcome.
func (m *Metrics) Retried() { m.retries.Inc() }

// DeadLetter counts a dead letter by the first words of its reason.
func (m *Metrics) DeadLetter(reason string) {
	kind := reason
	for i, c := range reason {
		if c == ':' {
			kind = reason[:i]
			break
		}
	}
	if len(kind) > 40 {
		kind = kind[:40]
	}
	m.dead.Inc()
	m.deadBy.WithLabelValues(kind).Inc()
}

// UsageRequest counts a NATS usage request answered with status
// (ingest.RequestObserver).
func (m *Metrics) UsageRequest(status int) {
	m.usageRequests.WithLabelValues(strconv.Itoa(status)).Inc()
}

// UsageRequestRefused counts a NATS usage request dropped unanswered.
func (m *Metrics) UsageRequestRefused(reason string) { m.usageRefused.WithLabelValues(reason).Inc() }

// WatchUsageRequestsDropped reports the usage requests NATS dropped before
// creditd took them (its pending bounds passed), read at each scrape.
func (m *Metrics) WatchUsageRequestsDropped(dropped func() (int, error)) {
	var last atomic.Int64
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "creditd_usage_requests_dropped_total",
		Help: "NATS usage requests dropped before creditd took them: more were waiting than its bounds; their producers retry."},
		func() float64 {
			if n, err := dropped(); err == nil {
				last.Store(int64(n))
			}
			return float64(last.Load())
		}))
}

// ProjectionLag implements projections.LagObserver.
func (m *Metrics) ProjectionLag(lag time.Duration) { m.lag.Observe(lag.Seconds()) }

// WatchProjection reports the read models' position and their lag behind
// the log, read at each scrape.
func (m *Metrics) WatchProjection(position func() uint64, last func(context.Context) (uint64, error)) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "creditd_projection_position", Help: "Last log position in the read models."},
			func() float64 { return float64(position()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "creditd_projection_lag_positions", Help: "Log positions the read models are behind."},
			func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
				defer cancel()
				l, err := last(ctx)
				if err != nil {
					return -1
				}
				return float64(l) - float64(position())
			}),
	)
}

// CatchUp is how far the read models' first catch-up after the start has
// come (see httpapi.CatchUp).
type CatchUp struct {
	Done, Bulk       bool
	Position, Target uint64
}

// WatchReadModels reports the read models' first catch-up after the start,
// read at each scrape: whether it is done, whether it builds them in bulk,
// the position it reached and the one it aims at.
func (m *Metrics) WatchReadModels(state func() CatchUp) {
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "creditd_read_models_ready", Help: "1 once the read models' catch-up after the start reached the log's end as it stood then: reads are served."},
			func() float64 { return flag(state().Done) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "creditd_read_models_bulk_build", Help: "1 while the read models are built afresh, in bulk, beside the live file."},
			func() float64 { s := state(); return flag(s.Bulk && !s.Done) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "creditd_read_models_catch_up_position", Help: "Last log position the read models' catch-up after the start applied."},
			func() float64 { return float64(state().Position) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "creditd_read_models_catch_up_target_position", Help: "The log's last position at the start: where the read models' catch-up ends."},
			func() float64 { return float64(state().Target) }),
	)
}

// WatchIngest reports the usage messages waiting on the work stream.
func (m *Metrics) WatchIngest(pending func(context.Context) (uint64, error)) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "creditd_ingest_pending_messages", Help: "Usage messages waiting for creditd on NATS."},
		func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
			defer cancel()
			n, err := pending(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		}))
}

// WatchIDs reports the ids the partition writers keep in memory since
// their last snapshots, and the budget they snapshot to stay under
// (--id-window), read at each scrape.
func (m *Metrics) WatchIDs(inMemory func() (held, budget int)) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "creditd_ids_in_memory", Help: "Write ids the partition writers keep in memory since their last snapshots (about 65 bytes each), those of snapshots being written included."},
			func() float64 { held, _ := inMemory(); return float64(held) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "creditd_ids_in_memory_budget", Help: "The ids the partition writers keep in memory together before they snapshot (--id-window)."},
			func() float64 { _, budget := inMemory(); return float64(budget) }))
}

// WatchDeadLetters reports the dead letters dropped from the dead-letter
// stream (by its limits, or an operator's purge), read at each scrape; a
// failed read reports the last value read, so the counter never dips.
func (m *Metrics) WatchDeadLetters(dropped func(context.Context) (uint64, error)) {
	var last atomic.Uint64
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "creditd_usage_dead_letters_dropped_total",
		Help: "Dead letters the dead-letter stream no longer holds: dropped by its age or byte limit, or purged by an operator."},
		func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
			defer cancel()
			if n, err := dropped(ctx); err == nil {
				last.Store(n)
			}
			return float64(last.Load())
		}))
}

// Middleware counts requests by route pattern (never the raw path, whose
// ids would explode the label set) and status, and times them.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		m.requests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
		m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(status int) {
	s.status = status
	s.ResponseWriter.WriteHeader(status)
}
