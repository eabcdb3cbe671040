package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// clusterMetrics are partition ownership's: which partitions this
// instance owns, its lease renewals and losses, and the writes it
// forwarded to other owners with their latency. Registered on the first
// report, so an instance running alone shows none of them.
type clusterMetrics struct {
	once      sync.Once
	owned     *prometheus.GaugeVec
	ownedN    prometheus.Gauge
	renewals  prometheus.Counter
	losses    *prometheus.CounterVec
	forwarded *prometheus.CounterVec
	forwardAt prometheus.Histogram

	mu       sync.Mutex
	previous []int
}

func (m *Metrics) cluster() *clusterMetrics {
	c := &m.clusterMetrics
	c.once.Do(func() {
		c.owned = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "creditd_partition_owned", Help: "1 for each partition this instance owns (holds the lease of) now."}, []string{"partition"})
		c.ownedN = prometheus.NewGauge(prometheus.GaugeOpts{Name: "creditd_partitions_owned", Help: "Partitions this instance owns now."})
		c.renewals = prometheus.NewCounter(prometheus.CounterOpts{Name: "creditd_lease_renewals_total", Help: "Partition leases renewed."})
		c.losses = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "creditd_lease_losses_total", Help: "Partition leases lost (expired or taken) rather than handed over."}, []string{"partition"})
		c.forwarded = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "creditd_forwarded_writes_total", Help: "Writes forwarded to the owner of their partition, by outcome (ok: the owner answered)."}, []string{"outcome"})
		c.forwardAt = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "creditd_forward_duration_seconds", Help: "Time from forwarding a write to the owner's answer.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}})
		m.Registry.MustRegister(c.owned, c.ownedN, c.renewals, c.losses, c.forwarded, c.forwardAt)
	})
	return c
}

// Owned, LeaseRenewed, LeaseLost and Forwarded implement
// commands.ClusterObserver.
func (m *Metrics) Owned(partitions []int) {
	c := m.cluster()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.previous {
		c.owned.WithLabelValues(strconv.Itoa(p)).Set(0)
	}
	for _, p := range partitions {
		c.owned.WithLabelValues(strconv.Itoa(p)).Set(1)
	}
	c.ownedN.Set(float64(len(partitions)))
	c.previous = append(c.previous[:0], partitions...)
}

// LeaseRenewed counts a renewal.
func (m *Metrics) LeaseRenewed() { m.cluster().renewals.Inc() }

// LeaseLost counts a lease lost by its partition.
func (m *Metrics) LeaseLost(partition int) {
	m.cluster().losses.WithLabelValues(strconv.Itoa(partition)).Inc()
}

// Forwarded counts a forwarded write and its latency.
func (m *Metrics) Forwarded(elapsed time.Duration, err error) {
	c := m.cluster()
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	c.forwarded.WithLabelValues(outcome).Inc()
	c.forwardAt.Observe(elapsed.Seconds())
}
