package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/creditd/creditd/eventstore"
)

// Readiness bounds.
const (
	// readyLagMax is how many positions the read models may be behind the
	// log and still be called ready.
	readyLagMax     = 10_000
	readyProbeLimit = 2 * time.Second
)

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz reports whether reads are fresh: the log is reachable and the read
// models are at most readyLagMax positions behind it.
func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{"status": "ready"}
	status := http.StatusOK
	var projected uint64
	if a.cfg.Projection != nil {
		projected = a.cfg.Projection.Position()
		body["projection_position"] = projected
		if err := a.cfg.Projection.Err(); err != nil {
			// Reads still serve the last projected state; new writes are
			// stored in the log and will be applied once this clears.
			reason := "read models cannot be written: "
			if eventstore.IsForeign(err) {
				// The error names the message (subject, position) and
				// the operator's way out.
				reason = "read models stopped at a message creditd did not write: "
			}
			body["status"], body["reason"] = "unready", reason+err.Error()
			status = http.StatusServiceUnavailable
		}
	}
	if a.cfg.LogPosition != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyProbeLimit)
		defer cancel()
		last, err := a.cfg.LogPosition(ctx)
		if err != nil {
			body["status"], body["reason"] = "unready", "event store unreachable"
			status = http.StatusServiceUnavailable
		} else {
			lag := uint64(0)
			if last > projected {
				lag = last - projected
			}
			body["log_position"], body["projection_lag"] = last, lag
			if lag > readyLagMax {
				body["status"], body["reason"] = "unready", "read models are behind the log"
				status = http.StatusServiceUnavailable
			}
		}
	}
	writeJSON(w, status, body)
}
