package projections

import "github.com/creditd/creditd/domain"

// Ledger entry types.
const (
	ledgerCredit     = "credit"
	ledgerDebit      = "debit"
	ledgerAdjustment = "adjustment"
	ledgerExpiry     = "expiry"
)

const insertLedger = `INSERT INTO ledger (tenant_id, credit_type, type, amount, balance_after,
	granted_after, adjusted_after, used_after, expired_after, source_id, description, reference, metadata, created_at, position)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// ledger records one credit movement with the line's totals after it. The
// line row must already include the movement.
func (b *batch) ledger(env domain.Envelope, line *lineRow, entryType string, amount int64, sourceID, description, reference, metadata string, seq uint64, at int64) error {
	stmt, err := b.stmt(insertLedger)
	if err != nil {
		return err
	}
	_, err = stmt.ExecContext(b.ctx, env.TenantID, env.CreditType, entryType, amount, line.balance(),
		line.granted, line.adjusted, line.used, line.expired, sourceID, description, reference, metadata, at, seq)
	return err
}
