package httpapi

import (
	"net/http"
	"time"

	"github.com/creditd/creditd/queries"
)

type dailyJSON struct {
	Date     string            `json:"date"`
	Total    Number            `json:"total"`
	ByModule map[string]Number `json:"by_module"`
	ByUser   map[string]Number `json:"by_user"`
}

type rankedJSON struct {
	Key      string `json:"key"`
	Total    Number `json:"total"`
	Requests int64  `json:"requests"`
	Quantity Number `json:"quantity"`
}

type statsJSON struct {
	From                    time.Time    `json:"from"`
	To                      time.Time    `json:"to"`
	Spent                   Number       `json:"spent"`
	PreviousPeriodSpent     Number       `json:"previous_period_spent"`
	PreviousPeriodChangePct *Number      `json:"previous_period_change_pct"`
	Daily                   []dailyJSON  `json:"daily"`
	TopModules              []rankedJSON `json:"top_modules"`
	TopServices             []rankedJSON `json:"top_services"`
	TopUsers                []rankedJSON `json:"top_users"`
}

func rankedList(in []queries.Ranked) []rankedJSON {
	out := []rankedJSON{}
	for _, r := range in {
		out = append(out, rankedJSON{Key: r.Key, Total: Number(r.Total), Requests: r.Requests, Quantity: Number(r.Quantity)})
	}
	return out
}

func (a *API) stats(w http.ResponseWriter, r *http.Request, tenantID int64) {
	rng, err := queries.ParseRange(r.URL.Query().Get("from"), r.URL.Query().Get("to"), a.cfg.Clock(), usageDefaultDays)
	if err != nil {
		a.writeReadError(w, r, err)
		return
	}
	report, err := a.reader.Stats(r.Context(), tenantID, rng)
	if err != nil {
		a.writeReadError(w, r, err)
		return
	}
	out := statsJSON{From: rng.From, To: rng.To, Spent: Number(report.Spent), PreviousPeriodSpent: Number(report.PreviousSpent),
		Daily: []dailyJSON{}, TopModules: rankedList(report.TopModules), TopServices: rankedList(report.TopService), TopUsers: rankedList(report.TopUsers)}
	if report.ChangePct != nil {
		n := Number(*report.ChangePct)
		out.PreviousPeriodChangePct = &n
	}
	for _, d := range report.Daily {
		day := dailyJSON{Date: d.Date, Total: Number(d.Total), ByModule: map[string]Number{}, ByUser: map[string]Number{}}
		for k, v := range d.ByModule {
			day.ByModule[k] = Number(v)
		}
		for k, v := range d.ByUser {
			day.ByUser[k] = Number(v)
		}
		out.Daily = append(out.Daily, day)
	}
	writeJSON(w, http.StatusOK, out)
}
