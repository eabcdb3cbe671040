package queries

import (
	"context"
	"time"

	"github.com/shopspring/decimal"
)

// GrantTotals sums a line's active grants: effective at the instant, not
// expired and not voided. Used is what was burned from them.
type GrantTotals struct {
	CreditType string
	Total      decimal.Decimal
	Used       decimal.Decimal
	Remaining  decimal.Decimal
}

// ActiveGrants sums each line's grants active at now.
func (r *Reader) ActiveGrants(ctx context.Context, tenantID int64, now time.Time) ([]GrantTotals, error) {
	at := now.UnixMicro()
	rows, err := r.db.QueryContext(ctx, `SELECT credit_type, coalesce(sum(amount), 0), coalesce(sum(remaining), 0) FROM grants
		WHERE tenant_id = ? AND effective_at <= ? AND (expires_at IS NULL OR expires_at > ?) AND expired = 0 AND voided = 0
		GROUP BY credit_type ORDER BY credit_type`, tenantID, at, at)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []GrantTotals
	for rows.Next() {
		var g GrantTotals
		var total, remaining int64
		if err := rows.Scan(&g.CreditType, &total, &remaining); err != nil {
			return nil, err
		}
		g.Total, g.Remaining, g.Used = fromMicro(total), fromMicro(remaining), fromMicro(total-remaining)
		out = append(out, g)
	}
	return out, rows.Err()
}
