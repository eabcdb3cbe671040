package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/creditd/creditd/queries"
)

type summaryJSON struct {
	TenantID       int64           `json:"tenant_id"`
	Name           string          `json:"name"`
	Email          string          `json:"email"`
	Currency       string          `json:"currency"`
	CreatedAt      time.Time       `json:"created_at"`
	LastAPIUseAt   *time.Time      `json:"last_api_use_at"`
	LastUsageAt    *time.Time      `json:"last_usage_at"`
	Balance        balanceJSON     `json:"balance"`
	UsageThisMonth usageTotalsJSON `json:"usage_this_month"`
	Lifetime       usageTotalsJSON `json:"lifetime"`
	RejectedDebits int64           `json:"rejected_debits"`
}

// writeSummaryError answers a read that needs the tenant's profile: a
// tenant created a moment ago may not be projected yet.
func (a *API) writeSummaryError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, queries.ErrTenantNotFound) {
		writeProblem(w, r, a.log, newProblem(http.StatusServiceUnavailable, "not-yet-projected", "the tenant is not in the read models yet; retry"))
		return
	}
	a.writeReadError(w, r, err)
}

func (a *API) summary(w http.ResponseWriter, r *http.Request, tenantID int64) {
	s, err := a.reader.Summary(r.Context(), tenantID, a.cfg.Clock())
	if err != nil {
		a.writeSummaryError(w, r, err)
		return
	}
	out := summaryJSON{TenantID: tenantID, Name: s.Name, Email: s.Email, Currency: s.Currency, CreatedAt: s.CreatedAt,
		LastUsageAt: s.LastUsageAt, Balance: balanceResponse(tenantID, s.Balance, nil),
		UsageThisMonth: totalsJSON(s.UsageThisMonth), Lifetime: totalsJSON(s.LifetimeUsage), RejectedDebits: s.RejectedDebits}
	if v, ok := a.lastUsed.Load(tenantID); ok {
		t := v.(time.Time)
		out.LastAPIUseAt = &t
	}
	writeJSON(w, http.StatusOK, out)
}
