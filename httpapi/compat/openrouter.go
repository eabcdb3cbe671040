package compat

import (
	"net/http"

	"github.com/creditd/creditd/httpapi/internal/web"
)

// The openrouter profile (seed 004): total credits and usage. Its errors
// are the seed API's error object, which its SDK maps to typed errors.

func (a *api) openrouterRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/compat/openrouter/api/v1/credits", Summary: "openrouter: total credits and usage",
			Errors: Errors{Shape: ErrorShapeErrorObject}, Handler: a.openrouterCredits, Response: openrouterCreditsJSON{}},
	}
}

type openrouterCreditsJSON struct {
	Data struct {
		TotalCredits web.Number `json:"total_credits"`
		TotalUsage   web.Number `json:"total_usage"`
	} `json:"data"`
}

// openrouterCredits answers the credits the tenant has (granted +
// adjusted − expired, less the grants not yet effective, which no other
// profile counts either) and the usage: total_credits − total_usage is
// the balance less what cannot pay yet.
func (a *api) openrouterCredits(w http.ResponseWriter, r *http.Request, tenantID int64) {
	ctx := r.Context()
	report, err := a.Reader.Balance(ctx, tenantID, "", nil)
	if err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	lines, err := a.Reader.SpendableNow(ctx, tenantID, a.Clock())
	if err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	t := report.Total
	credits := t.Granted.Add(t.Adjusted).Sub(t.Expired)
	for _, l := range lines {
		credits = credits.Sub(l.NotYetEffective)
	}
	var out openrouterCreditsJSON
	out.Data.TotalCredits = web.Number(credits)
	out.Data.TotalUsage = web.Number(t.Used)
	web.WriteJSON(w, http.StatusOK, out)
}
