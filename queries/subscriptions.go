package queries

import (
	"context"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
)

// Subscription is a subscription as the read models know it.
type Subscription struct {
	ID                 string
	CreditType         string
	CreditsPerPeriod   decimal.Decimal
	Period             string
	StartsAt           time.Time
	PriceAmount        *decimal.Decimal
	PriceCurrency      string
	Rollover           bool
	CancelAt           *time.Time
	Active             bool
	CurrentPeriodStart *time.Time
	CurrentPeriodEnd   *time.Time
}

// Subscriptions lists the tenant's subscriptions, active ones first, and
// their current period at now.
func (r *Reader) Subscriptions(ctx context.Context, tenantID int64, now time.Time) ([]Subscription, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT subscription_id, credit_type, credits_per_period, period, starts_at,
		price_amount, price_currency, rollover, cancel_at FROM subscriptions WHERE tenant_id = ? ORDER BY starts_at DESC, subscription_id`, tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var active, inactive []Subscription
	for rows.Next() {
		var s Subscription
		var credits, starts int64
		var price, cancel *int64
		if err := rows.Scan(&s.ID, &s.CreditType, &credits, &s.Period, &starts, &price, &s.PriceCurrency, &s.Rollover, &cancel); err != nil {
			return nil, err
		}
		s.CreditsPerPeriod, s.StartsAt = fromMicro(credits), fromMicros(starts)
		if price != nil {
			p := fromMicro(*price)
			s.PriceAmount = &p
		}
		state := domain.Subscription{ID: s.ID, StartsAt: s.StartsAt}
		if cancel != nil {
			c := fromMicros(*cancel)
			s.CancelAt, state.CancelAt = &c, &c
		}
		s.Active = state.Active(now)
		if n := state.PeriodAt(now); n >= 0 && s.Active {
			start, end := state.PeriodStart(n), state.PeriodStart(n+1)
			s.CurrentPeriodStart, s.CurrentPeriodEnd = &start, &end
		}
		if s.Active {
			active = append(active, s)
		} else {
			inactive = append(inactive, s)
		}
	}
	return append(active, inactive...), rows.Err()
}
