package httpapi

import (
	"net/http"

	"github.com/creditd/creditd/commands"
)

// checkpointResponse answers POST /v1/checkpoints.
type checkpointResponse struct {
	Position   uint64              `json:"position"`
	Checkpoint commands.Checkpoint `json:"checkpoint"`
}

func (a *API) checkpoint(w http.ResponseWriter, r *http.Request) {
	cp, position, err := a.writer.Checkpoint(r.Context())
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, checkpointResponse{Position: position, Checkpoint: cp})
}

// auditVerify answers the tenant's verification report: 200 whether or not
// it found differences (the report's "ok" says), 503 when unavailable.
func (a *API) auditVerify(w http.ResponseWriter, r *http.Request, tenantID int64) {
	if a.cfg.Verify == nil {
		writeProblem(w, r, a.log, newProblem(http.StatusServiceUnavailable, "unavailable", "verification is not available on this server"))
		return
	}
	report, err := a.cfg.Verify(r.Context(), tenantID)
	if err != nil {
		a.writeReadError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, report)
}
