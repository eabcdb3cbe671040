package compat

import (
	"math"
	"net/http"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/httpapi/internal/web"
)

// The tamtam profile (seed 002): per credit line, the credits used in its
// current period, those remaining and their sum, as the seed's int32
// integers. Its errors are the seed's ErrorModel exactly (no extra
// members), and it takes the bare API key in Authorization as well as a
// Bearer one.
//
// A line's current period is that of its active subscription (the one
// started first, if several), else the calendar month (UTC). Used is the
// usage that occurred in it, whichever grant paid for it; remaining is
// what the line can spend now (queries.SpendableNow: holds out, positive
// adjustments in, grants not yet effective out); total is used +
// remaining. Used rounds up and remaining down, so that neither shows
// more to spend than there is and the three still add up. Past int32 each
// is clamped to its range. A line is listed when it has an active
// subscription, usage in its period or credits to spend.

func (a *api) tamtamRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/compat/tamtam/api/v2/credits", Summary: "tamtam: credits used in the current period and remaining, per credit line", BareKey: true,
			Errors: Errors{Shape: ErrorShapeErrorModel}, Handler: a.tamtamCredits, Response: tamtamCreditsJSON{}},
	}
}

type tamtamLineJSON struct {
	CreditType       string `json:"credit_type"`
	RemainingCredits int32  `json:"remaining_credits"`
	TotalCredits     int32  `json:"total_credits"`
	UsedCredits      int32  `json:"used_credits"`
}

type tamtamCreditsJSON struct {
	Credits []tamtamLineJSON `json:"credits"`
}

// tamtamPeriod is a current period, [start, end).
type tamtamPeriod struct{ start, end time.Time }

func (a *api) tamtamCredits(w http.ResponseWriter, r *http.Request, tenantID int64) {
	ctx, now := r.Context(), a.Clock().UTC()
	lines, err := a.Reader.SpendableNow(ctx, tenantID, now)
	if err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	subs, err := a.Reader.Subscriptions(ctx, tenantID, now)
	if err != nil {
		a.WriteReadError(w, r, err)
		return
	}
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	periods, firstStart := map[string]tamtamPeriod{}, map[string]time.Time{}
	for _, sub := range subs {
		if !sub.Active || sub.CurrentPeriodStart == nil {
			continue
		}
		if first, ok := firstStart[sub.CreditType]; !ok || sub.StartsAt.Before(first) {
			firstStart[sub.CreditType] = sub.StartsAt
			periods[sub.CreditType] = tamtamPeriod{*sub.CurrentPeriodStart, *sub.CurrentPeriodEnd}
		}
	}
	// One read per distinct period: the month, and each subscription's.
	used := map[tamtamPeriod]map[string]decimal.Decimal{}
	for _, l := range lines {
		p, ok := periods[l.CreditType]
		if !ok {
			p = tamtamPeriod{month, month.AddDate(0, 1, 0)}
			periods[l.CreditType] = p
		}
		if _, read := used[p]; read {
			continue
		}
		if used[p], err = a.Reader.UsedByLine(ctx, tenantID, p.start, p.end); err != nil {
			a.WriteReadError(w, r, err)
			return
		}
	}
	out := tamtamCreditsJSON{Credits: []tamtamLineJSON{}}
	for _, l := range lines {
		lineUsed := used[periods[l.CreditType]][l.CreditType]
		_, subscribed := firstStart[l.CreditType]
		if !subscribed && lineUsed.IsZero() && l.Spendable.IsZero() {
			continue
		}
		usedCredits, remainingCredits := tamtamInt32(lineUsed.Ceil()), tamtamInt32(l.Spendable.Floor())
		out.Credits = append(out.Credits, tamtamLineJSON{CreditType: l.CreditType, UsedCredits: usedCredits, RemainingCredits: remainingCredits,
			TotalCredits: tamtamInt32(decimal.NewFromInt(int64(usedCredits) + int64(remainingCredits)))})
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// tamtamInt32 clamps a whole number of credits to the seed's int32.
func tamtamInt32(v decimal.Decimal) int32 {
	switch {
	case v.GreaterThan(decimal.NewFromInt(math.MaxInt32)):
		return math.MaxInt32
	case v.LessThan(decimal.NewFromInt(math.MinInt32)):
		return math.MinInt32
	}
	return int32(v.IntPart())
}
