package projections

import (
	"encoding/json"
	"fmt"

	"github.com/creditd/creditd/domain"
)

func (b *batch) applyRegistry(e domain.Event) error {
	var err error
	switch e := e.(type) {
	case domain.TenantCreated:
		_, err = b.tx.ExecContext(b.ctx, `INSERT INTO tenants (tenant_id, name, email, currency, created_at) VALUES (?, ?, ?, ?, ?)`,
			e.TenantID, e.Name, e.Email, e.Currency, Micros(e.CreatedAt))
	case domain.APIKeyIssued:
		_, err = b.tx.ExecContext(b.ctx, `INSERT INTO api_keys (key_id, tenant_id, prefix, created_at) VALUES (?, ?, ?, ?)`,
			e.KeyID, e.TenantID, e.Prefix, b.commitAt)
	case domain.APIKeyRevoked:
		_, err = b.tx.ExecContext(b.ctx, `UPDATE api_keys SET revoked_at = ? WHERE key_id = ?`, b.commitAt, e.KeyID)
	case domain.NoticesConfigured:
		thresholds := make([]int64, len(e.Thresholds))
		for i, t := range e.Thresholds {
			thresholds[i] = Micro(t)
		}
		text, _ := json.Marshal(thresholds)
		_, err = b.tx.ExecContext(b.ctx, `UPDATE tenants SET notice_thresholds = ?, webhook_url = ? WHERE tenant_id = ?`, string(text), e.WebhookURL, e.TenantID)
		delete(b.thresholds, e.TenantID)
		b.thresholdsChanged = true
	case domain.SettingsChanged:
		if e.Currency != "" {
			if _, err = b.tx.ExecContext(b.ctx, `UPDATE tenants SET currency = ? WHERE tenant_id = ?`, e.Currency, e.TenantID); err != nil {
				return err
			}
		}
		if e.CurrencyConfig != nil {
			_, err = b.tx.ExecContext(b.ctx, `UPDATE tenants SET currency_config = ? WHERE tenant_id = ?`, string(e.CurrencyConfig), e.TenantID)
		}
	default:
		err = fmt.Errorf("not a registry event: %T", e)
	}
	return err
}
