package queries

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"
)

// Tenant is a tenant's profile and display settings.
type Tenant struct {
	ID             int64
	Name           string
	Email          string
	Currency       string
	CurrencyConfig json.RawMessage
	CreatedAt      time.Time
	// NoticeThresholds are in micro-credits, highest first.
	NoticeThresholds []int64
	WebhookURL       string
}

// Tenant reads a tenant's profile; ErrTenantNotFound before it is projected.
func (r *Reader) Tenant(ctx context.Context, tenantID int64) (Tenant, error) {
	t := Tenant{ID: tenantID}
	var config, thresholds string
	var created int64
	err := r.db.QueryRowContext(ctx, `SELECT name, email, currency, currency_config, created_at, notice_thresholds, webhook_url
		FROM tenants WHERE tenant_id = ?`, tenantID).Scan(&t.Name, &t.Email, &t.Currency, &config, &created, &thresholds, &t.WebhookURL)
	if err == sql.ErrNoRows {
		return t, ErrTenantNotFound
	}
	if err != nil {
		return t, err
	}
	t.CurrencyConfig, t.CreatedAt = json.RawMessage(config), fromMicros(created)
	return t, json.Unmarshal([]byte(thresholds), &t.NoticeThresholds)
}

// LatestGrantCost is the cost basis of the tenant's most recent grant that
// has one: its cost per credit and currency.
func (r *Reader) LatestGrantCost(ctx context.Context, tenantID int64) (cost *Cost, err error) {
	var amount int64
	var currency string
	err = r.db.QueryRowContext(ctx, `SELECT cost_per_credit, currency FROM grants WHERE tenant_id = ? AND cost_per_credit IS NOT NULL
		ORDER BY granted_at DESC, position DESC LIMIT 1`, tenantID).Scan(&amount, &currency)
	if err == sql.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &Cost{PerCredit: fromMicro(amount), Currency: currency}, nil
}
