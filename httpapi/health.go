package httpapi

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// Readiness bounds.
const (
	// readyLagMax is how many positions the read models may be behind the
	// log and still be called ready.
	readyLagMax     = 10_000
	readyProbeLimit = 2 * time.Second
	// readyStallMax is how long the projection may stand still with work
	// pending: a stuck consumer or a commit it cannot apply shows as a lag
	// of a few positions that never shrinks, which readyLagMax misses. A
	// bulk catch-up commits every few hundred milliseconds, far inside it.
	readyStallMax = 5 * time.Second
)

// stallWatch remembers since when the projection has stood at one position
// with work pending, as seen by /readyz. Wall-clock time: the API's Clock is
// for reads and may be fixed in tests.
type stallWatch struct {
	mu       sync.Mutex
	position uint64
	since    time.Time
}

// stalledFor returns how long the projection has stood at projected with
// work pending; zero when nothing is pending or it moved since last seen.
func (s *stallWatch) stalledFor(projected uint64, pending bool, now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !pending {
		s.since = time.Time{}
		return 0
	}
	if s.since.IsZero() || s.position != projected {
		s.position, s.since = projected, now
		return 0
	}
	return now.Sub(s.since)
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, healthResponse{Status: "ok"})
}

// foreignMessage is an error about a message creditd did not write in its
// log (eventstore.ForeignMessageError).
type foreignMessage interface{ ForeignMessage() }

// healthResponse answers /healthz.
type healthResponse struct {
	Status string `json:"status" enum:"ok"`
}

// readyResponse answers /readyz; a member is absent when its source is
// not configured or not reachable.
type readyResponse struct {
	Status             string  `json:"status" enum:"ready,unready"`
	Reason             string  `json:"reason,omitempty"`
	LastError          string  `json:"last_error,omitempty"`
	WriteError         string  `json:"write_error,omitempty"`
	ProjectionPosition *uint64 `json:"projection_position,omitempty"`
	LogPosition        *uint64 `json:"log_position,omitempty"`
	ProjectionLag      *uint64 `json:"projection_lag,omitempty"`
	StalledSeconds     int64   `json:"stalled_seconds,omitempty"`
}

// readyz reports whether reads are fresh: the log is reachable, the read
// models are at most readyLagMax positions behind it, and they have not
// stood still for more than readyStallMax with work pending, and no writer
// stands at a message creditd did not write. An unready answer carries the
// projection's last error (last_error) and the writers' (write_error), when
// they have one.
func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	body := readyResponse{Status: "ready"}
	status := http.StatusOK
	var projected uint64
	if a.cfg.Projection != nil {
		projected = a.cfg.Projection.Position()
		body.ProjectionPosition = &projected
		if err := a.cfg.Projection.Err(); err != nil {
			// Reads still serve the last projected state; new writes are
			// stored in the log and will be applied once this clears.
			reason := "read models cannot be written: "
			var foreign foreignMessage
			if errors.As(err, &foreign) {
				// The error names the message (subject, position) and
				// the operator's way out.
				reason = "read models stopped at a message creditd did not write: "
			}
			body.Status, body.Reason, body.LastError = "unready", reason+err.Error(), err.Error()
			status = http.StatusServiceUnavailable
		}
	}
	if a.cfg.WriteChains != nil {
		if err := a.cfg.WriteChains.ChainErr(); err != nil {
			// Writes to that subject's tenants fail until the operator
			// sets the message aside; the error says how.
			body.WriteError = err.Error()
			if status == http.StatusOK {
				body.Status, body.Reason = "unready", "writes stopped at a message creditd did not write: "+err.Error()
			}
			status = http.StatusServiceUnavailable
		}
	}
	if a.cfg.LogPosition != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyProbeLimit)
		defer cancel()
		last, err := a.cfg.LogPosition(ctx)
		if err != nil {
			body.Status, body.Reason = "unready", "event store unreachable"
			status = http.StatusServiceUnavailable
		} else {
			lag := uint64(0)
			if last > projected {
				lag = last - projected
			}
			body.LogPosition, body.ProjectionLag = &last, &lag
			stalled := a.stall.stalledFor(projected, lag > 0, time.Now())
			switch {
			case stalled > readyStallMax:
				body.StalledSeconds = int64(stalled.Seconds())
				if status == http.StatusOK {
					body.Status, body.Reason = "unready", "the projection has not advanced for "+stalled.Round(time.Second).String()+" with commits pending"
				}
				status = http.StatusServiceUnavailable
			case lag > readyLagMax && status == http.StatusOK:
				body.Status, body.Reason = "unready", "read models are behind the log"
				status = http.StatusServiceUnavailable
			}
		}
	}
	writeJSON(w, status, body)
}
