package compat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/httpapi/internal/web"
	"github.com/creditd/creditd/queries"
)

// The account profile (seed 001): usage statistics, credit balance, ledger
// and account summary, with user_id meaning the tenant id.

func (a *api) accountRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/compat/account/auth/account/usage", Summary: "account: usage statistics", Query: []string{"period", "from", "to"},
			Handler: a.accountUsage, Response: accountUsageJSON{}, ISOTimes: true},
		{Method: "GET", Path: "/compat/account/auth/account/credits", Summary: "account: credit balance",
			Handler: a.accountCredits, Response: accountBalanceJSON{}},
		{Method: "GET", Path: "/compat/account/auth/account/ledger", Summary: "account: credit ledger", Query: []string{"type", "from", "to", "limit", "offset"},
			Handler: a.accountLedger, Response: accountLedgerJSON{}, ISOTimes: true, LimitCapped: true},
		{Method: "GET", Path: "/compat/account/auth/account/summary", Summary: "account: account summary",
			Handler: a.accountSummary, Response: accountSummaryJSON{}},
	}
}

type accountUsageJSON struct {
	UserID             int64            `json:"user_id"`
	Period             string           `json:"period" enum:"daily,monthly,yearly"`
	TotalRequests      int64            `json:"total_requests"`
	SuccessfulRequests int64            `json:"successful_requests"`
	FailedRequests     int64            `json:"failed_requests"`
	CreditsConsumed    web.Number       `json:"credits_consumed"`
	RequestsByEndpoint map[string]int64 `json:"requests_by_endpoint"`
	PeriodStart        time.Time        `json:"period_start"`
	PeriodEnd          time.Time        `json:"period_end"`
}

type accountBalanceJSON struct {
	UserID              int64      `json:"user_id"`
	Balance             web.Number `json:"balance"`
	Reserved            web.Number `json:"reserved"`
	Available           web.Number `json:"available"`
	Currency            string     `json:"currency"`
	LastUpdated         *time.Time `json:"last_updated"`
	AutoReloadEnabled   bool       `json:"auto_reload_enabled"`
	AutoReloadThreshold web.Number `json:"auto_reload_threshold"`
	AutoReloadAmount    web.Number `json:"auto_reload_amount"`
}

type accountLedgerEntryJSON struct {
	ID           int64           `json:"id"`
	UserID       int64           `json:"user_id"`
	Type         string          `json:"type"`
	Amount       web.Number      `json:"amount"`
	BalanceAfter web.Number      `json:"balance_after"`
	Description  string          `json:"description"`
	Reference    string          `json:"reference"`
	Metadata     json.RawMessage `json:"metadata" types:"object,null"`
	CreatedAt    time.Time       `json:"created_at"`
}

type accountLedgerJSON struct {
	Entries []accountLedgerEntryJSON `json:"entries"`
	Total   int                      `json:"total"`
	Limit   int                      `json:"limit"`
	Offset  int                      `json:"offset"`
}

type accountSubscriptionJSON struct {
	ID                 string     `json:"id"`
	CreditType         string     `json:"credit_type"`
	Status             string     `json:"status"`
	Period             string     `json:"period"`
	CreditsPerPeriod   web.Number `json:"credits_per_period"`
	Price              *web.Price `json:"price"`
	Rollover           bool       `json:"rollover"`
	CurrentPeriodStart *time.Time `json:"current_period_start"`
	CurrentPeriodEnd   *time.Time `json:"current_period_end"`
	CancelAt           *time.Time `json:"cancel_at"`
}

type accountSummaryJSON struct {
	UserID               int64                    `json:"user_id"`
	Email                string                   `json:"email"`
	CreditBalance        accountBalanceJSON       `json:"credit_balance"`
	Subscription         *accountSubscriptionJSON `json:"subscription"`
	UsageThisMonth       accountUsageJSON         `json:"usage_this_month"`
	TotalRequestsAllTime int64                    `json:"total_requests_all_time"`
	AccountCreatedAt     time.Time                `json:"account_created_at"`
	LastLoginAt          *time.Time               `json:"last_login_at"`
}

// monthStart is the start of the UTC month holding t: from's default, the
// seed's "start of current month" (of now), whatever the period.
func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// utcDay is the UTC day holding t, in days since 1970-01-01; before 1970
// too, where dividing the Unix time would round towards it.
func utcDay(t time.Time) int64 {
	day := t.Unix() / 86400
	if t.Unix()%86400 < 0 {
		day--
	}
	return day
}

