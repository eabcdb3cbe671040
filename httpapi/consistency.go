package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// positionWaitMax bounds how long a read waits for the read models to
// reach the position it asked for.
const positionWaitMax = 5 * time.Second

// minPositionHeader is the header form of min_position.
const minPositionHeader = "X-Min-Position"

// awaitPosition makes a read wait until the read models include the
// position a write answered with (min_position or X-Min-Position), so a
// client reads its own writes. It answers 503 when that takes longer than
// positionWaitMax, and reports false when it has answered.
func (a *API) awaitPosition(w http.ResponseWriter, r *http.Request) bool {
	text, location := r.URL.Query().Get(minPositionParam), "query."+minPositionParam
	if text == "" {
		text, location = r.Header.Get(minPositionHeader), "header."+minPositionHeader
	}
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
