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
	return r.rank(ctx, tenantID, rng, dimension, usageRowsExceeds, false)
}
