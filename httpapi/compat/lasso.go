package compat

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/httpapi/internal/web"
	"github.com/creditd/creditd/queries"
)

// The lasso profile (seed 003): spending statistics over whole days, with
// the subscription allocation, cost per credit, Lasso table usage and the
// tenant's display configuration. Its errors have the statuses of the
// seed's table: 400, 401 and 500.

func (a *api) lassoRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/compat/lasso/credits/stats", Summary: "lasso: spending statistics", Query: []string{"from", "to"},
			Errors:  Errors{Statuses: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusInternalServerError}},
			Handler: a.lassoStats, Response: lassoStatsJSON{}},
	}
}

// lassoModule is the module whose usage the "lasso" section reports; its
// tables are the custom keys table_id and table_name.
const lassoModule = "lasso"

type lassoCostJSON struct {
	Amount         web.Number  `json:"amount"`
	Currency       string      `json:"currency"`
	MonthlyFee     *web.Number `json:"monthly_fee"`
	MonthlyCredits *web.Number `json:"monthly_credits"`
}

type lassoSummaryJSON struct {
	TotalSpent              web.Number     `json:"total_spent"`
	PreviousPeriodSpent     web.Number     `json:"previous_period_spent"`
	PreviousPeriodChangePct *web.Number    `json:"previous_period_change_pct"`
	MonthlyAllocation       *web.Number    `json:"monthly_allocation"`
	PeriodEnd               string         `json:"period_end"`
	CostPerCredit           *lassoCostJSON `json:"cost_per_credit"`
}

type lassoDailyJSON struct {
	Date     string                `json:"date"`
	Total    web.Number            `json:"total"`
	ByModule map[string]web.Number `json:"by_module"`
	ByUser   map[string]web.Number `json:"by_user"`
}

type lassoTableJSON struct {
	TableID  string     `json:"table_id"`
	Name     string     `json:"name"`
	Total    web.Number `json:"total"`
	Products web.Number `json:"products"`
}

type lassoSectionJSON struct {
	CreditsSpent      web.Number       `json:"credits_spent"`
	ProductsEnhanced  web.Number       `json:"products_enhanced"`
	CreditsPerProduct web.Number       `json:"credits_per_product"`
	ByTable           []lassoTableJSON `json:"by_table"`
}

// The seed's top lists, one member name each.
type (
	lassoModuleJSON struct {
		ModuleKey string     `json:"module_key"`
		Total     web.Number `json:"total"`
	}
	lassoServiceJSON struct {
		ServiceType string     `json:"service_type"`
		Total       web.Number `json:"total"`
	}
	lassoUserJSON struct {
		UserID string     `json:"user_id"`
		Total  web.Number `json:"total"`
	}
)

