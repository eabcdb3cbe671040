package commands

import (
	"context"

	"github.com/creditd/creditd/domain"
)

// configureAutoReload sets a line's auto-reload. Setting what is already
// set appends nothing. Errors: *domain.FieldError, ErrTenantNotFound,
// ErrUnavailable, ErrContention.
func (e *Engine) configureAutoReload(ctx context.Context, tenantID int64, creditType string, c domain.ConfigureAutoReload) (Result, error) {
	if err := c.Validate(); err != nil {
		return Result{}, err
	}
	return e.single(ctx, tenantID, op{
		creditType: creditType,
		decide:     func(d decision) ([]domain.Event, error) { return domain.DecideConfigureAutoReload(d.line, c) },
	})
}

// configureLine sets a line's overdraft limit. Errors as ConfigureAutoReload.
func (e *Engine) configureLine(ctx context.Context, tenantID int64, creditType string, c domain.ConfigureLine) (Result, error) {
	return e.single(ctx, tenantID, op{
		creditType: creditType,
		decide:     func(d decision) ([]domain.Event, error) { return domain.DecideConfigureLine(d.line, c) },
	})
}
