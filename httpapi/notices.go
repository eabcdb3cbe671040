package httpapi

import (
	"net/http"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/projections"
)

type noticesRequest struct {
	Thresholds []Amount `json:"thresholds"`
	WebhookURL string   `json:"webhook_url"`
}

type noticesResponse struct {
	Thresholds    []Number `json:"thresholds"`
	WebhookURL    string   `json:"webhook_url"`
	WebhookSecret string   `json:"webhook_secret"`
	Position      uint64   `json:"position,omitempty"`
}

func (a *API) configureNotices(w http.ResponseWriter, r *http.Request, tenantID int64) {
	var req noticesRequest
	if err := decodeJSON(w, r, bodyMax, &req); err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	var check fieldCheck
	n := commands.Notices{WebhookURL: req.WebhookURL}
	for i, t := range req.Thresholds {
		t.check(&check, "thresholds["+itoa(i)+"]", true)
		n.Thresholds = append(n.Thresholds, t.Value)
	}
	if err := check.err(); err != nil {
		writeProblem(w, r, a.log, validationProblem("body.", err))
		return
	}
	position, err := a.writer.ConfigureNotices(r.Context(), tenantID, n)
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	out := noticesResponse{Thresholds: []Number{}, WebhookURL: n.WebhookURL, WebhookSecret: projections.WebhookSecret(a.cfg.WebhookSigningKey, tenantID), Position: position}
	for _, t := range n.Thresholds {
		out.Thresholds = append(out.Thresholds, Number(t))
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) notices(w http.ResponseWriter, r *http.Request, tenantID int64) {
	t, err := a.reader.Tenant(r.Context(), tenantID)
	if err != nil {
		a.writeSummaryError(w, r, err)
		return
	}
	out := noticesResponse{Thresholds: []Number{}, WebhookURL: t.WebhookURL, WebhookSecret: projections.WebhookSecret(a.cfg.WebhookSigningKey, tenantID)}
	for _, v := range t.NoticeThresholds {
		out.Thresholds = append(out.Thresholds, Number(decimal.New(v, -6)))
	}
	writeJSON(w, http.StatusOK, out)
}
