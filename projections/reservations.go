package projections

import (
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/creditd/creditd/domain"
)

func (b *batch) insertReservation(env domain.Envelope, e domain.CreditsReserved, at int64) error {
	dims, err := json.Marshal(e.Dimensions)
	if err != nil {
		return err
	}
	_, err = b.tx.ExecContext(b.ctx, `INSERT INTO reservations (tenant_id, reservation_id, credit_type, amount, state, dimensions, reserved_at, expires_at)
		VALUES (?, ?, ?, ?, 'held', ?, ?, ?)`, env.TenantID, e.ReservationID, env.CreditType, Micro(e.Amount), string(dims), at, Micros(e.ExpiresAt))
	return err
}

// closeReservation ends a hold and returns its dimensions, which a capture
// needs to count its usage.
func (b *batch) closeReservation(tenantID int64, reservationID, state string, captured, at int64) (domain.Dimensions, error) {
	var raw string
	err := b.tx.QueryRowContext(b.ctx, `UPDATE reservations SET state = ?, captured = ?, closed_at = ?
		WHERE tenant_id = ? AND reservation_id = ? AND state = 'held' RETURNING dimensions`,
		state, captured, at, tenantID, reservationID).Scan(&raw)
	if err == sql.ErrNoRows {
		return domain.Dimensions{}, fmt.Errorf("reservation %s is not held", reservationID)
	}
	if err != nil {
		return domain.Dimensions{}, err
	}
	var dims domain.Dimensions
	if err := json.Unmarshal([]byte(raw), &dims); err != nil {
		return domain.Dimensions{}, err
	}
	return dims, nil
}
