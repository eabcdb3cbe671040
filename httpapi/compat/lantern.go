package compat

import (
	"errors"
	"net/http"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/httpapi/internal/web"
	"github.com/creditd/creditd/queries"
)

// The lantern profile (seed 000): credit usage over a time range and the
// remaining credits, under /compat/lantern.

func (a *api) lanternRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/compat/lantern/v1/credits/usage", Summary: "lantern: credits used in a time range",
			Query: []string{"start_date", "end_date", "workflow_id", "workflow_run_id", "custom_key", "custom_value"}, RequiredQuery: []string{"start_date", "end_date"},
			Handler: a.lanternUsage, Response: lanternUsageJSON{}, ISOTimes: true},
		{Method: "GET", Path: "/compat/lantern/v1/credits/remaining", Summary: "lantern: remaining and total credits",
			Handler: a.lanternRemaining, Response: lanternRemainingJSON{}},
	}
}

type lanternUsageJSON struct {
	Success     bool       `json:"success"`
	TenantID    int64      `json:"tenant_id"`
	StartDate   string     `json:"start_date"`
	EndDate     string     `json:"end_date"`
	CreditsUsed web.Number `json:"credits_used"`
}

type lanternRemainingJSON struct {
	Success          bool       `json:"success"`
	TenantID         int64      `json:"tenant_id"`
	RemainingCredits web.Number `json:"remaining_credits"`
	TotalCredits     web.Number `json:"total_credits"`
}

// lanternUsage sums usage with occurred_at in [start_date, end_date],
// exactly to the microsecond, matching every filter given, net of the
// reversals of that usage (docs/compat.md).
func (a *api) lanternUsage(w http.ResponseWriter, r *http.Request, tenantID int64) {
	params := r.URL.Query()
	var errs []error
	start := requiredInstant(params, "start_date", false, &errs)
	end := requiredInstant(params, "end_date", true, &errs)
	filter := queries.UsedFilter{WorkflowID: params.Get("workflow_id"), WorkflowRunID: params.Get("workflow_run_id"),
		CustomKey: params.Get("custom_key"), CustomValue: params.Get("custom_value")}
	switch {
	case params.Has("custom_key") && !params.Has("custom_value"):
		errs = append(errs, &queries.ParamError{Param: "custom_value", Message: "is required with custom_key"})
	case params.Has("custom_value") && !params.Has("custom_key"):
		errs = append(errs, &queries.ParamError{Param: "custom_key", Message: "is required with custom_value"})
	case params.Has("custom_key") && filter.CustomValue == "":
		errs = append(errs, &queries.ParamError{Param: "custom_value", Message: "must not be empty"})
	case params.Has("custom_key") && !queries.ValidCustomKey(filter.CustomKey):
		errs = append(errs, &queries.ParamError{Param: "custom_key", Message: "must be 1 to 64 letters, digits or _-.:", Value: filter.CustomKey})
	}
	if len(errs) == 0 {
		errs = append(errs, orderedRange(start, end, "start_date"))
	}
	if err := errors.Join(errs...); err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	used, err := a.Reader.UsedBetween(r.Context(), tenantID, start, end, filter)
	if err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	web.WriteJSON(w, http.StatusOK, lanternUsageJSON{Success: true, TenantID: tenantID, StartDate: params.Get("start_date"),
		EndDate: params.Get("end_date"), CreditsUsed: web.Number(used)})
}

// lanternRemaining answers what the tenant can spend now, and the credits
// in effect now that it came from: grants not yet effective, or past their
// expiry until the sweeper expires them, are in neither, so
// remaining_credits = total_credits − used − held.
func (a *api) lanternRemaining(w http.ResponseWriter, r *http.Request, tenantID int64) {
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
	remaining, total := decimal.Zero, t.Granted.Add(t.Adjusted).Sub(t.Expired)
	for _, l := range lines {
		remaining = remaining.Add(l.Spendable)
		total = total.Sub(l.NotYetEffective).Sub(l.PastExpiry)
	}
	web.WriteJSON(w, http.StatusOK, lanternRemainingJSON{Success: true, TenantID: tenantID, RemainingCredits: web.Number(remaining),
		TotalCredits: web.Number(total)})
}
