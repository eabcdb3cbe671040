package projections

import (
	"fmt"
	"strings"
)

// Dump renders every read-model table, so two databases can be compared.
func Dump(db *DB) (string, error) {
	var out strings.Builder
	for _, table := range []string{"checkpoint", "chain_heads", "tenants", "subscriptions", "api_keys", "lines", "grants", "reservations", "ledger", "ledger_counts", "ledger_occurred_counts", "usage_daily", "usage_rollup", "tenant_totals", "endpoint_totals"} {
		probe, err := db.Reader().Query("SELECT * FROM " + table + " LIMIT 0")
		if err != nil {
			return "", err
		}
		cols, _ := probe.Columns()
		probe.Close()
		order := make([]string, len(cols))
		for i := range order {
			order[i] = fmt.Sprint(i + 1)
		}
		rows, err := db.Reader().Query("SELECT * FROM " + table + " ORDER BY " + strings.Join(order, ", "))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&out, "== %s %v\n", table, cols)
		for rows.Next() {
			values := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range values {
				ptrs[i] = &values[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return "", err
			}
			for _, v := range values {
				if b, ok := v.([]byte); ok {
					v = string(b)
				}
				fmt.Fprintf(&out, "%v|", v)
			}
			out.WriteByte('\n')
		}
		rows.Close()
	}
	return out.String(), nil
}
