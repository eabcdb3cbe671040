package httpapi

import (
	"net/http"
	"time"

	"github.com/creditd/creditd/queries"
)

// usageDefaultDays is the range of a usage or stats read without from/to.
const usageDefaultDays = 30

type usageTotalsJSON struct {
	Credits    Number `json:"credits"`
	Requests   int64  `json:"requests"`
	Successful int64  `json:"successful"`
	Failed     int64  `json:"failed"`
	Quantity   Number `json:"quantity"`
}

type usageRowJSON struct {
	Period string            `json:"period,omitempty"`
	Group  map[string]string `json:"group,omitempty"`
	usageTotalsJSON
}

type usageReportJSON struct {
	From        time.Time       `json:"from"`
	To          time.Time       `json:"to"`
	Granularity string          `json:"granularity" enum:"none,day,month,year"`
	GroupBy     []string        `json:"group_by"`
	Totals      usageTotalsJSON `json:"totals"`
	Rows        []usageRowJSON  `json:"rows"`
}

func totalsJSON(t queries.UsageTotals) usageTotalsJSON {
	return usageTotalsJSON{Credits: Number(t.Credits), Requests: t.Requests, Successful: t.Successful, Failed: t.Failed, Quantity: Number(t.Quantity)}
}

// usageQuery reads from, to, granularity, group_by and dimension filters.
func (a *API) usageQuery(r *http.Request) (queries.UsageQuery, error) {
	params := r.URL.Query()
	var errs []error
	rng, err := queries.ParseRange(params.Get("from"), params.Get("to"), a.cfg.Clock(), usageDefaultDays)
	errs = append(errs, err)
	granularity, err := queries.ParseGranularity(params.Get("granularity"))
	errs = append(errs, err)
	groupBy, err := queries.ParseGroupBy(params.Get("group_by"))
	errs = append(errs, err)
	filters, err := queries.ParseFilters(params, "from", "to", "granularity", "group_by", minPositionParam)
	errs = append(errs, err)
	return queries.UsageQuery{Range: rng, Granularity: granularity, GroupBy: groupBy, Filters: filters}, joinErrs(errs)
}

func (a *API) usage(w http.ResponseWriter, r *http.Request, tenantID int64) {
	q, err := a.usageQuery(r)
	if err != nil {
		a.writeReadError(w, r, err)
		return
	}
	report, err := a.reader.Usage(r.Context(), tenantID, q)
	if err != nil {
		a.writeReadError(w, r, err)
		return
	}
	out := usageReportJSON{From: q.Range.From, To: q.Range.To, Granularity: string(q.Granularity), GroupBy: []string{},
		Totals: totalsJSON(report.Totals), Rows: []usageRowJSON{}}
	for _, d := range q.GroupBy {
		out.GroupBy = append(out.GroupBy, d.Name)
	}
	for _, row := range report.Rows {
		out.Rows = append(out.Rows, usageRowJSON{Period: row.Period, Group: row.Group, usageTotalsJSON: totalsJSON(row.UsageTotals)})
	}
	writeJSON(w, http.StatusOK, out)
}
