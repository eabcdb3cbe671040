package projections

import (
	"database/sql"
	"encoding/json"

	"github.com/creditd/creditd/domain"
)

// Notice kinds.
const (
	NoticeLowBalance = "low_balance"
	NoticeDepleted   = "depleted"
)

// tenantThresholds returns a tenant's notice thresholds (micro-credits,
// highest first), cached for the batch.
func (b *batch) tenantThresholds(tenantID int64) ([]int64, error) {
	if t, ok := b.thresholds[tenantID]; ok {
		return t, nil
	}
	var text string
	err := b.tx.QueryRowContext(b.ctx, `SELECT notice_thresholds FROM tenants WHERE tenant_id = ?`, tenantID).Scan(&text)
	if err != nil && err != sql.ErrNoRows {
		return nil, err
	}
	var t []int64
	if text != "" {
		if err := json.Unmarshal([]byte(text), &t); err != nil {
			return nil, err
		}
	}
	b.thresholds[tenantID] = t
	return t, nil
}

// checkNotices records a notice for each threshold the line's available
// credits fell below with this event, and one when they reached zero: each
// crossing once, decided by the event stream alone, recorded in the same
// transaction as the event.
func (b *batch) checkNotices(env domain.Envelope, before, after int64, seq uint64, at int64) error {
	if after >= before {
		return nil
	}
	thresholds, err := b.tenantThresholds(env.TenantID)
	if err != nil {
		return err
	}
	record := func(kind string, threshold int64) error {
		b.noticesWritten++
		_, err := b.tx.ExecContext(b.ctx, `INSERT INTO notices (tenant_id, credit_type, kind, threshold, available, position, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, env.TenantID, env.CreditType, kind, threshold, after, seq, at)
		return err
	}
	for _, t := range thresholds {
		if before >= t && after < t {
			if err := record(NoticeLowBalance, t); err != nil {
				return err
			}
		}
	}
	if len(thresholds) > 0 && before > 0 && after <= 0 {
		return record(NoticeDepleted, 0)
	}
	return nil
}
