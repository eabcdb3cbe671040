package queries

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// ErrTenantNotFound: the read models have no such tenant (yet).
var ErrTenantNotFound = errors.New("tenant not found in the read models")

// Summary is a tenant's profile and headline numbers.
type Summary struct {
	TenantID       int64
	Name           string
	Email          string
	Currency       string
	CreatedAt      time.Time
	Balance        BalanceReport
	UsageThisMonth UsageTotals
	LifetimeUsage  UsageTotals
	RejectedDebits int64
	LastUsageAt    *time.Time
	MonthStart     time.Time
}

// Summary returns the tenant's profile, balances, this month's usage (UTC)
// and lifetime totals.
func (r *Reader) Summary(ctx context.Context, tenantID int64, now time.Time) (Summary, error) {
	s := Summary{TenantID: tenantID}
	var created int64
	err := r.db.QueryRowContext(ctx, `SELECT name, email, currency, created_at FROM tenants WHERE tenant_id = ?`, tenantID).
		Scan(&s.Name, &s.Email, &s.Currency, &created)
	if err == sql.ErrNoRows {
		return s, ErrTenantNotFound
	}
	if err != nil {
		return s, err
	}
	s.CreatedAt = fromMicros(created)
	if s.Balance, err = r.Balance(ctx, tenantID, "", nil); err != nil {
		return s, err
	}
	now = now.UTC()
	s.MonthStart = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	month, err := r.Usage(ctx, tenantID, UsageQuery{Range: Range{From: s.MonthStart, To: now, FromDay: dayOf(s.MonthStart), ToDay: dayOf(now)}, Granularity: GranularityNone})
	if err != nil {
		return s, err
	}
	s.UsageThisMonth = month.Totals
	var credits, quantity int64
	var last sql.NullInt64
	err = r.db.QueryRowContext(ctx, `SELECT requests, successes, failures, credits, quantity, rejected, last_usage_at
		FROM tenant_totals WHERE tenant_id = ?`, tenantID).Scan(&s.LifetimeUsage.Requests, &s.LifetimeUsage.Successful,
		&s.LifetimeUsage.Failed, &credits, &quantity, &s.RejectedDebits, &last)
	if err != nil && err != sql.ErrNoRows {
		return s, err
	}
	s.LifetimeUsage.Credits, s.LifetimeUsage.Quantity = fromMicro(credits), fromMicro(quantity)
	if last.Valid {
		t := fromMicros(last.Int64)
		s.LastUsageAt = &t
	}
	return s, nil
}
