package httpapi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
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
	Status string `json:"status" enum:"ready,unready"`
	// Writes and Reads are each side's readiness: writes are accepted once
	// the write side is loaded, before the read models catch up.
	Writes             string           `json:"writes" enum:"ready,unready"`
	Reads              string           `json:"reads" enum:"ready,catching_up,unready"`
	Reason             string           `json:"reason,omitempty"`
	LastError          string           `json:"last_error,omitempty"`
	WriteError         string           `json:"write_error,omitempty"`
	CatchUp            *catchUpResponse `json:"catch_up,omitempty"`
	ProjectionPosition *uint64          `json:"projection_position,omitempty"`
	LogPosition        *uint64          `json:"log_position,omitempty"`
	ProjectionLag      *uint64          `json:"projection_lag,omitempty"`
	StalledSeconds     int64            `json:"stalled_seconds,omitempty"`
	// Ownership is this instance's share of the partitions, when it runs
	// as one of several on a cluster.
	Ownership *ownershipResponse `json:"ownership,omitempty"`
}

// ownershipResponse says which partitions this instance writes, and who
// writes the others, as its last read of the leases saw it.
type ownershipResponse struct {
	Instance   string `json:"instance"`
	Partitions int    `json:"partitions"`
	// Owned are the partitions whose lease this instance holds now.
	Owned []int `json:"owned"`
	// Members are the live instances.
	Members []string `json:"members"`
	// Owners lists each leased partition's holder.
	Owners []partitionOwner `json:"owners"`
}

type partitionOwner struct {
	Partition int    `json:"partition"`
	Instance  string `json:"instance"`
}

// catchUpResponse is the read models' first catch-up after the start.
type catchUpResponse struct {
	Done bool   `json:"done"`
	Mode string `json:"mode" enum:"bulk,in_place"`
	// Position is the last log position the catch-up applied, Target the
	// log's last position when creditd started.
	Position uint64 `json:"position"`
	Target   uint64 `json:"target"`
}

// Readiness scopes (/readyz?scope=): a producer asks whether writes are
// accepted, a reader whether reads are fresh; no scope asks both.
const (
	readyScopeWrites = "writes"
	readyScopeReads  = "reads"
)

// readyz reports whether writes are accepted and reads are fresh, and
// answers 200 when the asked scope is ready (both without scope).
//
// Writes are ready when the log is reachable and no writer stands at a
// message creditd did not write (write_error). Reads are ready when the
// read models' first catch-up after the start is done (catch_up), they are
// at most readyLagMax positions behind the log, they have not stood still
// for more than readyStallMax with work pending, and they can be written
// (last_error: a full disk, a message creditd did not write).
func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	scope := r.URL.Query().Get("scope")
	if scope != "" && scope != readyScopeWrites && scope != readyScopeReads {
		p := newProblem(http.StatusBadRequest, "invalid-request", "scope must be writes or reads, or absent for both")
		p.Errors = []ProblemError{{Location: "query.scope", Message: "must be writes or reads", Value: scope}}
		writeProblem(w, r, a.log, p)
		return
	}
	body := readyResponse{Writes: "ready", Reads: "ready"}
	if a.cfg.Ownership != nil {
		if o, ok := a.cfg.Ownership(); ok {
			own := &ownershipResponse{Instance: o.Instance, Partitions: o.Partitions, Owned: o.Owned, Members: o.Members, Owners: []partitionOwner{}}
			for _, p := range slices.Sorted(maps.Keys(o.Owners)) {
				own.Owners = append(own.Owners, partitionOwner{Partition: p, Instance: o.Owners[p]})
			}
			if own.Members == nil {
				own.Members = []string{}
			}
			body.Ownership = own
		}
	}
	// Each side's first reason to be unready, in the order they are told.
	var writesWhy, readsWhy string
	catchingUp := false
	if a.cfg.ReadModels != nil {
		state := a.cfg.ReadModels.CatchUp()
		body.CatchUp = &catchUpResponse{Done: state.Done, Mode: state.Mode, Position: state.Position, Target: state.Target}
		if !state.Done {
			catchingUp = true
			body.Reads = "catching_up"
			readsWhy = fmt.Sprintf("read models are catching up with the log after a start (%s): position %d of %d", state.Mode, state.Position, state.Target)
		}
	}
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
			body.Reads, body.LastError = "unready", err.Error()
			readsWhy = reason + err.Error()
		}
	}
	if a.cfg.WriteChains != nil {
		if err := a.cfg.WriteChains.ChainErr(); err != nil {
			// Writes to that subject's tenants fail until the operator
			// sets the message aside; the error says how.
			body.Writes, body.WriteError = "unready", err.Error()
			writesWhy = "writes stopped at a message creditd did not write: " + err.Error()
		}
	}
	unreachable := false
	if a.cfg.LogPosition != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyProbeLimit)
		defer cancel()
		last, err := a.cfg.LogPosition(ctx)
		if err != nil {
			unreachable = true
			body.Writes, body.Reads = "unready", "unready"
		} else {
			lag := uint64(0)
			if last > projected {
				lag = last - projected
			}
			body.LogPosition, body.ProjectionLag = &last, &lag
			// The first catch-up is its own reason: a bulk build stands at
			// one position while it builds the ledger's indexes.
			stalled := a.stall.stalledFor(projected, lag > 0 && !catchingUp, time.Now())
			switch {
			case stalled > readyStallMax:
				body.StalledSeconds = int64(stalled.Seconds())
				body.Reads = "unready"
				if readsWhy == "" {
					readsWhy = "the projection has not advanced for " + stalled.Round(time.Second).String() + " with commits pending"
				}
			case lag > readyLagMax && !catchingUp:
				body.Reads = "unready"
				if readsWhy == "" {
					readsWhy = "read models are behind the log"
				}
			}
		}
	}
	var why string
	switch scope {
	case readyScopeWrites:
		why = writesWhy
	case readyScopeReads:
		why = readsWhy
	default:
		// A projection that cannot write is told before a stopped writer,
		// and a stopped writer before a catch-up, a stall or a lag.
		why = writesWhy
		if body.LastError != "" || why == "" {
			why = readsWhy
		}
	}
	if unreachable {
		why = "event store unreachable"
	}
	body.Status, body.Reason = "ready", why
	status := http.StatusOK
	if why != "" {
		body.Status, status = "unready", http.StatusServiceUnavailable
	}
	writeJSON(w, status, body)
}
