package httpapi

import (
	"net/http"
	"time"

	"github.com/creditd/creditd/httpapi/internal/web"
	"github.com/creditd/creditd/queries"
)

type autoReloadJSON struct {
	Enabled   bool   `json:"enabled"`
	Threshold Number `json:"threshold"`
	Amount    Number `json:"amount"`
}

type lineBalanceJSON struct {
	CreditType   string          `json:"credit_type,omitempty"`
	Granted      Number          `json:"granted"`
	Adjusted     Number          `json:"adjusted"`
	Used         Number          `json:"used"`
	Expired      Number          `json:"expired"`
	Balance      Number          `json:"balance"`
	Reserved     Number          `json:"reserved"`
	Available    Number          `json:"available"`
	Currency     string          `json:"currency"`
	AutoReload   *autoReloadJSON `json:"auto_reload,omitempty"`
	ExpiringSoon *Number         `json:"expiring_soon,omitempty"`
	LastUpdated  *time.Time      `json:"last_updated"`
}

type balanceJSON struct {
	TenantID int64             `json:"tenant_id"`
	AsOf     *time.Time        `json:"as_of,omitempty"`
	Currency string            `json:"currency"`
	Lines    []lineBalanceJSON `json:"lines"`
	Total    lineBalanceJSON   `json:"total"`
}

func lineJSON(l queries.LineBalance, currency string, withAutoReload bool) lineBalanceJSON {
	out := lineBalanceJSON{CreditType: l.CreditType, Granted: Number(l.Granted), Adjusted: Number(l.Adjusted), Used: Number(l.Used),
		Expired: Number(l.Expired), Balance: Number(l.Balance), Reserved: Number(l.Reserved), Available: Number(l.Available), Currency: currency}
	if !l.LastUpdated.IsZero() {
		t := l.LastUpdated
		out.LastUpdated = &t
	}
	if withAutoReload {
		soon := Number(l.ExpiringSoon)
		out.ExpiringSoon = &soon
		out.AutoReload = &autoReloadJSON{Enabled: l.AutoReload.Enabled, Threshold: Number(l.AutoReload.Threshold), Amount: Number(l.AutoReload.Amount)}
	}
	return out
}

// balanceResponse renders a balance report. An as_of answer carries the
// credit quantities as they stood; settings (auto_reload) are not kept
// historically, so it leaves them out rather than show today's, and
// last_updated is the line's last movement or hold at or before as_of.
func balanceResponse(tenantID int64, report queries.BalanceReport, asOf *time.Time) balanceJSON {
	out := balanceJSON{TenantID: tenantID, AsOf: asOf, Currency: report.Currency, Lines: []lineBalanceJSON{}}
	for _, l := range report.Lines {
		out.Lines = append(out.Lines, lineJSON(l, report.Currency, asOf == nil))
	}
	out.Total = lineJSON(report.Total, report.Currency, false)
	out.Total.CreditType = ""
	return out
}

func (a *API) balance(w http.ResponseWriter, r *http.Request, tenantID int64) {
	var errs []error
	creditType := creditTypeParam(r, &errs)
	asOf := web.InstantParam(r, "as_of", true, &errs)
	if err := joinErrs(errs); err != nil {
		a.writeReadError(w, r, err)
		return
	}
	report, err := a.reader.Balance(r.Context(), tenantID, creditType, asOf)
	if err != nil {
		a.writeReadError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, balanceResponse(tenantID, report, asOf))
}
