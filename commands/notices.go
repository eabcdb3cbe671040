package commands

import (
	"context"
	"fmt"
	"net/url"
	"slices"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
)

// noticeThresholdsMax bounds a tenant's notice thresholds.
const noticeThresholdsMax = 10

// Notices configures low-balance notices: a notice when a line's available
// credits fall below any threshold, and when they reach zero.
type Notices struct {
	Thresholds []decimal.Decimal
	// WebhookURL, when set, receives each notice as a signed POST.
	WebhookURL string
}

// Validate reports every malformed field at once.
func (n Notices) Validate() error {
	var errs []error
	if len(n.Thresholds) > noticeThresholdsMax {
		errs = append(errs, &domain.FieldError{Location: "thresholds", Message: fmt.Sprintf("holds at most %d values", noticeThresholdsMax)})
	}
	for i, t := range n.Thresholds {
		if err := domain.ValidatePositive(t); err != nil {
			errs = append(errs, &domain.FieldError{Location: fmt.Sprintf("thresholds[%d]", i), Message: err.Error(), Value: t.String()})
		}
	}
	if n.WebhookURL != "" {
		u, err := url.Parse(n.WebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(n.WebhookURL) > 2048 {
			errs = append(errs, &domain.FieldError{Location: "webhook_url", Message: "must be an http or https URL", Value: n.WebhookURL})
		}
	}
	return joinErrors(errs)
}

// ConfigureNotices records a tenant's notice settings. Errors:
// *domain.FieldError, ErrTenantNotFound, ErrUnavailable, ErrContention.
func (e *Engine) ConfigureNotices(ctx context.Context, tenantID int64, n Notices) (uint64, error) {
	if err := n.Validate(); err != nil {
		return 0, err
	}
	thresholds := slices.Clone(n.Thresholds)
	slices.SortFunc(thresholds, func(a, b decimal.Decimal) int { return b.Cmp(a) })
	r := e.registry
	r.write.Lock()
	defer r.write.Unlock()
	return r.appendLocked(ctx, func() ([]domain.Envelope, error) {
		if _, ok := r.tenants[tenantID]; !ok {
			return nil, fmt.Errorf("%w: %d", ErrTenantNotFound, tenantID)
		}
		return []domain.Envelope{{TenantID: tenantID, Event: domain.NoticesConfigured{TenantID: tenantID, Thresholds: thresholds, WebhookURL: n.WebhookURL}}}, nil
	})
}
