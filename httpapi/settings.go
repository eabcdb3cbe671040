package httpapi

import (
	"net/http"

	"github.com/creditd/creditd/domain"
)

type autoReloadRequest struct {
	CreditType string `json:"credit_type"`
	Enabled    bool   `json:"enabled"`
	Threshold  Amount `json:"threshold"`
	Amount     Amount `json:"amount"`
}

type autoReloadResponse struct {
	CreditType string `json:"credit_type"`
	Enabled    bool   `json:"enabled"`
	Threshold  Number `json:"threshold"`
	Amount     Number `json:"amount"`
	Position   uint64 `json:"position"`
}

func (a *API) configureAutoReload(w http.ResponseWriter, r *http.Request, tenantID int64) {
	var req autoReloadRequest
	if err := decodeJSON(w, r, bodyMax, &req); err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	var check fieldCheck
	check.creditType("credit_type", req.CreditType, true)
	req.Threshold.check(&check, "threshold", req.Enabled)
	req.Amount.check(&check, "amount", req.Enabled)
	if err := check.err(); err != nil {
		writeProblem(w, r, a.log, validationProblem("body.", err))
		return
	}
	creditType := creditTypeOrDefault(req.CreditType)
	c := domain.ConfigureAutoReload{Enabled: req.Enabled, Threshold: req.Threshold.Value, Amount: req.Amount.Value}
	res, err := a.writer.ConfigureAutoReload(r.Context(), tenantID, creditType, c)
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	writeJSON(w, http.StatusOK, autoReloadResponse{CreditType: creditType, Enabled: c.Enabled, Threshold: Number(c.Threshold), Amount: Number(c.Amount), Position: res.Position})
}

// creditLineResponse answers PUT /v1/credit-lines/{credit_type}.
type creditLineResponse struct {
	CreditType     string `json:"credit_type"`
	OverdraftLimit Number `json:"overdraft_limit"`
	Position       uint64 `json:"position"`
}

type creditLineRequest struct {
	OverdraftLimit Amount `json:"overdraft_limit" required:"true"`
}

func (a *API) configureLine(w http.ResponseWriter, r *http.Request, tenantID int64) {
	var req creditLineRequest
	if err := decodeJSON(w, r, bodyMax, &req); err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	var check fieldCheck
	check.creditType("path.credit_type", r.PathValue("credit_type"), false)
	req.OverdraftLimit.check(&check, "overdraft_limit", true)
	if err := check.err(); err != nil {
		writeProblem(w, r, a.log, validationProblem("body.", err))
		return
	}
	creditType := r.PathValue("credit_type")
	res, err := a.writer.ConfigureLine(r.Context(), tenantID, creditType, domain.ConfigureLine{OverdraftLimit: req.OverdraftLimit.Value})
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	writeJSON(w, http.StatusOK, creditLineResponse{CreditType: creditType, OverdraftLimit: Number(req.OverdraftLimit.Value), Position: res.Position})
}