// accountUsageStats sums usage over the UTC days that from and to fall on,
// whole: the usage statistics are kept per day, and period_start and
// period_end say exactly what was counted, the first and the last
// microsecond of those days.
func (a *api) accountUsageStats(ctx context.Context, tenantID int64, period string, from, to time.Time) (accountUsageJSON, error) {
	fromDay, toDay := utcDay(from), utcDay(to)
	start := time.Unix(fromDay*86400, 0).UTC()
	end := time.Unix((toDay+1)*86400, 0).UTC().Add(-time.Microsecond)
	rng := queries.Range{From: start, To: end, FromDay: fromDay, ToDay: toDay}
	endpoint, _ := queries.ParseDimension("endpoint")
	report, err := a.Reader.Usage(ctx, tenantID, queries.UsageQuery{Range: rng, Granularity: queries.GranularityNone, GroupBy: []queries.Dimension{endpoint}})
	if err != nil {
		return accountUsageJSON{}, err
	}
	out := accountUsageJSON{UserID: tenantID, Period: period, TotalRequests: report.Totals.Requests, SuccessfulRequests: report.Totals.Successful,
		FailedRequests: report.Totals.Failed, CreditsConsumed: web.Number(report.Totals.Credits), RequestsByEndpoint: map[string]int64{},
		PeriodStart: start, PeriodEnd: end}
	for _, row := range report.Rows {
		// Usage that names no endpoint is in the totals, under no key: a
		// "" key is a request to no endpoint, which no client asks about.
		if endpoint := row.Group["endpoint"]; endpoint != "" {
			out.RequestsByEndpoint[endpoint] += row.Requests
		}
	}
	return out, nil
}

