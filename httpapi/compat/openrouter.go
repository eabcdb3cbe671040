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

func (a *api) openrouterCredits(w http.ResponseWriter, r *http.Request, tenantID int64) {
	report, err := a.Reader.Balance(r.Context(), tenantID, "", nil)
	if err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	var out openrouterCreditsJSON
	t := report.Total
	out.Data.TotalCredits = web.Number(t.Granted.Add(t.Adjusted).Sub(t.Expired))
	out.Data.TotalUsage = web.Number(t.Used)
	web.WriteJSON(w, http.StatusOK, out)
}
