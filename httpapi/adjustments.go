package httpapi

import (
	"errors"
	"net/http"

	"github.com/creditd/creditd/domain"
)

type adjustmentRequest struct {
	AdjustmentID string `json:"adjustment_id"`
	CreditType   string `json:"credit_type"`
	Amount       Amount `json:"amount" required:"true"`
	Reason       string `json:"reason" required:"true"`
	Reference    string `json:"reference"`
}

type adjustmentResponse struct {
	AdjustmentID string `json:"adjustment_id"`
	CreditType   string `json:"credit_type"`
	Amount       Number `json:"amount"`
	Reason       string `json:"reason"`
	Reference    string `json:"reference,omitempty"`
	Status       string `json:"status" enum:"accepted,duplicate"`
	Position     uint64 `json:"position"`
}

func (a *API) adjust(w http.ResponseWriter, r *http.Request, tenantID int64) {
	var req adjustmentRequest
	if err := decodeJSON(w, r, bodyMax, &req); err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	var check fieldCheck
	req.Amount.check(&check, "amount", true)
	adjustmentID := writeID(&check, r, req.AdjustmentID, "adjustment_id", "adj_")
	if err := check.err(); err != nil {
		writeProblem(w, r, a.log, validationProblem("body.", err))
		return
	}
	creditType := creditTypeOrDefault(req.CreditType)
	c := domain.Adjust{AdjustmentID: adjustmentID, Amount: req.Amount.Value, Reason: req.Reason, Reference: req.Reference}
	if err := errors.Join(domain.ValidateCreditType(creditType), c.Validate()); err != nil {
		writeProblem(w, r, a.log, validationProblem("body.", err))
		return
	}
	res, err := a.writer.Adjust(r.Context(), tenantID, creditType, c)
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	e := res.Events[0].(domain.CreditsAdjusted)
	writeJSON(w, createdStatus(res.Duplicate), adjustmentResponse{AdjustmentID: e.AdjustmentID, CreditType: creditType,
		Amount: Number(e.Amount), Reason: e.Reason, Reference: e.Reference, Status: string(res.Status), Position: res.Position})
}
