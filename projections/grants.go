package projections

import (
	"github.com/creditd/creditd/domain"
)

type grantKey struct {
	tenantID   int64
	creditType string
	grantID    string
}

// grantDelta is what a batch took from one grant.
type grantDelta struct {
	remaining int64 // negative: credits burned, expired or voided
	expired   int64
	voided    int64
}

func (b *batch) insertGrant(env domain.Envelope, e domain.CreditsGranted, metadata string, seq uint64, at int64) error {
	var expiresAt, cost any
	if e.ExpiresAt != nil {
		expiresAt = Micros(*e.ExpiresAt)
	}
	if e.CostPerCredit != nil {
		cost = Micro(*e.CostPerCredit)
	}
	_, err := b.tx.ExecContext(b.ctx, `INSERT INTO grants (tenant_id, credit_type, grant_id, source, priority, amount, remaining,
		effective_at, expires_at, cost_per_credit, currency, description, reference, metadata, granted_at, position)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		env.TenantID, env.CreditType, e.GrantID, string(e.Source), e.Priority, Micro(e.Amount), Micro(e.Amount),
		Micros(e.EffectiveAt), expiresAt, cost, e.Currency, e.Description, e.Reference, metadata, at, seq)
	return err
}

func (b *batch) grant(env domain.Envelope, grantID string) *grantDelta {
	key := grantKey{env.TenantID, env.CreditType, grantID}
	if b.lastGrant != nil && b.lastGrantKey == key {
		return b.lastGrant
	}
	g, ok := b.grants[key]
	if !ok {
		g = &grantDelta{}
		b.grants[key] = g
	}
	b.lastGrantKey, b.lastGrant = key, g
	return g
}

func (b *batch) burn(env domain.Envelope, burns []domain.Burn) {
	for _, burn := range burns {
		b.grant(env, burn.GrantID).remaining -= Micro(burn.Amount)
	}
}

func (b *batch) flushGrants() error {
	stmt, err := b.stmt(`UPDATE grants SET remaining = remaining + ?, expired = expired + ?, voided = voided + ?
		WHERE tenant_id = ? AND credit_type = ? AND grant_id = ?`)
	if err != nil {
		return err
	}
	for key, g := range b.grants {
		if err := stmt.exec(g.remaining, g.expired, g.voided, key.tenantID, key.creditType, key.grantID); err != nil {
			return err
		}
	}
	return nil
}
