package commands

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/creditd/creditd/domain"
)

// CurrencyDefault is a tenant's display currency when none is given.
const CurrencyDefault = "USD"

// CreateTenant is the input of Engine.CreateTenant.
type CreateTenant struct {
	Name     string
	Email    string
	Currency string
	// RequestKey (the Idempotency-Key header) makes the creation
	// idempotent: a repeat returns the same tenant and appends nothing.
	RequestKey string
}

// Validate reports every malformed field at once.
func (c CreateTenant) Validate() error {
	var errs []error
	add := func(loc, msg string, v any) {
		errs = append(errs, &domain.FieldError{Location: loc, Message: msg, Value: v})
	}
	if c.Name == "" {
		add("name", "is required", c.Name)
	} else if len(c.Name) > domain.DimensionLengthMax || !utf8.ValidString(c.Name) {
		add("name", fmt.Sprintf("must be valid UTF-8 of at most %d bytes", domain.DimensionLengthMax), nil)
	}
	if len(c.Email) > domain.DimensionLengthMax || !utf8.ValidString(c.Email) {
		add("email", fmt.Sprintf("must be valid UTF-8 of at most %d bytes", domain.DimensionLengthMax), nil)
	}
	if c.Currency != "" && !isCurrencyCode(c.Currency) {
		add("currency", "must be a three-letter ISO 4217 code", c.Currency)
	}
	if len(c.RequestKey) > domain.IDLengthMax {
		add("header.Idempotency-Key", fmt.Sprintf("is longer than %d bytes", domain.IDLengthMax), nil)
	}
	return joinErrors(errs)
}

func isCurrencyCode(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, c := range s {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

func (c CreateTenant) fingerprint() uint64 {
	h := sha256.Sum256([]byte(c.Name + "\x00" + c.Email + "\x00" + c.Currency))
	return binary.BigEndian.Uint64(h[:8]) | 1
}

// CreatedTenant is the answer to CreateTenant. APIKey is shown only when
// the tenant was created by this call: keys are stored hashed, so a repeat
// of the request cannot show it again (issue a new key instead).
type CreatedTenant struct {
	Tenant    Tenant
	APIKey    string
	KeyID     string
	Duplicate bool
	Position  uint64
}

// CreateTenant creates a tenant with a first API key. Errors: a
// *domain.FieldError set, domain.ErrIdempotencyConflict when RequestKey was
// used with other fields, ErrUnavailable, ErrContention.
func (e *Engine) CreateTenant(ctx context.Context, c CreateTenant) (CreatedTenant, error) {
	if err := c.Validate(); err != nil {
		return CreatedTenant{}, err
	}
	if c.Currency == "" {
		c.Currency = CurrencyDefault
	}
	r := e.registry
	r.write.Lock()
	defer r.write.Unlock()
	var out CreatedTenant
	seq, err := r.appendLocked(ctx, func() ([]domain.Envelope, error) {
		out = CreatedTenant{}
		if c.RequestKey != "" {
			if prior, ok := r.requests[c.RequestKey]; ok {
				if prior.fingerprint != c.fingerprint() {
					return nil, domain.ErrIdempotencyConflict
				}
				out = CreatedTenant{Tenant: *r.tenants[prior.tenantID], Duplicate: true, Position: prior.position}
				return nil, nil
			}
		}
		id := r.maxID + 1
		key, keyID, hash := newAPIKey()
		out.APIKey, out.KeyID = key, keyID
		now := e.clock().UTC()
		out.Tenant = Tenant{ID: id, Name: c.Name, Email: c.Email, Currency: c.Currency, CreatedAt: now}
		return []domain.Envelope{
			{TenantID: id, Event: domain.TenantCreated{TenantID: id, Name: c.Name, Email: c.Email, Currency: c.Currency, CreatedAt: now, RequestKey: c.RequestKey, Fingerprint: c.fingerprint()}},
			{TenantID: id, Event: domain.APIKeyIssued{TenantID: id, KeyID: keyID, KeyHash: hash, Prefix: key[:8]}},
		}, nil
	})
	if err != nil {
		return CreatedTenant{}, err
	}
	if !out.Duplicate {
		out.Position = seq
	}
	return out, nil
}

// IssuedKey is a new API key, shown once.
type IssuedKey struct {
	KeyID    string
	APIKey   string
	Position uint64
}

// IssueAPIKey adds a key to a tenant. Errors: ErrTenantNotFound,
// ErrUnavailable, ErrContention.
func (e *Engine) IssueAPIKey(ctx context.Context, tenantID int64) (IssuedKey, error) {
	r := e.registry
	r.write.Lock()
	defer r.write.Unlock()
	var out IssuedKey
	seq, err := r.appendLocked(ctx, func() ([]domain.Envelope, error) {
		if _, ok := r.tenants[tenantID]; !ok {
			return nil, fmt.Errorf("%w: %d", ErrTenantNotFound, tenantID)
		}
		key, keyID, hash := newAPIKey()
		out = IssuedKey{KeyID: keyID, APIKey: key}
		return []domain.Envelope{{TenantID: tenantID, Event: domain.APIKeyIssued{TenantID: tenantID, KeyID: keyID, KeyHash: hash, Prefix: key[:8]}}}, nil
	})
	out.Position = seq
	return out, err
}

// RevokeAPIKey disables a key. Revoking a revoked key is a no-op. Errors:
// ErrAPIKeyNotFound, ErrUnavailable, ErrContention.
func (e *Engine) RevokeAPIKey(ctx context.Context, tenantID int64, keyID string) (uint64, error) {
	r := e.registry
	r.write.Lock()
	defer r.write.Unlock()
	return r.appendLocked(ctx, func() ([]domain.Envelope, error) {
		rec, ok := r.keysByID[keyID]
		if !ok || rec.tenantID != tenantID {
			return nil, fmt.Errorf("%w: %s", ErrAPIKeyNotFound, keyID)
		}
		if rec.revoked {
			return nil, nil
		}
		return []domain.Envelope{{TenantID: tenantID, Event: domain.APIKeyRevoked{TenantID: tenantID, KeyID: keyID}}}, nil
	})
}

// Authenticate returns the tenant an API key belongs to, false for an
// unknown or revoked key.
func (e *Engine) Authenticate(key string) (int64, bool) {
	id, _, ok := e.registry.authenticate(key)
	return id, ok
}

// AuthenticateKey is Authenticate that also names the key, so a long-lived
// session (a NATS producer connection) can be cut when it is revoked.
func (e *Engine) AuthenticateKey(key string) (tenantID int64, keyID string, ok bool) {
	return e.registry.authenticate(key)
}

// KeyActive reports whether a key is issued and not revoked, including
// revocations made by other instances (read at most once a second).
func (e *Engine) KeyActive(keyID string) bool { return e.registry.keyActive(keyID) }

// Tenant returns a tenant's profile, or ErrTenantNotFound.
func (e *Engine) Tenant(id int64) (Tenant, error) { return e.registry.tenant(id) }
