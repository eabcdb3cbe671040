package httpapi

import "net/http"

// The tamtam profile (seed 002): per credit line, the active grants'
// original total, what was burned from them, and what remains. Its errors
// are the seed's ErrorModel exactly (no extra members), and it takes the
// bare API key in Authorization as well as a Bearer one.

type tamtamLineJSON struct {
	CreditType       string `json:"credit_type"`
	RemainingCredits Number `json:"remaining_credits"`
	TotalCredits     Number `json:"total_credits"`
	UsedCredits      Number `json:"used_credits"`
}

type tamtamCreditsJSON struct {
	Credits []tamtamLineJSON `json:"credits"`
}

func (a *API) tamtamCredits(w http.ResponseWriter, r *http.Request, tenantID int64) {
	lines, err := a.reader.ActiveGrants(r.Context(), tenantID, a.cfg.Clock())
	if err != nil {
		a.writeReadError(w, r, err)
		return
	}
	out := tamtamCreditsJSON{Credits: []tamtamLineJSON{}}
	for _, l := range lines {
		out.Credits = append(out.Credits, tamtamLineJSON{CreditType: l.CreditType, RemainingCredits: Number(l.Remaining),
			TotalCredits: Number(l.Total), UsedCredits: Number(l.Used)})
	}
	writeJSON(w, http.StatusOK, out)
}
