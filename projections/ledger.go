package projections

import (
	"strings"

	"github.com/creditd/creditd/domain"
)

// Ledger entry types.
const (
	ledgerCredit     = "credit"
	ledgerDebit      = "debit"
	ledgerAdjustment = "adjustment"
	ledgerExpiry     = "expiry"
)

// ledgerRowsPerInsert bounds the rows of one multi-row INSERT (15 bound
// values each, far below SQLite's variable limit).
const ledgerRowsPerInsert = 64

const ledgerColumns = 16

// ledger records one credit movement with the line's totals after it. The
// line row must already include the movement. Rows are written at flush,
// many per statement, in the order recorded (entry ids follow it).
func (b *batch) ledger(env domain.Envelope, line *lineRow, entryType string, amount int64, sourceID, description, reference, metadata string, seq uint64, at int64) error {
	b.ledgerRows = append(b.ledgerRows, env.TenantID, env.CreditType, entryType, amount, line.balance(),
		line.granted, line.adjusted, line.used, line.expired, sourceID, description, reference, metadata, at, seq, nil)
	return nil
}

// usageLedger records a usage debit with the time it occurred.
func (b *batch) usageLedger(env domain.Envelope, line *lineRow, amount int64, sourceID, description, metadata string, seq uint64, at, occurredAt int64) error {
	b.ledgerRows = append(b.ledgerRows, env.TenantID, env.CreditType, ledgerDebit, amount, line.balance(),
		line.granted, line.adjusted, line.used, line.expired, sourceID, description, "", metadata, at, seq, occurredAt)
	return nil
}

type ledgerCountKey struct {
	tenantID   int64
	creditType string
	entryType  string
	day        int64
}

func (b *batch) flushLedger() error {
	counts := map[ledgerCountKey]int64{}
	for i := 0; i < len(b.ledgerRows); i += ledgerColumns {
		row := b.ledgerRows[i : i+ledgerColumns]
		counts[ledgerCountKey{row[0].(int64), row[1].(string), row[2].(string), row[13].(int64) / (86400 * 1e6)}]++
	}
	if len(counts) > 0 {
		stmt, err := b.stmt(`INSERT INTO ledger_counts (tenant_id, credit_type, type, day, entries) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT DO UPDATE SET entries = entries + excluded.entries`)
		if err != nil {
			return err
		}
		for k, n := range counts {
			if _, err := stmt.ExecContext(b.ctx, k.tenantID, k.creditType, k.entryType, k.day, n); err != nil {
				return err
			}
		}
	}
	rows := b.ledgerRows
	for len(rows) > 0 {
		n := min(len(rows)/ledgerColumns, ledgerRowsPerInsert)
		stmt, err := b.stmt(ledgerInsert(n))
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(b.ctx, rows[:n*ledgerColumns]...); err != nil {
			return err
		}
		rows = rows[n*ledgerColumns:]
	}
	return nil
}

func ledgerInsert(rows int) string {
	return `INSERT INTO ledger (tenant_id, credit_type, type, amount, balance_after, granted_after, adjusted_after,
		used_after, expired_after, source_id, description, reference, metadata, created_at, position, occurred_at) VALUES ` +
		strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?),", rows), ",")
}
