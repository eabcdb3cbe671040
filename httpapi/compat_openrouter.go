package httpapi

import "net/http"

// The openrouter profile (seed 004): total credits and usage.

type openrouterCreditsJSON struct {
	Data struct {
		TotalCredits Number `json:"total_credits"`
		TotalUsage   Number `json:"total_usage"`
	} `json:"data"`
}

func (a *API) openrouterCredits(w http.ResponseWriter, r *http.Request, tenantID int64) {
	report, err := a.reader.Balance(r.Context(), tenantID, "", nil)
	if err != nil {
		a.writeReadError(w, r, err)
		return
	}
	var out openrouterCreditsJSON
	t := report.Total
	out.Data.TotalCredits = Number(t.Granted.Add(t.Adjusted).Sub(t.Expired))
	out.Data.TotalUsage = Number(t.Used)
	writeJSON(w, http.StatusOK, out)
}
