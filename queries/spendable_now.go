package queries

import (
	"context"
	"time"

	"github.com/shopspring/decimal"
)

// LineSpendable is what one credit line can spend at an instant.
type LineSpendable struct {
	CreditType string
	// Available is balance − reserved, as the native balance gives it:
	// positive adjustments in, holds out.
	Available decimal.Decimal
	// NotYetEffective is what the line's grants not yet effective hold:
	// counted in the balance, unable to pay (domain/README.md, Refusals).
	NotYetEffective decimal.Decimal
	// PastExpiry is what grants past their expiry still hold until the
	// sweeper expires them, within a second. A hold may pin part of it,
	// which reserved then counts as well: taking it whole errs towards
	// showing less to spend, never more.
	PastExpiry decimal.Decimal
	// Spendable is Available − NotYetEffective − PastExpiry: the line's
	// free(now) of domain/README.md. The overdraft limit is not in it:
	// it is credit the line may be extended, not credits it holds.
	Spendable decimal.Decimal
}

// SpendableNow lists every credit line of the tenant, by credit type, with
// what it can spend at now.
func (r *Reader) SpendableNow(ctx context.Context, tenantID int64, now time.Time) ([]LineSpendable, error) {
	at := now.UnixMicro()
	// Voided and expired grants keep only what holds pinned, which
	// reserved already takes out of available.
	rows, err := r.db.QueryContext(ctx, `SELECT l.credit_type, l.granted + l.adjusted - l.used - l.expired - l.reserved,
		coalesce(sum(CASE WHEN g.effective_at > ? THEN g.remaining END), 0),
		coalesce(sum(CASE WHEN g.effective_at <= ? AND g.expires_at <= ? THEN g.remaining END), 0)
		FROM lines l LEFT JOIN grants g ON g.tenant_id = l.tenant_id AND g.credit_type = l.credit_type AND g.expired = 0 AND g.voided = 0
		WHERE l.tenant_id = ? GROUP BY l.credit_type ORDER BY l.credit_type`, at, at, at, tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []LineSpendable
	for rows.Next() {
		var l LineSpendable
		var available, notYet, pastExpiry int64
		if err := rows.Scan(&l.CreditType, &available, &notYet, &pastExpiry); err != nil {
			return nil, err
		}
		l.Available, l.NotYetEffective, l.PastExpiry = fromMicro(available), fromMicro(notYet), fromMicro(pastExpiry)
		l.Spendable = fromMicro(available - notYet - pastExpiry)
		out = append(out, l)
	}
	return out, rows.Err()
}
