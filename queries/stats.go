package queries

import (
	"context"
	"time"

	"github.com/shopspring/decimal"
)

// topMax bounds the top lists of a stats report.
const topMax = 10

// DailySpend is one day's spend with its splits.
type DailySpend struct {
	Date     string
	Total    decimal.Decimal
	ByModule map[string]decimal.Decimal
	ByUser   map[string]decimal.Decimal
}

// Ranked is one entry of a top list.
type Ranked struct {
	Key      string
	Total    decimal.Decimal
	Requests int64
	Quantity decimal.Decimal
}

// StatsReport summarises spend over a range.
type StatsReport struct {
	Range Range
	Spent decimal.Decimal
	// PreviousSpent is the spend in the same number of days just before.
	PreviousSpent decimal.Decimal
	// ChangePct is (spent − previous) / previous × 100 rounded to one
	// decimal, nil when previous is 0.
	ChangePct  *decimal.Decimal
	Daily      []DailySpend
	TopModules []Ranked
	TopService []Ranked
	TopUsers   []Ranked
}

// Stats reports the tenant's spend over whole UTC days of r.
func (r *Reader) Stats(ctx context.Context, tenantID int64, rng Range) (StatsReport, error) {
	report := StatsReport{Range: rng}
	days := rng.ToDay - rng.FromDay + 1
	var spent, previous int64
	err := r.db.QueryRowContext(ctx, `SELECT
		coalesce(sum(CASE WHEN day >= ? THEN credits END), 0),
		coalesce(sum(CASE WHEN day < ? THEN credits END), 0)
		FROM usage_rollup WHERE tenant_id = ? AND dimension = '' AND day BETWEEN ? AND ?`,
		rng.FromDay, rng.FromDay, tenantID, rng.FromDay-days, rng.ToDay).Scan(&spent, &previous)
	if err != nil {
		return report, err
	}
	report.Spent, report.PreviousSpent = fromMicro(spent), fromMicro(previous)
	report.ChangePct = ChangePct(report.Spent, report.PreviousSpent)

	byDay := map[int64]*DailySpend{}
	var order []int64
	// Each day's total is its rollup by no dimension (column '', value
	// ''): it keeps the usage without a module or user, which the splits
	// leave out (no "" key: docs/compat.md).
	split := func(column string, set func(d *DailySpend, key string, v decimal.Decimal)) error {
		rows, err := r.db.QueryContext(ctx, `SELECT day, value, credits FROM usage_rollup
			WHERE tenant_id = ? AND dimension = ? AND day BETWEEN ? AND ? AND credits != 0 AND (value != '' OR dimension = '') ORDER BY day`,
			tenantID, column, rng.FromDay, rng.ToDay)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var day, credits int64
			var key string
			if err := rows.Scan(&day, &key, &credits); err != nil {
				return err
			}
			d, ok := byDay[day]
			if !ok {
				d = &DailySpend{Date: dayStart(day).Format(time.DateOnly), ByModule: map[string]decimal.Decimal{}, ByUser: map[string]decimal.Decimal{}}
				byDay[day] = d
				order = append(order, day)
			}
			set(d, key, fromMicro(credits))
		}
		return rows.Err()
	}
	if err := split("", func(d *DailySpend, _ string, v decimal.Decimal) { d.Total = v }); err != nil {
		return report, err
	}
	if err := split("module", func(d *DailySpend, key string, v decimal.Decimal) { d.ByModule[key] = v }); err != nil {
		return report, err
	}
	if err := split("user_id", func(d *DailySpend, key string, v decimal.Decimal) { d.ByUser[key] = v }); err != nil {
		return report, err
	}
	for _, day := range order {
		report.Daily = append(report.Daily, *byDay[day])
	}
	for _, top := range []struct {
		column string
		into   *[]Ranked
	}{{"module", &report.TopModules}, {"service", &report.TopService}, {"user_id", &report.TopUsers}} {
		ranked, err := r.top(ctx, tenantID, rng, top.column)
		if err != nil {
			return report, err
		}
		*top.into = ranked
	}
	return report, nil
}

// top ranks the values of one rolled dimension by credits spent, values
// used for free included, usage without the dimension left out.
func (r *Reader) top(ctx context.Context, tenantID int64, rng Range, dimension string) ([]Ranked, error) {
	return r.rank(ctx, tenantID, rng, dimension, topMax, true)
}

// rank lists the values of one rolled dimension over the range's whole days
// by credits spent, largest first, at most limit of them. Usage without a
// value of the dimension is in no entry (no "" key: docs/compat.md).
func (r *Reader) rank(ctx context.Context, tenantID int64, rng Range, dimension string, limit int, withFree bool) ([]Ranked, error) {
	having := " HAVING sum(credits) != 0"
	if withFree {
		having = ""
	}
	// having is one of two constants: no user text reaches the SQL.
	rows, err := r.db.QueryContext(ctx, `SELECT value, sum(credits), sum(requests), sum(quantity) FROM usage_rollup
		WHERE tenant_id = ? AND dimension = ? AND day BETWEEN ? AND ? AND value != '' GROUP BY value`+having+`
		ORDER BY sum(credits) DESC, value LIMIT ?`, tenantID, dimension, rng.FromDay, rng.ToDay, limit)
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

// ChangePct is (current − previous) / previous × 100 rounded half away from
// zero to one decimal place, nil when previous is zero.
func ChangePct(current, previous decimal.Decimal) *decimal.Decimal {
	if previous.IsZero() {
		return nil
	}
	// DivRound rounds the exact quotient, once: rounding it to 8 places
	// first turned 0.04999999997 into 0.05000000, then 0.1.
	pct := current.Sub(previous).Mul(decimal.NewFromInt(100)).DivRound(previous, 1)
	return &pct
}
