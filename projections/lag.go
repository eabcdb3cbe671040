package projections

import "time"

// LagObserver is told, for each commit the live projection (Consume)
// brings into the read models, how long after the log stored it the read
// models held it: how stale an answer of the API could be. The start is
// the stream's own storage time, so with a NATS server on another host the
// figure includes the two clocks' difference (a negative one counts as 0).
//
// A commit's lag is measured where it lands, not sampled from the log's
// position: asking the stream for its last position takes tens of
// milliseconds under a heavy load, and a sample taken that way dates a
// position by when the question left, not by when the log held it.
type LagObserver interface {
	ProjectionLag(lag time.Duration)
}

// ObserveLag sets what is told the live projection's lag (nil: nothing).
// It may be called while the projection runs.
func (p *Projector) ObserveLag(o LagObserver) {
	if o == nil {
		p.lag.Store(nil)
		return
	}
	p.lag.Store(&o)
}

// reportLag tells the lag observer of the batch's deliveries that are now
// applied, each once. A delivery a catch-up from the log applied before it
// arrived is reported with its batch: its lag is then overstated by the
// delivery's own delay, never understated.
func (a *applier) reportLag(batch []delivery) {
	o := a.p.lag.Load()
	if o == nil {
		return
	}
	now, applied := time.Now(), a.p.Position()
	for _, m := range batch {
		if m.Sequence > a.lagReported && m.Sequence <= applied && !m.Time.IsZero() {
			(*o).ProjectionLag(max(0, now.Sub(m.Time)))
			a.lagReported = m.Sequence
		}
	}
}
