package queries

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
)

// LineBalance is one credit line's balance.
type LineBalance struct {
	CreditType  string
	Granted     decimal.Decimal
	Adjusted    decimal.Decimal
	Used        decimal.Decimal
	Expired     decimal.Decimal
	Balance     decimal.Decimal
	Reserved    decimal.Decimal
	Available   decimal.Decimal
	AutoReload  AutoReload
	LastUpdated time.Time
	// ExpiringSoon is what the line's grants hold that expires within
	// ExpiringSoonWindow (current balances only).
	ExpiringSoon decimal.Decimal
}

// ExpiringSoonWindow is how far ahead "expiring soon" looks.
const ExpiringSoonWindow = 30 * 24 * time.Hour

// AutoReload is a line's auto-reload setting.
type AutoReload struct {
	Enabled   bool
	Threshold decimal.Decimal
	Amount    decimal.Decimal
}

// BalanceReport is every line of a tenant and their sum.
type BalanceReport struct {
	Currency string
	Lines    []LineBalance
	Total    LineBalance
}

type lineTotals struct {
	granted, adjusted, used, expired, reserved int64
}

func (t lineTotals) balance(creditType string, lastUpdated int64, ar AutoReload) LineBalance {
	balance := t.granted + t.adjusted - t.used - t.expired
	return LineBalance{
		CreditType: creditType, Granted: fromMicro(t.granted), Adjusted: fromMicro(t.adjusted), Used: fromMicro(t.used),
		Expired: fromMicro(t.expired), Balance: fromMicro(balance), Reserved: fromMicro(t.reserved),
		Available: fromMicro(balance - t.reserved), AutoReload: ar, LastUpdated: fromMicros(lastUpdated),
	}
}

// add adds a line's amounts to b's.
func (b *LineBalance) add(line LineBalance) {
	b.Granted, b.Adjusted, b.Used = b.Granted.Add(line.Granted), b.Adjusted.Add(line.Adjusted), b.Used.Add(line.Used)
	b.Expired, b.Balance = b.Expired.Add(line.Expired), b.Balance.Add(line.Balance)
	b.Reserved, b.Available = b.Reserved.Add(line.Reserved), b.Available.Add(line.Available)
}

// Balance returns the tenant's lines (one when creditType is set) and their
// sum, now or, with asOf, as they stood at that instant (by the time events
// were recorded). An as-of answer lists the lines that had a credit
// movement or a hold by then; their LastUpdated is the last of those.
func (r *Reader) Balance(ctx context.Context, tenantID int64, creditType string, asOf *time.Time) (BalanceReport, error) {
	report := BalanceReport{Total: LineBalance{CreditType: "*"}}
	if err := r.db.QueryRowContext(ctx, `SELECT currency FROM tenants WHERE tenant_id = ?`, tenantID).Scan(&report.Currency); err != nil && err != sql.ErrNoRows {
		return report, err
	}
	rows, err := r.db.QueryContext(ctx, `SELECT credit_type, granted, adjusted, used, expired, reserved,
		auto_reload_enabled, auto_reload_threshold, auto_reload_amount, last_updated
		FROM lines WHERE tenant_id = ? AND (? = '' OR credit_type = ?) ORDER BY credit_type`, tenantID, creditType, creditType)
	if err != nil {
		return report, err
	}
	defer rows.Close()
	// The total is added in decimals: each line's totals fit int64
	// micro-credits (domain.LineTotalMax), a tenant's sum over its lines,
	// whose number is not bounded, need not.
	total := LineBalance{CreditType: "*"}
	var lastUpdated int64
	for rows.Next() {
		var ct string
		var t lineTotals
		var enabled bool
		var threshold, amount, updated int64
		if err := rows.Scan(&ct, &t.granted, &t.adjusted, &t.used, &t.expired, &t.reserved, &enabled, &threshold, &amount, &updated); err != nil {
			return report, err
		}
		ar := AutoReload{Enabled: enabled, Threshold: fromMicro(threshold), Amount: fromMicro(amount)}
		if asOf != nil {
			var found bool
			if t, updated, found, err = r.lineAsOf(ctx, tenantID, ct, *asOf); err != nil {
				return report, err
			}
			if !found {
				continue
			}
		}
		line := t.balance(ct, updated, ar)
		report.Lines = append(report.Lines, line)
		total.add(line)
		lastUpdated = max(lastUpdated, updated)
	}
	if err := rows.Err(); err != nil {
		return report, err
	}
	if asOf == nil && len(report.Lines) > 0 {
		if err := r.expiringSoon(ctx, tenantID, report.Lines); err != nil {
			return report, err
		}
	}
	total.LastUpdated = fromMicros(lastUpdated)
	if lastUpdated == 0 {
		total.LastUpdated = time.Time{}
	}
	report.Total = total
	return report, nil
}

func (r *Reader) expiringSoon(ctx context.Context, tenantID int64, lines []LineBalance) error {
	now := time.Now()
	rows, err := r.db.QueryContext(ctx, `SELECT credit_type, sum(remaining) FROM grants WHERE tenant_id = ? AND expires_at > ? AND expires_at <= ?
		AND remaining > 0 GROUP BY credit_type`, tenantID, now.UnixMicro(), now.Add(ExpiringSoonWindow).UnixMicro())
	if err != nil {
		return err
	}
	defer rows.Close()
	soon := map[string]int64{}
	for rows.Next() {
		var ct string
		var v int64
		if err := rows.Scan(&ct, &v); err != nil {
			return err
		}
		soon[ct] = v
	}
	for i := range lines {
		lines[i].ExpiringSoon = fromMicro(soon[lines[i].CreditType])
	}
	return rows.Err()
}

// lineAsOf reads a line's totals at an instant: the running totals of its
// last ledger entry at or before it, and the holds open then.
func (r *Reader) lineAsOf(ctx context.Context, tenantID int64, creditType string, asOf time.Time) (lineTotals, int64, bool, error) {
	at := asOf.UnixMicro()
	var t lineTotals
	var updated int64
	found := true
	err := r.db.QueryRowContext(ctx, `SELECT granted_after, adjusted_after, used_after, expired_after, created_at
		FROM ledger WHERE tenant_id = ? AND credit_type = ? AND created_at <= ?
		ORDER BY created_at DESC, entry_id DESC LIMIT 1`, tenantID, creditType, at).Scan(&t.granted, &t.adjusted, &t.used, &t.expired, &updated)
	if err == sql.ErrNoRows {
		found = false
	} else if err != nil {
		return t, 0, false, fmt.Errorf("ledger as of: %w", err)
	}
	var lastHold sql.NullInt64
	err = r.db.QueryRowContext(ctx, `SELECT coalesce(sum(amount), 0), max(reserved_at) FROM reservations
		WHERE tenant_id = ? AND credit_type = ? AND reserved_at <= ? AND (closed_at IS NULL OR closed_at > ?)`,
		tenantID, creditType, at, at).Scan(&t.reserved, &lastHold)
	if err != nil {
		return t, 0, false, fmt.Errorf("holds as of: %w", err)
	}
	if lastHold.Valid {
		found = true
		updated = max(updated, lastHold.Int64)
	}
	return t, updated, found, nil
}
