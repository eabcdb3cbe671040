package compat

import (
	"net/http"

	"github.com/creditd/creditd/httpapi/internal/web"
)

// The tamtam profile (seed 002): per credit line, the active grants'
// original total, what was burned from them, and what remains. Its errors
// are the seed's ErrorModel exactly (no extra members), and it takes the
// bare API key in Authorization as well as a Bearer one.

func (a *api) tamtamRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/compat/tamtam/api/v2/credits", Summary: "tamtam: remaining credits per credit line", BareKey: true, Errors: Errors{Shape: ErrorShapeErrorModel},
			Handler: a.tamtamCredits, Response: tamtamCreditsJSON{}},
	}
}

type tamtamLineJSON struct {
	CreditType       string     `json:"credit_type"`
	RemainingCredits web.Number `json:"remaining_credits"`
	TotalCredits     web.Number `json:"total_credits"`
	UsedCredits      web.Number `json:"used_credits"`
}

type tamtamCreditsJSON struct {
	Credits []tamtamLineJSON `json:"credits"`
}

func (a *api) tamtamCredits(w http.ResponseWriter, r *http.Request, tenantID int64) {
	lines, err := a.Reader.ActiveGrants(r.Context(), tenantID, a.Clock())
	if err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	out := tamtamCreditsJSON{Credits: []tamtamLineJSON{}}
	for _, l := range lines {
		out.Credits = append(out.Credits, tamtamLineJSON{CreditType: l.CreditType, RemainingCredits: web.Number(l.Remaining),
			TotalCredits: web.Number(l.Total), UsedCredits: web.Number(l.Used)})
	}
	web.WriteJSON(w, http.StatusOK, out)
}
