package queries

import (
	"context"

	"github.com/shopspring/decimal"
)

// Cost is a price per credit.
type Cost struct {
	PerCredit decimal.Decimal
	Currency  string
}

// Breakdown ranks every value of one rolled dimension by credits spent over
// the range's whole days, largest first (no top-N cut).
func (r *Reader) Breakdown(ctx context.Context, tenantID int64, rng Range, dimension string) ([]Ranked, error) {
	if !rolledColumns[dimension] {
		return nil, &ParamError{Param: "dimension", Message: "cannot be broken down", Value: dimension}
	}
	rows, err := r.db.QueryContext(ctx, `SELECT value, sum(credits), sum(requests), sum(quantity) FROM usage_rollup
		WHERE tenant_id = ? AND dimension = ? AND day BETWEEN ? AND ? GROUP BY value HAVING sum(credits) != 0
		ORDER BY sum(credits) DESC, value LIMIT ?`, tenantID, dimension, rng.FromDay, rng.ToDay, usageRowsExceeds)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Ranked
	for rows.Next() {
		var rk Ranked
		var credits, quantity int64
		if err := rows.Scan(&rk.Key, &credits, &rk.Requests, &quantity); err != nil {
			return nil, err
		}
		rk.Total, rk.Quantity = fromMicro(credits), fromMicro(quantity)
		out = append(out, rk)
	}
	return out, rows.Err()
}
