package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"github.com/creditd/creditd/domain"
)

type voidGrantRequest struct {
	CreditType string `json:"credit_type"`
	Reason     string `json:"reason" required:"true"`
}

type grantAmendResponse struct {
	GrantID   string     `json:"grant_id"`
	Voided    *Number    `json:"voided,omitempty"`
	ExpiresAt *time.Time `json:"expires_at"`
	Status    string     `json:"status" enum:"accepted,duplicate"`
	Position  uint64     `json:"position"`
}

func (a *API) voidGrant(w http.ResponseWriter, r *http.Request, tenantID int64) {
	var req voidGrantRequest
	if err := decodeJSON(w, r, bodyMax, &req); err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	var check fieldCheck
	check.creditType("credit_type", req.CreditType, true)
	if err := check.err(); err != nil {
		writeProblem(w, r, a.log, validationProblem("body.", err))
		return
	}
	res, err := a.writer.VoidGrant(r.Context(), tenantID, req.CreditType, domain.VoidGrant{GrantID: r.PathValue("grant_id"), Reason: req.Reason})
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	e := res.Events[0].(domain.GrantVoided)
	voided := Number(e.Amount)
	writeJSON(w, http.StatusOK, grantAmendResponse{GrantID: e.GrantID, Voided: &voided, Status: string(res.Status), Position: res.Position})
}

// reverseResponse answers POST /v1/usage/{usage_id}/reverse.
type reverseResponse struct {
	UsageID  string `json:"usage_id"`
	Returned Number `json:"returned"`
	Status   string `json:"status" enum:"accepted,duplicate"`
	Position uint64 `json:"position"`
}

type reverseRequest struct {
	Reason string `json:"reason" required:"true"`
}

func (a *API) reverseUsage(w http.ResponseWriter, r *http.Request, tenantID int64) {
	var req reverseRequest
	if err := decodeJSON(w, r, bodyMax, &req); err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	res, err := a.writer.ReverseUsage(r.Context(), tenantID, domain.ReverseUsage{UsageID: r.PathValue("usage_id"), Reason: req.Reason})
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	e := res.Events[0].(domain.UsageReversed)
	returned := Number(e.Amount)
	writeJSON(w, http.StatusOK, reverseResponse{UsageID: e.UsageID, Returned: returned, Status: string(res.Status), Position: res.Position})
}

// grantExpiryRequest's expires_at is required: a time, or null for never.
type grantExpiryRequest struct {
	CreditType string          `json:"credit_type"`
	ExpiresAt  json.RawMessage `json:"expires_at" required:"true" types:"string,null" format:"date-time"`
}

func (a *API) changeGrantExpiry(w http.ResponseWriter, r *http.Request, tenantID int64) {
	var req grantExpiryRequest
	if err := decodeJSON(w, r, bodyMax, &req); err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	var check fieldCheck
	check.creditType("credit_type", req.CreditType, true)
	var expires Timestamp
	switch {
	case req.ExpiresAt == nil:
		check.add("expires_at", "is required: a time, or null for never", nil)
	case !bytes.Equal(bytes.TrimSpace(req.ExpiresAt), []byte("null")):
		expires.UnmarshalJSON(req.ExpiresAt)
		expires.check(&check, "expires_at")
	}
	if err := check.err(); err != nil {
		writeProblem(w, r, a.log, validationProblem("body.", err))
		return
	}
	c := domain.ChangeGrantExpiry{GrantID: r.PathValue("grant_id"), ExpiresAt: expires.Ptr()}
	res, err := a.writer.ChangeGrantExpiry(r.Context(), tenantID, req.CreditType, c)
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	writeJSON(w, http.StatusOK, grantAmendResponse{GrantID: c.GrantID, ExpiresAt: c.ExpiresAt, Status: string(res.Status), Position: res.Position})
}