func (a *api) accountUsage(w http.ResponseWriter, r *http.Request, tenantID int64) {
	params := r.URL.Query()
	period := params.Get("period")
	var errs []error
	switch period {
	case "":
		period = "monthly"
	case "daily", "monthly", "yearly":
	default:
		errs = append(errs, &queries.ParamError{Param: "period", Message: "must be daily, monthly or yearly", Value: period})
	}
	// The period names the answer; it moves neither default.
	now := a.Clock().UTC()
	to := now
	if t := instantParam(params, "to", true, &errs); t != nil {
		to = *t
	}
	from := instantParam(params, "from", false, &errs)
	if len(errs) == 0 {
		switch start := monthStart(now); {
		case from != nil:
			errs = append(errs, orderedRange(*from, to, "from"))
		case to.Before(start):
			// Only to is given, before from's default: the range would
			// end before it starts.
			errs = append(errs, &queries.ParamError{Param: "from", Message: "is required when to is before the start of the current month, from's default"})
		default:
			from = &start
		}
	}
	if err := errors.Join(errs...); err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	out, err := a.accountUsageStats(r.Context(), tenantID, period, *from, to)
	if err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// accountBalance sums the tenant's lines; the auto-reload fields are the
// default line's (the seed's account has one balance). available is what
// can be used now ("Available for use"), as lantern's remaining_credits:
// grants not yet effective are in the balance, as in the ledger, but not
// available.
func (a *api) accountBalance(ctx context.Context, tenantID int64) (accountBalanceJSON, error) {
	report, err := a.Reader.Balance(ctx, tenantID, "", nil)
	if err != nil {
		return accountBalanceJSON{}, err
	}
	lines, err := a.Reader.SpendableNow(ctx, tenantID, a.Clock())
	if err != nil {
		return accountBalanceJSON{}, err
	}
	available := decimal.Zero
	for _, l := range lines {
		available = available.Add(l.Spendable)
	}
	t := report.Total
	out := accountBalanceJSON{UserID: tenantID, Balance: web.Number(t.Balance), Reserved: web.Number(t.Reserved), Available: web.Number(available),
		Currency: report.Currency}
	if !t.LastUpdated.IsZero() {
		at := t.LastUpdated
		out.LastUpdated = &at
	}
	for _, l := range report.Lines {
		if l.CreditType == domain.DefaultCreditType {
			out.AutoReloadEnabled, out.AutoReloadThreshold, out.AutoReloadAmount = l.AutoReload.Enabled, web.Number(l.AutoReload.Threshold), web.Number(l.AutoReload.Amount)
		}
	}
	return out, nil
}

func (a *api) accountCredits(w http.ResponseWriter, r *http.Request, tenantID int64) {
	out, err := a.accountBalance(r.Context(), tenantID)
	if err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// integerParam reads the optional integer parameter name, at least least;
// 0 when absent, and one error when it is not such an integer.
func integerParam(params url.Values, name string, least int, errs *[]error) int {
	text := params.Get(name)
	if text == "" {
		return 0
	}
	v, err := strconv.Atoi(text)
	switch {
	case err != nil:
		*errs = append(*errs, &queries.ParamError{Param: name, Message: "must be an integer", Value: text})
	case v < least:
		*errs = append(*errs, &queries.ParamError{Param: name, Message: fmt.Sprintf("must be at least %d", least), Value: text})
	}
	return v
}

// accountLedger lists the account's entries newest first by when what they
// record happened, the time /usage counts usage by, each with the balance
// of all the account's lines after it (queries.OccurrenceLedger). This API
// knows no expiry type, so expiries are adjustments (with their negative
// amount).
func (a *api) accountLedger(w http.ResponseWriter, r *http.Request, tenantID int64) {
	params := r.URL.Query()
	var errs []error
	f := queries.LedgerFilter{
		From: instantParam(params, "from", false, &errs), To: instantParam(params, "to", true, &errs),
		Limit: integerParam(params, "limit", 1, &errs), Offset: integerParam(params, "offset", 0, &errs),
	}
	// The seed's limit has a maximum, not a refusal: more reads as the
	// most a page holds, which the answer's limit then says.
	f.Limit = min(f.Limit, queries.PageLimitMax)
	switch t := params.Get("type"); t {
	case "":
	case "credit", "debit":
		f.Types = []string{t}
	case "adjustment":
		f.Types = []string{"adjustment", "expiry"}
	default:
		errs = append(errs, &queries.ParamError{Param: "type", Message: "must be credit, debit or adjustment", Value: t})
	}
	if err := errors.Join(errs...); err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	page, err := a.Reader.OccurrenceLedger(r.Context(), tenantID, f)
	if err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	out := accountLedgerJSON{Entries: []accountLedgerEntryJSON{}, Total: page.Total, Limit: page.Limit, Offset: page.Offset}
	for _, e := range page.Entries {
		entryType := e.Type
		if entryType == "expiry" {
			entryType = "adjustment"
		}
		out.Entries = append(out.Entries, accountLedgerEntryJSON{ID: e.ID, UserID: tenantID, Type: entryType, Amount: web.Number(e.Amount),
			BalanceAfter: web.Number(e.BalanceAfter), Description: e.Description, Reference: e.Reference, Metadata: e.Metadata, CreatedAt: e.CreatedAt})
	}
	web.WriteJSON(w, http.StatusOK, out)
}

func (a *api) accountSummary(w http.ResponseWriter, r *http.Request, tenantID int64) {
	ctx := r.Context()
	now := a.Clock().UTC()
	tenant, err := a.Reader.Tenant(ctx, tenantID)
	if err != nil {
		a.WriteSummaryError(w, r, err)
		return
	}
	balance, err := a.accountBalance(ctx, tenantID)
	if err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	month, err := a.accountUsageStats(ctx, tenantID, "monthly", monthStart(now), now)
	if err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	summary, err := a.Reader.Summary(ctx, tenantID, now)
	if err != nil {
		a.WriteSummaryError(w, r, err)
		return
	}
	out := accountSummaryJSON{UserID: tenantID, Email: tenant.Email, CreditBalance: balance, UsageThisMonth: month,
		TotalRequestsAllTime: summary.LifetimeUsage.Requests, AccountCreatedAt: tenant.CreatedAt, LastLoginAt: a.PreviousUse(r)}
	subs, err := a.Reader.Subscriptions(ctx, tenantID, now)
	if err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	if len(subs) > 0 && subs[0].Active {
		s := subs[0]
		status := "active"
		if s.CancelAt != nil {
			status = "canceling"
		}
		out.Subscription = &accountSubscriptionJSON{ID: s.ID, CreditType: s.CreditType, Status: status, Period: s.Period,
			CreditsPerPeriod: web.Number(s.CreditsPerPeriod), Rollover: s.Rollover, CurrentPeriodStart: s.CurrentPeriodStart,
			CurrentPeriodEnd: s.CurrentPeriodEnd, CancelAt: s.CancelAt}
		if s.PriceAmount != nil {
			out.Subscription.Price = &web.Price{Amount: web.Number(*s.PriceAmount), Currency: s.PriceCurrency}
		}
	}
	web.WriteJSON(w, http.StatusOK, out)
}
