package queries

import (
	"context"
	"time"

	"github.com/shopspring/decimal"
)

// reversalDescriptionPrefix starts the description of the ledger entry a
// usage reversal writes (projections/apply.go): an adjustment whose
// source_id is the usage's id.
const reversalDescriptionPrefix = "usage reversed: "

// usedEdgeQuery sums per line the debits that occurred in [?, ?), less
// those reversed. A reversal is recorded after its debit, with the same
// source id and the opposite amount: each debit looks for one among the
// tenant's adjustments recorded after it, through the type index, which
// holds no debits (notDebit). Left to itself, SQLite read the line's index
// instead, every entry of the line after the debit, debits included, for
// each debit of the partial day.
const usedEdgeQuery = `SELECT d.credit_type, -sum(d.amount) FROM ledger d
	WHERE d.tenant_id = ? AND d.type = 'debit' AND d.occurred_at >= ? AND d.occurred_at < ?
	AND NOT EXISTS (SELECT 1 FROM ledger v INDEXED BY ledger_tenant_type_time
		WHERE v.tenant_id = d.tenant_id AND v.` + notDebit + ` AND v.type = 'adjustment'
		AND v.created_at >= d.created_at AND v.credit_type = d.credit_type AND v.source_id = d.source_id
		AND v.amount = -d.amount AND substr(v.description, 1, ?) = ?)
	GROUP BY d.credit_type`

// UsedByLine sums, per credit line, the usage (debits and captures, less
// what was reversed) that occurred in [from, to): whole UTC days from the
// usage rollup, which reversals already took back, and the partial days at
// the edges from the ledger, which keeps each debit's own time.
func (r *Reader) UsedByLine(ctx context.Context, tenantID int64, from, to time.Time) (map[string]decimal.Decimal, error) {
	const dayMicros = 86400 * 1e6
	fromMicros, toMicros := from.UnixMicro(), to.UnixMicro()
	// The whole days in [from, to), and the parts of days around them.
	firstFull, lastFull := ceilDiv(fromMicros, dayMicros), floorDiv(toMicros, dayMicros)-1
	var edges [][2]int64
	if firstFull > lastFull {
		edges = append(edges, [2]int64{fromMicros, toMicros})
	} else {
		edges = append(edges, [2]int64{fromMicros, firstFull * dayMicros}, [2]int64{(lastFull + 1) * dayMicros, toMicros})
	}
	used := map[string]int64{}
	add := func(query string, args ...any) error {
		rows, err := r.db.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var ct string
			var credits int64
			if err := rows.Scan(&ct, &credits); err != nil {
				return err
			}
			used[ct] += credits
		}
		return rows.Err()
	}
	if firstFull <= lastFull {
		if err := add(`SELECT value, sum(credits) FROM usage_rollup WHERE tenant_id = ? AND dimension = 'credit_type' AND day BETWEEN ? AND ?
			GROUP BY value`, tenantID, firstFull, lastFull); err != nil {
			return nil, err
		}
	}
	for _, e := range edges {
		if e[0] >= e[1] {
			continue
		}
		if err := add(usedEdgeQuery, tenantID, e[0], e[1], len(reversalDescriptionPrefix), reversalDescriptionPrefix); err != nil {
			return nil, err
		}
	}
	out := make(map[string]decimal.Decimal, len(used))
	for ct, credits := range used {
		out[ct] = fromMicro(credits)
	}
	return out, nil
}
