package commands

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// registryRefreshMin bounds how often an unknown API key makes this
// instance read the registry subject for keys issued by other instances:
// unknown keys must not turn into a read per request.
const registryRefreshMin = time.Second

// Tenant is a tenant's profile as the write side knows it.
type Tenant struct {
	ID             int64
	Name           string
	Email          string
	Currency       string
	CurrencyConfig json.RawMessage
	CreatedAt      time.Time
}

type apiKeyRecord struct {
	tenantID int64
	keyID    string
	hash     [32]byte
	revoked  bool
}

type createdTenant struct {
	tenantID    int64
	fingerprint uint64
	position    uint64
}

// registry holds tenants and API keys, kept on their own subject. Writes
// are rare, so one mutex serialises them; reads take the read lock.
type registry struct {
	store Store
	clock func() time.Time

	write sync.Mutex // one registry write at a time in this instance

	mu          sync.RWMutex
	chain       chain
	stale       bool
	tenants     map[int64]*Tenant
	keys        map[[32]byte]*apiKeyRecord
	keysByID    map[string]*apiKeyRecord
	requests    map[string]createdTenant
	lastRefresh time.Time
	// maxID is the highest tenant id in the registry: ids are never
	// reused, even after an import that brought only some tenants.
	maxID int64
}

func newRegistry(store Store, clock func() time.Time) *registry {
	return &registry{
		store: store, clock: clock, chain: chain{subject: eventstore.RegistrySubject},
		tenants: map[int64]*Tenant{}, keys: map[[32]byte]*apiKeyRecord{}, keysByID: map[string]*apiKeyRecord{},
		requests: map[string]createdTenant{},
	}
}

func (r *registry) load(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.chain.catchUp(ctx, r.store, infallible(r.applyCommit)); err != nil {
		return err
	}
	r.stale = false
	return nil
}

// applyCommit must run with mu held.
func (r *registry) applyCommit(seq uint64, commit eventstore.Commit) {
	for _, env := range commit.Events {
		switch e := env.Event.(type) {
		case domain.TenantCreated:
			r.maxID = max(r.maxID, e.TenantID)
			r.tenants[e.TenantID] = &Tenant{ID: e.TenantID, Name: e.Name, Email: e.Email, Currency: e.Currency, CreatedAt: e.CreatedAt}
			if e.RequestKey != "" {
				r.requests[e.RequestKey] = createdTenant{tenantID: e.TenantID, fingerprint: e.Fingerprint, position: seq}
			}
		case domain.APIKeyIssued:
			hash, err := hex.DecodeString(e.KeyHash)
			if err != nil || len(hash) != sha256.Size {
				panic(fmt.Sprintf("registry at %d: malformed key hash for %s", seq, e.KeyID))
			}
			rec := &apiKeyRecord{tenantID: e.TenantID, keyID: e.KeyID, hash: [32]byte(hash)}
			r.keys[rec.hash] = rec
			r.keysByID[e.KeyID] = rec
		case domain.APIKeyRevoked:
			if rec, ok := r.keysByID[e.KeyID]; ok {
				rec.revoked = true
			}
		case domain.SettingsChanged:
			if t, ok := r.tenants[e.TenantID]; ok {
				if e.Currency != "" {
					t.Currency = e.Currency
				}
				if e.CurrencyConfig != nil {
					t.CurrencyConfig = e.CurrencyConfig
				}
			}
		}
	}
}

func (r *registry) tenant(id int64) (Tenant, error) {
	r.mu.RLock()
	t, ok := r.tenants[id]
	r.mu.RUnlock()
	if !ok {
		// Another instance may have created it a moment ago: read the
		// registry now (cheap when nothing is new). If that fails, the
		// answer is "unavailable", not "no such tenant".
		if err := r.refresh(true); err != nil {
			return Tenant{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		r.mu.RLock()
		t, ok = r.tenants[id]
		r.mu.RUnlock()
	}
	if !ok {
		return Tenant{}, fmt.Errorf("%w: %d", ErrTenantNotFound, id)
	}
	return *t, nil
}

// refreshLimited reads registry commits written elsewhere, at most once per
// registryRefreshMin (unknown API keys are attacker-controlled).
func (r *registry) refreshLimited() error { return r.refresh(false) }

func (r *registry) refresh(force bool) error {
	r.mu.RLock()
	skip := !force && r.clock().Sub(r.lastRefresh) < registryRefreshMin && !r.stale
	r.mu.RUnlock()
	if skip {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock()
	r.lastRefresh = now
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	if err := r.chain.catchUp(ctx, r.store, infallible(r.applyCommit)); err != nil {
		return err
	}
	r.stale = false
	return nil
}

// authenticate returns the tenant of a plaintext API key. The lookup is by
// the key's SHA-256; the final comparison is constant-time.
func (r *registry) authenticate(key string) (tenantID int64, keyID string, ok bool) {
	hash := sha256.Sum256([]byte(key))
	lookup := func() (int64, string, bool) {
		r.mu.RLock()
		defer r.mu.RUnlock()
		rec, ok := r.keys[hash]
		if !ok || rec.revoked || subtle.ConstantTimeCompare(rec.hash[:], hash[:]) != 1 {
			return 0, "", false
		}
		return rec.tenantID, rec.keyID, true
	}
	if id, keyID, ok := lookup(); ok {
		return id, keyID, true
	}
	if r.refreshLimited() != nil {
		return 0, "", false
	}
	return lookup()
}

// keyActive reports whether a key is issued and not revoked, after reading
// registry commits written elsewhere (at most once per registryRefreshMin).
// When the registry cannot be read, it answers from what it knows.
func (r *registry) keyActive(keyID string) bool {
	r.refreshLimited()
	r.mu.RLock()
	defer r.mu.RUnlock()
	rec, ok := r.keysByID[keyID]
	return ok && !rec.revoked
}

// appendLocked appends events to the registry, deciding again after a
// conflict. decide runs with mu held and sees the current state. Must run
// with write held.
func (r *registry) appendLocked(ctx context.Context, decide func() ([]domain.Envelope, error)) (uint64, error) {
	for attempt := 1; ; attempt++ {
		r.mu.Lock()
		if r.stale {
			if err := r.chain.catchUp(ctx, r.store, infallible(r.applyCommit)); err != nil {
				r.mu.Unlock()
				return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
			r.stale = false
		}
		events, err := decide()
		if err != nil || len(events) == 0 {
			r.mu.Unlock()
			return 0, err
		}
		// The registry lock is held across the append: registry writes are
		// rare and readers wait at most appendTimeout.
		seq, err := r.chain.append(ctx, r.store, r.clock(), events)
		if err == nil {
			r.applyCommit(seq, eventstore.Commit{Events: events})
			r.mu.Unlock()
			return seq, nil
		}
		r.stale = true
		r.mu.Unlock()
		if !errors.Is(err, eventstore.ErrConflict) || attempt >= appendAttemptsMax {
			if errors.Is(err, eventstore.ErrConflict) {
				return 0, fmt.Errorf("%w: %v", ErrContention, err)
			}
			return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
}

// newAPIKey returns a fresh random key, its id and its hash. Keys carry 192
// random bits; only the hash is stored.
func newAPIKey() (key, keyID, hashHex string) {
	secret := make([]byte, 24)
	rand.Read(secret)
	key = "cdk_" + base64.RawURLEncoding.EncodeToString(secret)
	idBytes := make([]byte, 8)
	rand.Read(idBytes)
	sum := sha256.Sum256([]byte(key))
	return key, "key_" + hex.EncodeToString(idBytes), hex.EncodeToString(sum[:])
}
