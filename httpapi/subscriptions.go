package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/httpapi/internal/web"
)

type priceJSON struct {
	Amount   Amount `json:"amount" required:"true"`
	Currency string `json:"currency"`
}

type subscriptionRequest struct {
	SubscriptionID   string     `json:"subscription_id"`
	CreditType       string     `json:"credit_type"`
	CreditsPerPeriod Amount     `json:"credits_per_period" required:"true"`
	Period           string     `json:"period" enum:"monthly"`
	StartsAt         Timestamp  `json:"starts_at"`
	Price            *priceJSON `json:"price"`
	Rollover         bool       `json:"rollover"`
}

type subscriptionResponse struct {
	SubscriptionID   string     `json:"subscription_id"`
	CreditType       string     `json:"credit_type"`
	CreditsPerPeriod *Number    `json:"credits_per_period,omitempty"`
	Period           string     `json:"period,omitempty" enum:"monthly"`
	StartsAt         *time.Time `json:"starts_at,omitempty"`
	Price            *web.Price `json:"price,omitempty"`
	Rollover         bool       `json:"rollover"`
	EndsAt           *time.Time `json:"ends_at,omitempty"`
	Status           string     `json:"status" enum:"accepted,duplicate"`
	Position         uint64     `json:"position"`
}

func (a *API) startSubscription(w http.ResponseWriter, r *http.Request, tenantID int64) {
	var req subscriptionRequest
	if err := decodeJSON(w, r, bodyMax, &req); err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	var check fieldCheck
	req.CreditsPerPeriod.check(&check, "credits_per_period", true)
	req.StartsAt.check(&check, "starts_at")
	subscriptionID := writeID(&check, r, req.SubscriptionID, "subscription_id", "sub_")
	if req.Price != nil {
		req.Price.Amount.check(&check, "price.amount", true)
	}
	if err := check.err(); err != nil {
		writeProblem(w, r, a.log, validationProblem("body.", err))
		return
	}
	c := domain.StartSubscription{
		SubscriptionID: subscriptionID, CreditsPerPeriod: req.CreditsPerPeriod.Value,
		Period: domain.Period(req.Period), StartsAt: req.StartsAt.Value, Rollover: req.Rollover,
	}
	if c.Period == "" {
		c.Period = domain.PeriodMonthly
	}
	if req.Price != nil {
		c.PriceAmount, c.PriceCurrency = &req.Price.Amount.Value, req.Price.Currency
	}
	creditType := creditTypeOrDefault(req.CreditType)
	if err := errors.Join(domain.ValidateCreditType(creditType), c.Validate()); err != nil {
		writeProblem(w, r, a.log, validationProblem("body.", err))
		return
	}
	res, err := a.writer.StartSubscription(r.Context(), tenantID, creditType, c)
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	e := res.Events[0].(domain.SubscriptionStarted)
	credits := Number(e.CreditsPerPeriod)
	out := subscriptionResponse{SubscriptionID: e.SubscriptionID, CreditType: creditType, CreditsPerPeriod: &credits, Period: string(e.Period),
		StartsAt: &e.StartsAt, Rollover: e.Rollover, Status: string(res.Status), Position: res.Position}
	if e.PriceAmount != nil {
		out.Price = &web.Price{Amount: Number(*e.PriceAmount), Currency: e.PriceCurrency}
	}
	writeJSON(w, createdStatus(res.Duplicate), out)
}

func (a *API) cancelSubscription(w http.ResponseWriter, r *http.Request, tenantID int64) {
	creditType, ok := a.queryCreditType(w, r)
	if !ok {
		return
	}
	res, err := a.writer.CancelSubscription(r.Context(), tenantID, creditType, r.PathValue("subscription_id"))
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	e := res.Events[0].(domain.SubscriptionCanceled)
	writeJSON(w, http.StatusOK, subscriptionResponse{SubscriptionID: e.SubscriptionID, EndsAt: &e.EndsAt, Status: string(res.Status), Position: res.Position})
}
