package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/creditd/creditd/domain"
)

// currencyConfigBytesMax bounds a tenant's display configuration.
const currencyConfigBytesMax = 16 << 10

// Settings are a tenant's display settings. Nil fields are left unchanged.
type Settings struct {
	Currency       string
	CurrencyConfig json.RawMessage
}

// Validate reports every malformed field at once.
func (s Settings) Validate() error {
	var errs []error
	if s.Currency != "" && !isCurrencyCode(s.Currency) {
		errs = append(errs, &domain.FieldError{Location: "currency", Message: "must be a three-letter ISO 4217 code", Value: s.Currency})
	}
	if s.CurrencyConfig != nil {
		trimmed := bytes.TrimSpace(s.CurrencyConfig)
		switch {
		case len(trimmed) > currencyConfigBytesMax:
			errs = append(errs, &domain.FieldError{Location: "currency_config", Message: fmt.Sprintf("is larger than %d bytes", currencyConfigBytesMax)})
		case len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed):
			errs = append(errs, &domain.FieldError{Location: "currency_config", Message: "must be a JSON object"})
		default:
			// The members the lasso profile reads have the seed's types.
			if _, err := domain.ParseCurrencyConfig(trimmed); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return joinErrors(errs)
}

// ConfigureSettings records a tenant's display settings; what equals the
// current settings appends nothing. Errors: *domain.FieldError,
// ErrTenantNotFound, ErrUnavailable, ErrContention.
func (e *Engine) ConfigureSettings(ctx context.Context, tenantID int64, s Settings) (Tenant, uint64, error) {
	if err := s.Validate(); err != nil {
		return Tenant{}, 0, err
	}
	var compact []byte
	if s.CurrencyConfig != nil {
		var buf bytes.Buffer
		json.Compact(&buf, s.CurrencyConfig)
		compact = buf.Bytes()
	}
	r := e.registry
	r.write.Lock()
	defer r.write.Unlock()
	seq, err := r.appendLocked(ctx, func() ([]domain.Envelope, error) {
		t, ok := r.tenants[tenantID]
		if !ok {
			return nil, fmt.Errorf("%w: %d", ErrTenantNotFound, tenantID)
		}
		change := domain.SettingsChanged{TenantID: tenantID}
		if s.Currency != "" && s.Currency != t.Currency {
			change.Currency = s.Currency
		}
		if compact != nil && !bytes.Equal(compact, t.CurrencyConfig) {
			change.CurrencyConfig = compact
		}
		if change.Currency == "" && change.CurrencyConfig == nil {
			return nil, nil
		}
		return []domain.Envelope{{TenantID: tenantID, Event: change}}, nil
	})
	if err != nil {
		return Tenant{}, 0, err
	}
	t, err := r.tenant(tenantID)
	return t, seq, err
}
