package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/creditd/creditd/domain"
)

type grantRequest struct {
	GrantID       string            `json:"grant_id"`
	CreditType    string            `json:"credit_type"`
	Amount        Amount            `json:"amount" required:"true"`
	Source        string            `json:"source" enum:"purchase,subscription,promotional,manual"`
	Priority      int               `json:"priority"`
	EffectiveAt   Timestamp         `json:"effective_at"`
	ExpiresAt     Timestamp         `json:"expires_at"`
	CostPerCredit Amount            `json:"cost_per_credit"`
	Currency      string            `json:"currency"`
	Description   string            `json:"description"`
	Reference     string            `json:"reference"`
	Metadata      map[string]string `json:"metadata"`
}

type grantResponse struct {
	GrantID       string            `json:"grant_id"`
	CreditType    string            `json:"credit_type"`
	Amount        Number            `json:"amount"`
	Source        domain.Source     `json:"source" enum:"purchase,subscription,promotional,auto_reload,manual"`
	Priority      int               `json:"priority"`
	EffectiveAt   time.Time         `json:"effective_at"`
	ExpiresAt     *time.Time        `json:"expires_at"`
	CostPerCredit *Number           `json:"cost_per_credit"`
	Currency      string            `json:"currency,omitempty"`
	Description   string            `json:"description,omitempty"`
	Reference     string            `json:"reference,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	Status        string            `json:"status" enum:"accepted,duplicate"`
	Position      uint64            `json:"position"`
}

func (a *API) grant(w http.ResponseWriter, r *http.Request, tenantID int64) {
	var req grantRequest
	if err := decodeJSON(w, r, bodyMax, &req); err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	var check fieldCheck
	req.Amount.check(&check, "amount", true)
	req.CostPerCredit.check(&check, "cost_per_credit", false)
	req.EffectiveAt.check(&check, "effective_at")
	req.ExpiresAt.check(&check, "expires_at")
	grantID := writeID(&check, r, req.GrantID, "grant_id", "gr_")
	if err := check.err(); err != nil {
		writeProblem(w, r, a.log, validationProblem("body.", err))
		return
	}
	source := domain.Source(req.Source)
	if req.Source == "" {
		source = domain.SourcePurchase
	}
	g := domain.Grant{
		GrantID: grantID, Amount: req.Amount.Value, Source: source, Priority: req.Priority,
		EffectiveAt: req.EffectiveAt.Value, ExpiresAt: req.ExpiresAt.Ptr(), Currency: req.Currency,
		Description: req.Description, Reference: req.Reference, Metadata: req.Metadata,
	}
	if req.CostPerCredit.Set {
		g.CostPerCredit = &req.CostPerCredit.Value
	}
	creditType := creditTypeOrDefault(req.CreditType)
	if err := errors.Join(domain.ValidateCreditType(creditType), g.Validate()); err != nil {
		writeProblem(w, r, a.log, validationProblem("body.", err))
		return
	}
	res, err := a.writer.Grant(r.Context(), tenantID, creditType, g)
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	e := res.Events[0].(domain.CreditsGranted)
	resp := grantResponse{GrantID: e.GrantID, CreditType: creditType, Amount: Number(e.Amount), Source: e.Source, Priority: e.Priority,
		EffectiveAt: e.EffectiveAt, ExpiresAt: e.ExpiresAt, Currency: e.Currency, Description: e.Description,
		Reference: e.Reference, Metadata: e.Metadata, Status: string(res.Status), Position: res.Position}
	if e.CostPerCredit != nil {
		n := Number(*e.CostPerCredit)
		resp.CostPerCredit = &n
	}
	writeJSON(w, createdStatus(res.Duplicate), resp)
}

func creditTypeOrDefault(s string) string {
	if s == "" {
		return domain.DefaultCreditType
	}
	return s
}
