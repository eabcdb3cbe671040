package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// positionWaitMax bounds how long a read waits for the read models to
// reach the position it asked for.
const positionWaitMax = 5 * time.Second

// minPositionHeader is the header form of min_position.
const minPositionHeader = "X-Min-Position"

// catchUpRetryAfterSeconds is what a read refused during the read models'
// first catch-up tells clients to wait: that catch-up takes seconds to
// minutes, so polling every second only adds load.
const catchUpRetryAfterSeconds = 5

// awaitCatchUp makes a read wait, up to positionWaitMax, for the read
// models' first catch-up after a start (Config.ReadModels), so a restart
// that catches up in a moment costs a read some latency, not an error. It
// answers 503 read-models-catching-up, naming the position reached and the
// target, when that takes longer, and reports false when it has answered.
// A read whose min_position the read models already hold, while they catch
// up in place, is served at once: what they hold is a consistent prefix
// of the log.
func (a *API) awaitCatchUp(w http.ResponseWriter, r *http.Request) bool {
	if a.cfg.ReadModels == nil {
		return true
	}
	state := a.cfg.ReadModels.CatchUp()
	if state.Done {
		return true
	}
	if text, _ := requestedPosition(r); text != "" && state.Mode == CatchUpInPlace {
		position, err := strconv.ParseUint(text, 10, 64)
		if err != nil || position <= state.Position {
			return true // awaitPosition answers a malformed one
		}
	}
	timer := time.NewTimer(positionWaitMax)
	defer timer.Stop()
	select {
	case <-a.cfg.ReadModels.CaughtUp():
		return true
	case <-r.Context().Done():
		return false // a client gone needs no answer
	case <-timer.C:
	}
	state = a.cfg.ReadModels.CatchUp()
	how := "being built afresh from the log"
	if state.Mode == CatchUpInPlace {
		how = "applying the log since they were last written"
	}
	w.Header().Set("Retry-After", strconv.Itoa(catchUpRetryAfterSeconds))
	writeProblem(w, r, a.log, newProblem(http.StatusServiceUnavailable, "read-models-catching-up", fmt.Sprintf(
		"the read models are catching up with the log after a start (%s): at position %d of %d; writes are accepted, reads resume once position %d is reached (see /readyz)",
		how, state.Position, state.Target, state.Target)))
	return false
}

// requestedPosition is the read's min_position (query) or X-Min-Position
// (header) as given, and where it was found; "" when none.
func requestedPosition(r *http.Request) (text, location string) {
	text, location = r.URL.Query().Get(minPositionParam), "query."+minPositionParam
	if text == "" {
		text, location = r.Header.Get(minPositionHeader), "header."+minPositionHeader
	}
	return text, location
}

// awaitPosition makes a read wait until the read models include the
// position a write answered with (min_position or X-Min-Position), so a
// client reads its own writes. It answers 503 when that takes longer than
// positionWaitMax, and reports false when it has answered.
func (a *API) awaitPosition(w http.ResponseWriter, r *http.Request) bool {
	text, location := requestedPosition(r)
	if text == "" || a.cfg.Projection == nil {
		return true
	}
	position, err := strconv.ParseUint(text, 10, 64)
	if err != nil {
		p := newProblem(http.StatusBadRequest, "invalid-request", "min_position must be a stream position returned by a write")
		p.Errors = []ProblemError{{Location: location, Message: "must be a non-negative integer", Value: text}}
		writeProblem(w, r, a.log, p)
		return false
	}
	ctx, cancel := context.WithTimeout(r.Context(), positionWaitMax)
	defer cancel()
	if err := a.cfg.Projection.WaitFor(ctx, position); err != nil {
		// Our own deadline passed (not the client's): the read models are
		// late, a 503 to retry. A client gone needs no answer.
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil {
			writeProblem(w, r, a.log, newProblem(http.StatusServiceUnavailable, "not-yet-projected",
				"the read models have not reached position "+text+" within 5 s; retry"))
		}
		return false
	}
	w.Header().Set("X-Position", strconv.FormatUint(a.cfg.Projection.Position(), 10))
	return true
}
