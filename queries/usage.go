package queries

import (
	"context"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
)

// Granularity of usage rows.
type Granularity string

const (
	GranularityNone  Granularity = "none"
	GranularityDay   Granularity = "day"
	GranularityMonth Granularity = "month"
	GranularityYear  Granularity = "year"
)

// periodSQL maps a granularity to the SQL expression of a row's period.
var periodSQL = map[Granularity]string{
	GranularityNone:  "''",
	GranularityDay:   "strftime('%Y-%m-%d', day * 86400, 'unixepoch')",
	GranularityMonth: "strftime('%Y-%m', day * 86400, 'unixepoch')",
	GranularityYear:  "strftime('%Y', day * 86400, 'unixepoch')",
}

// ParseGranularity reads none, day, month or year (empty means none).
func ParseGranularity(text string) (Granularity, error) {
	if text == "" {
		return GranularityNone, nil
	}
	g := Granularity(text)
	if _, ok := periodSQL[g]; !ok {
		return "", &ParamError{Param: "granularity", Message: "must be none, day, month or year", Value: text}
	}
	return g, nil
}

// UsageQuery selects and groups usage.
type UsageQuery struct {
	Range       Range
	Granularity Granularity
	GroupBy     []Dimension
	Filters     []Filter
}

// UsageTotals are sums over usage.
type UsageTotals struct {
	Credits    decimal.Decimal
	Requests   int64
	Successful int64
	Failed     int64
	Quantity   decimal.Decimal
}

// UsageRow is one period and group.
type UsageRow struct {
	Period string
	Group  map[string]string
	UsageTotals
}

// UsageReport is the totals and the rows of a usage query.
type UsageReport struct {
	Totals UsageTotals
	Rows   []UsageRow
}

// Usage sums the tenant's usage cube over the query's whole UTC days.
func (r *Reader) Usage(ctx context.Context, tenantID int64, q UsageQuery) (UsageReport, error) {
	period, ok := periodSQL[q.Granularity]
	if !ok {
		return UsageReport{}, fmt.Errorf("%w: granularity %q", ErrInvalidQuery, q.Granularity)
	}
	selects := []string{period}
	var selectArgs []any
	groups := []string{"1"}
	table := "usage_daily"
	where, args := []string{"tenant_id = ?", "day BETWEEN ? AND ?"}, []any{tenantID, q.Range.FromDay, q.Range.ToDay}
	if dim, ok := rollupFor(q); ok {
		// One rolled dimension at most: read the rollup, a few rows a day,
		// instead of the cube.
		table = "usage_rollup"
		where, args = append(where, "dimension = ?"), append(args, dim)
		if len(q.GroupBy) == 1 {
			selects, groups = append(selects, "value"), append(groups, "2")
		}
		for _, f := range q.Filters {
			where = append(where, "value IN ("+placeholders(len(f.Values))+")")
			for _, v := range f.Values {
				args = append(args, v)
			}
		}
	} else {
		for i, d := range q.GroupBy {
			expr, exprArgs := d.sql()
			selects = append(selects, expr)
			selectArgs = append(selectArgs, exprArgs...)
			groups = append(groups, fmt.Sprint(i+2))
		}
		where, args = filterSQL(q.Filters, where, args)
	}
	query := "SELECT " + strings.Join(selects, ", ") + `, sum(credits), sum(requests), sum(successes), sum(failures), sum(quantity)
		FROM ` + table + ` WHERE ` + strings.Join(where, " AND ") + `
		GROUP BY ` + strings.Join(groups, ", ") + ` ORDER BY 1, sum(credits) DESC LIMIT ?`
	all := append(append(selectArgs, args...), usageRowsExceeds)
	rows, err := r.db.QueryContext(ctx, query, all...)
	if err != nil {
		return UsageReport{}, err
	}
	defer rows.Close()
	var report UsageReport
	var totalCredits, totalQuantity int64
	for rows.Next() {
		var row UsageRow
		values := make([]any, 0, len(q.GroupBy)+6)
		values = append(values, &row.Period)
		groupValues := make([]any, len(q.GroupBy))
		for i := range groupValues {
			values = append(values, &groupValues[i])
		}
		var credits, quantity int64
		values = append(values, &credits, &row.Requests, &row.Successful, &row.Failed, &quantity)
		if err := rows.Scan(values...); err != nil {
			return report, err
		}
		if len(q.GroupBy) > 0 {
			row.Group = make(map[string]string, len(q.GroupBy))
			for i, d := range q.GroupBy {
				row.Group[d.Name] = groupText(d, groupValues[i])
			}
		}
		row.Credits, row.Quantity = fromMicro(credits), fromMicro(quantity)
		totalCredits += credits
		totalQuantity += quantity
		report.Totals.Requests += row.Requests
		report.Totals.Successful += row.Successful
		report.Totals.Failed += row.Failed
		report.Rows = append(report.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return report, err
	}
	if len(report.Rows) > usageRowsMax {
		return UsageReport{}, &ParamError{Param: "group_by", Message: fmt.Sprintf("the query yields more than %d rows: narrow the range or the groups", usageRowsMax)}
	}
	report.Totals.Credits, report.Totals.Quantity = fromMicro(totalCredits), fromMicro(totalQuantity)
	return report, nil
}

// rolledColumns are the dimensions usage_rollup keeps (projections.RolledDimensions).
var rolledColumns = map[string]bool{"credit_type": true, "module": true, "service": true, "user_id": true, "endpoint": true}

// rollupFor says whether a query can be answered from usage_rollup: it
// groups and filters by one rolled dimension at most. It returns that
// dimension (” for none).
func rollupFor(q UsageQuery) (string, bool) {
	dim := ""
	for _, d := range q.GroupBy {
		if dim != "" || !rolledColumns[d.column] {
			return "", false
		}
		dim = d.column
	}
	for _, f := range q.Filters {
		if !rolledColumns[f.Dimension.column] || (dim != "" && f.Dimension.column != dim) {
			return "", false
		}
		dim = f.Dimension.column
	}
	return dim, true
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

func groupText(d Dimension, v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case int64:
		if d.Name == "success" {
			return fmt.Sprint(v == 1)
		}
		return fmt.Sprint(v)
	case []byte:
		return string(v)
	case string:
		return v
	}
	return fmt.Sprint(v)
}
