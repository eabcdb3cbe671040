package httpapi

import (
	"net/http"
	"net/url"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/commands"
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
	// Deliveries are the latest notices with their attempts and last error
	// (GET only), so a tenant can see why its webhook hears nothing.
	Deliveries *[]noticeDelivery `json:"deliveries,omitempty"`
}

type noticeDelivery struct {
	NoticeID      int64      `json:"notice_id"`
	CreditType    string     `json:"credit_type"`
	Kind          string     `json:"kind"`
	Threshold     Number     `json:"threshold"`
	CreatedAt     time.Time  `json:"created_at"`
	Status        string     `json:"status" enum:"pending,delivered,failed"`
	Attempts      int        `json:"attempts"`
	LastError     string     `json:"last_error"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
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
	if req.WebhookURL != "" {
		if err := a.cfg.Webhooks.CheckURL(req.WebhookURL); err != nil {
			check.add("webhook_url", err.Error(), redactedURL(req.WebhookURL))
		}
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
	out := noticesResponse{Thresholds: []Number{}, WebhookURL: n.WebhookURL, WebhookSecret: a.webhookSecret(tenantID), Position: position}
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
	deliveries, err := a.reader.NoticeDeliveries(r.Context(), tenantID)
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	out := noticesResponse{Thresholds: []Number{}, WebhookURL: t.WebhookURL, WebhookSecret: a.webhookSecret(tenantID)}
	list := []noticeDelivery{}
	for _, v := range t.NoticeThresholds {
		out.Thresholds = append(out.Thresholds, Number(decimal.New(v, -6)))
	}
	for _, d := range deliveries {
		item := noticeDelivery{NoticeID: d.NoticeID, CreditType: d.CreditType, Kind: d.Kind, Threshold: Number(d.Threshold),
			CreatedAt: d.CreatedAt, Status: d.Status, Attempts: d.Attempts, LastError: d.LastError}
		if !d.NextAttemptAt.IsZero() {
			item.NextAttemptAt = &d.NextAttemptAt
		}
		list = append(list, item)
	}
	out.Deliveries = &list
	writeJSON(w, http.StatusOK, out)
}

// redactedURL is raw with any password masked, for echoing in a problem.
func redactedURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		return u.Redacted()
	}
	return raw
}

func (a *API) webhookSecret(tenantID int64) string {
	if a.cfg.WebhookSecret == nil {
		return ""
	}
	return a.cfg.WebhookSecret(tenantID)
}