type lassoStatsJSON struct {
	Period struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"period"`
	Summary   lassoSummaryJSON   `json:"summary"`
	Daily     []lassoDailyJSON   `json:"daily"`
	ByModule  []lassoModuleJSON  `json:"by_module"`
	ByService []lassoServiceJSON `json:"by_service"`
	ByUser    []lassoUserJSON    `json:"by_user"`
	Lasso     lassoSectionJSON   `json:"lasso"`
	// CurrencyConfig is the tenant's stored display configuration.
	CurrencyConfig json.RawMessage `json:"currency_config" types:"object"`
}

// jsTime is the seed's time format: UTC with milliseconds.
const jsTime = "2006-01-02T15:04:05.000Z"

func (a *api) lassoStats(w http.ResponseWriter, r *http.Request, tenantID int64) {
	params := r.URL.Query()
	var errs []error
	from := lassoDate(params.Get("from"), "from", &errs)
	to := lassoDate(params.Get("to"), "to", &errs)
	if len(errs) == 0 {
		errs = append(errs, web.CheckSpan(from, to, "from"))
	}
	if err := errors.Join(errs...); err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	ctx := r.Context()
	rng := queries.Range{From: from, To: to.Add(24*time.Hour - time.Microsecond), FromDay: from.Unix() / 86400, ToDay: to.Unix() / 86400}
	stats, err := a.Reader.Stats(ctx, tenantID, rng)
	if err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	var out lassoStatsJSON
	out.Period.From, out.Period.To = params.Get("from"), params.Get("to")
	out.Summary = lassoSummaryJSON{TotalSpent: web.Number(stats.Spent), PreviousPeriodSpent: web.Number(stats.PreviousSpent)}
	if stats.ChangePct != nil {
		n := web.Number(*stats.ChangePct)
		out.Summary.PreviousPeriodChangePct = &n
	}
	tenant, err := a.Reader.Tenant(ctx, tenantID)
	if err != nil {
		a.WriteSummaryError(w, r, err)
		return
	}
	if err := a.lassoAllocation(r, tenant, &out.Summary); err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	// Every day of the range, those without spend at zero: a client
	// charts daily as it comes (the range is at most 1830 days).
	spent := map[string]queries.DailySpend{}
	for _, d := range stats.Daily {
		spent[d.Date] = d
	}
	out.Daily = []lassoDailyJSON{}
	for day := from; !day.After(to); day = day.AddDate(0, 0, 1) {
		date := day.Format(time.DateOnly)
		d := spent[date]
		entry := lassoDailyJSON{Date: date, Total: web.Number(d.Total), ByModule: map[string]web.Number{}, ByUser: map[string]web.Number{}}
		for k, v := range d.ByModule {
			entry.ByModule[k] = web.Number(v)
		}
		for k, v := range d.ByUser {
			entry.ByUser[k] = web.Number(v)
		}
		out.Daily = append(out.Daily, entry)
	}
	out.ByModule, out.ByService, out.ByUser = []lassoModuleJSON{}, []lassoServiceJSON{}, []lassoUserJSON{}
	for _, part := range []struct {
		dimension string
		add       func(queries.Ranked)
	}{
		{"module", func(rk queries.Ranked) {
			out.ByModule = append(out.ByModule, lassoModuleJSON{rk.Key, web.Number(rk.Total)})
		}},
		{"service", func(rk queries.Ranked) {
			out.ByService = append(out.ByService, lassoServiceJSON{rk.Key, web.Number(rk.Total)})
		}},
		{"user_id", func(rk queries.Ranked) { out.ByUser = append(out.ByUser, lassoUserJSON{rk.Key, web.Number(rk.Total)}) }},
	} {
		ranked, err := a.Reader.Breakdown(ctx, tenantID, rng, part.dimension)
		if err != nil {
			a.WriteReadError(w, r, err)
			return
		}
		for _, rk := range ranked {
			part.add(rk)
		}
	}
	if out.Lasso, err = a.lassoSection(r, tenantID, rng); err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	out.CurrencyConfig = tenant.CurrencyConfig
	if len(out.CurrencyConfig) == 0 {
		out.CurrencyConfig = json.RawMessage("{}")
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// lassoDate reads a required YYYY-MM-DD date.
func lassoDate(text, param string, errs *[]error) time.Time {
	if text == "" {
		*errs = append(*errs, &queries.ParamError{Param: param, Message: "is required (YYYY-MM-DD)"})
		return time.Time{}
	}
	t, err := time.Parse(time.DateOnly, text)
	if err != nil {
		*errs = append(*errs, &queries.ParamError{Param: param, Message: "must be a date as YYYY-MM-DD", Value: text})
	}
	return t
}

// lassoAllocation fills the plan's figures. The tenant's currency_config
// wins, as the seed's answer is its config: monthly_credits is the monthly
// allocation, and with monthly_fee_<display currency> it prices a credit.
// What the config does not give comes from the active monthly
// subscriptions (their credits summed, the first one's price), and a
// price from the latest grant's cost basis last. The period end is the
// first active subscription's, else the calendar month's (UTC): without a
// subscription creditd's period is the month, as in the tamtam profile.
func (a *api) lassoAllocation(r *http.Request, tenant queries.Tenant, s *lassoSummaryJSON) error {
	now := a.Clock().UTC()
	subs, err := a.Reader.Subscriptions(r.Context(), tenant.ID, now)
	if err != nil {
		return err
	}
	allocation := decimal.Zero
	for _, sub := range subs {
		if !sub.Active || sub.Period != "monthly" {
			continue
		}
		allocation = allocation.Add(sub.CreditsPerPeriod)
		if s.PeriodEnd == "" && sub.CurrentPeriodEnd != nil {
			s.PeriodEnd = sub.CurrentPeriodEnd.UTC().Format(jsTime)
		}
		if s.CostPerCredit == nil && sub.PriceAmount != nil {
			s.CostPerCredit = lassoCost(*sub.PriceAmount, sub.CreditsPerPeriod, sub.PriceCurrency)
		}
	}
	// A stored config that no longer parses (written before its members
	// were typed) configures nothing.
	if config, err := domain.ParseCurrencyConfig(tenant.CurrencyConfig); err == nil && config.MonthlyCredits != nil {
		allocation = *config.MonthlyCredits
		if fee, ok := config.MonthlyFee(tenant.Currency); ok {
			s.CostPerCredit = lassoCost(fee, allocation, tenant.Currency)
		}
	}
	if s.PeriodEnd == "" {
		s.PeriodEnd = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, 1, 0).Format(jsTime)
	}
	if !allocation.IsZero() {
		n := web.Number(allocation)
		s.MonthlyAllocation = &n
	}
	if s.CostPerCredit == nil {
		cost, err := a.Reader.LatestGrantCost(r.Context(), tenant.ID)
		if err != nil {
			return err
		}
		if cost != nil {
			s.CostPerCredit = &lassoCostJSON{Amount: web.Number(cost.PerCredit), Currency: cost.Currency}
		}
	}
	return nil
}

// lassoCost is a monthly fee for monthly credits as the seed's
// cost_per_credit: the amount to 6 places, as amounts are.
func lassoCost(fee, credits decimal.Decimal, currency string) *lassoCostJSON {
	feeNumber, creditsNumber := web.Number(fee), web.Number(credits)
	return &lassoCostJSON{Amount: web.Number(fee.DivRound(credits, 6)), Currency: currency, MonthlyFee: &feeNumber, MonthlyCredits: &creditsNumber}
}

// lassoSection reports the lasso module's usage: credits, products (the
// sum of quantity) and the split by table.
func (a *api) lassoSection(r *http.Request, tenantID int64, rng queries.Range) (lassoSectionJSON, error) {
	module, _ := queries.ParseDimension("module")
	tableID, _ := queries.ParseDimension("custom.table_id")
	tableName, _ := queries.ParseDimension("custom.table_name")
	report, err := a.Reader.Usage(r.Context(), tenantID, queries.UsageQuery{Range: rng, Granularity: queries.GranularityNone,
		GroupBy: []queries.Dimension{tableID, tableName}, Filters: []queries.Filter{{Dimension: module, Values: []string{lassoModule}}}})
	if err != nil {
		return lassoSectionJSON{}, err
	}
	out := lassoSectionJSON{CreditsSpent: web.Number(report.Totals.Credits), ProductsEnhanced: web.Number(report.Totals.Quantity), ByTable: []lassoTableJSON{}}
	perProduct := decimal.Zero
	if report.Totals.Quantity.IsPositive() {
		perProduct = report.Totals.Credits.DivRound(report.Totals.Quantity, 2)
	}
	out.CreditsPerProduct = web.Number(perProduct)
	for _, row := range report.Rows {
		if row.Group["custom.table_id"] == "" {
			continue // lasso usage outside any table counts above only
		}
		out.ByTable = append(out.ByTable, lassoTableJSON{TableID: row.Group["custom.table_id"], Name: row.Group["custom.table_name"],
			Total: web.Number(row.Credits), Products: web.Number(row.Quantity)})
	}
	return out, nil
}
