package queries

import (
	"context"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// UsedFilter narrows UsedBetween to usage with these dimensions.
type UsedFilter struct {
	WorkflowID    string
	WorkflowRunID string
	CustomKey     string
	CustomValue   string
}

// UsedBetween sums the credits of usage (debits and captures) whose
// occurred_at is in [from, to], exactly to the microsecond, net of their
// reversals (a reversal counts at the reversed usage's occurred_at, however
// late it was made): whole UTC days from the usage cube, the partial days
// at the edges from the ledger, which keeps each debit's own time and gives
// a reversal its debit's.
func (r *Reader) UsedBetween(ctx context.Context, tenantID int64, from, to time.Time, f UsedFilter) (decimal.Decimal, error) {
	const dayMicros = 86400 * 1e6
	fromMicros, toMicros := from.UnixMicro(), to.UnixMicro()
	firstFull, lastFull := ceilDiv(fromMicros, dayMicros), floorDiv(toMicros+1, dayMicros)-1
	var total int64
	if firstFull <= lastFull {
		var filters []Filter
		for _, dim := range []struct{ name, value string }{{"workflow_id", f.WorkflowID}, {"workflow_run_id", f.WorkflowRunID}} {
			if dim.value != "" {
				d, _ := ParseDimension(dim.name)
				filters = append(filters, Filter{Dimension: d, Values: []string{dim.value}})
			}
		}
		if f.CustomKey != "" {
			d, err := ParseDimension(customPrefix + f.CustomKey)
			if err != nil {
				return decimal.Zero, &ParamError{Param: "custom_key", Message: err.Error(), Value: f.CustomKey}
			}
			filters = append(filters, Filter{Dimension: d, Values: []string{f.CustomValue}})
		}
		report, err := r.Usage(ctx, tenantID, UsageQuery{Range: Range{FromDay: firstFull, ToDay: lastFull}, Granularity: GranularityNone, Filters: filters})
		if err != nil {
			return decimal.Zero, err
		}
		total += report.Totals.Credits.Shift(6).IntPart()
	}
	var edges [][2]int64
	if firstFull > lastFull {
		edges = append(edges, [2]int64{fromMicros, toMicros})
	} else {
		if fromMicros < firstFull*dayMicros {
			edges = append(edges, [2]int64{fromMicros, firstFull*dayMicros - 1})
		}
		if toMicros >= (lastFull+1)*dayMicros {
			edges = append(edges, [2]int64{(lastFull + 1) * dayMicros, toMicros})
		}
	}
	where := []string{"tenant_id = ?", "occurred_at BETWEEN ? AND ?"}
	var filterArgs []any
	// metadata holds the dimensions as written by the projection; the JSON
	// paths are bound parameters.
	for _, dim := range []struct{ path, value string }{{`$.workflow_id`, f.WorkflowID}, {`$.workflow_run_id`, f.WorkflowRunID}} {
		if dim.value != "" {
			where = append(where, "json_extract(metadata, ?) = ?")
			filterArgs = append(filterArgs, dim.path, dim.value)
		}
	}
	if f.CustomKey != "" {
		where = append(where, "json_extract(metadata, ?) = ?")
		filterArgs = append(filterArgs, `$."custom.`+f.CustomKey+`"`, f.CustomValue)
	}
	for _, e := range edges {
		var edge int64
		args := append([]any{tenantID, e[0], e[1]}, filterArgs...)
		if err := r.db.QueryRowContext(ctx, `SELECT coalesce(-sum(amount), 0) FROM ledger WHERE `+strings.Join(where, " AND "), args...).Scan(&edge); err != nil {
			return decimal.Zero, err
		}
		total += edge
	}
	return fromMicro(total), nil
}
