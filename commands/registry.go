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

// registryApplyBatch bounds the commits a catch-up holds before applying
// them, and so how long one application holds mu.
const registryApplyBatch = 256

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

// registry holds tenants and API keys, kept on their own subject.
//
// Every request reads it (a tenant lookup before each write, a key lookup
// for each HTTP request and NATS producer connection), so mu, which guards
// the state, is held only for work in memory and never across a call to
// the store: an append runs fenced on a snapshot of the tip and applies its
// events afterwards; a catch-up reads from a staged copy of the tip and
// applies what it read in batches. Registry writers (tenant creation, key
// issue and revocation, settings) are rare and hold write for the whole
// decide, append and retry; lookups never take it. docs/architecture.md
// has the whole picture.
type registry struct {
	store Store
	clock func() time.Time

	write sync.Mutex // one registry writer at a time in this instance
	// stale is guarded by write: an append failed, so the tip may be behind
	// the log and the next write reads the subject before deciding.
	stale bool

	// reads rations the reads of the subject that unknown ids and keys
	// ask for.
	reads registryReads

	mu       sync.RWMutex
	chain    chain // its lastSeq and lastHash are guarded by mu
	tenants  map[int64]*Tenant
	keys     map[[32]byte]*apiKeyRecord
	keysByID map[string]*apiKeyRecord
	requests map[string]createdTenant
	// maxID is the highest tenant id in the registry: ids are never
	// reused, even after an import that brought only some tenants.
	maxID int64
}

// registryCommit is a commit read from the subject, waiting to be applied.
type registryCommit struct {
	seq    uint64
	commit eventstore.Commit
}

func newRegistry(store Store, clock func() time.Time) *registry {
	return &registry{
		store: store, clock: clock, chain: chain{subject: eventstore.RegistrySubject},
		reads:   registryReads{origin: time.Now()},
		tenants: map[int64]*Tenant{}, keys: map[[32]byte]*apiKeyRecord{}, keysByID: map[string]*apiKeyRecord{},
		requests: map[string]createdTenant{},
	}
}

func (r *registry) load(ctx context.Context) error {
	began := r.reads.now()
	if err := r.catchUp(ctx); err != nil {
		return err
	}
	r.reads.complete(began)
	return nil
}

// catchUp reads the commits stored after the known tip and applies them.
// The read runs without mu, on a staged copy of the tip; each batch of
// commits is applied under mu, skipping those an append of this instance
// or another catch-up applied meanwhile. Catch-ups may overlap (a writer's
// after a conflict and a lookup's): both read the same log, so a commit one
// of them applied is the commit the other read.
func (r *registry) catchUp(ctx context.Context) error {
	r.mu.RLock()
	staged := &chain{subject: r.chain.subject, lastSeq: r.chain.lastSeq, lastHash: r.chain.lastHash}
	r.mu.RUnlock()
	pending := make([]registryCommit, 0, registryApplyBatch)
	// apply runs when staged's tip is just past the pending commits (and
	// any message set aside after them).
	apply := func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if staged.lastSeq > r.chain.lastSeq {
			for _, c := range pending {
				if c.seq > r.chain.lastSeq {
					r.applyCommit(c.seq, c.commit)
				}
			}
			r.chain.lastSeq, r.chain.lastHash = staged.lastSeq, staged.lastHash
		}
		pending = pending[:0]
	}
	err := staged.catchUp(ctx, r.store, func(seq uint64, commit eventstore.Commit) error {
		if len(pending) == registryApplyBatch {
			apply()
		}
		pending = append(pending, registryCommit{seq: seq, commit: commit})
		return nil
	})
	apply()
	r.chain.note(err)
	return err
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

func (r *registry) lookupTenant(id int64) (Tenant, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.tenants[id]
	if !ok {
		return Tenant{}, false
	}
	return *t, true
}

// tenant returns a tenant's profile. An id this instance does not know may
// have been created on another one a moment ago, so a miss reads the
// registry, at most once per registryRefreshMin for all ids together: the
// id is the caller's to choose (any producer can name any tenant on
// credits.usage.<tenant_id>). If that read fails, the answer is
// "unavailable", not "no such tenant".
// known reports whether the registry holds the tenant, without reading.
func (r *registry) known(id int64) bool {
	_, ok := r.lookupTenant(id)
	return ok
}

func (r *registry) tenant(id int64) (Tenant, error) {
	if t, ok := r.lookupTenant(id); ok {
		return t, nil
	}
	if err := r.refreshLimited(); err != nil {
		return Tenant{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if t, ok := r.lookupTenant(id); ok {
		return t, nil
	}
	return Tenant{}, fmt.Errorf("%w: %d", ErrTenantNotFound, id)
}

// authenticate returns the tenant of a plaintext API key. The lookup is by
// the key's SHA-256; the final comparison is constant-time. A key not known
// here is looked for again after a registry read that began after the miss
// (see registryKeyReadGap): a key issued on another instance works on this
// one as soon as its holder has it.
func (r *registry) authenticate(key string) (tenantID int64, keyID string, ok bool) {
	missedAt := r.reads.now()
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
	if r.refreshAfter(missedAt) != nil {
		return 0, "", false
	}
	return lookup()
}

// keyActive reports whether a key is issued and not revoked, including
// revocations read from the registry (at most once per registryRefreshMin).
// When the registry cannot be read, it answers from what it knows.
func (r *registry) keyActive(keyID string) bool {
	r.refreshLimited()
	r.mu.RLock()
	defer r.mu.RUnlock()
	rec, ok := r.keysByID[keyID]
	return ok && !rec.revoked
}

// appendLocked appends the events decide returns to the registry, deciding
// again after a conflict. decide runs under mu's read lock and sees the
// state at the tip the append is fenced on; the append runs without mu, so
// lookups go on while it waits for the store. A decision that a tenant or
// key does not exist is taken again after a registry read, rationed as for
// lookups (the id is the caller's), since another instance may have just
// created it. Must run with write held: this instance's writers never race
// each other for the tip.
func (r *registry) appendLocked(ctx context.Context, decide func() ([]domain.Envelope, error)) (uint64, error) {
	reread := false
	for attempt := 1; ; attempt++ {
		if r.stale {
			began := r.reads.now()
			if err := r.catchUp(ctx); err != nil {
				return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
			r.reads.complete(began)
			r.stale = false
		}
		events, tipSeq, tipHash, err := r.decideAt(decide)
		if !reread && (errors.Is(err, ErrTenantNotFound) || errors.Is(err, ErrAPIKeyNotFound)) {
			reread = true
			if err := r.refreshLimited(); err != nil {
				return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
			events, tipSeq, tipHash, err = r.decideAt(decide)
		}
		if err != nil || len(events) == 0 {
			return 0, err
		}
		began := r.reads.now()
		staged := &chain{subject: r.chain.subject, lastSeq: tipSeq, lastHash: tipHash}
		seq, err := staged.append(ctx, r.store, r.clock(), events)
		if err == nil {
			r.applyAppended(tipSeq, staged, seq, events)
			// The fence held: nothing was stored after the tip when the
			// append began, so the state is complete as of then.
			r.reads.complete(began)
			return seq, nil
		}
		r.stale = true
		if !errors.Is(err, eventstore.ErrConflict) || attempt >= appendAttemptsMax {
			if errors.Is(err, eventstore.ErrConflict) {
				return 0, fmt.Errorf("%w: %v", ErrContention, err)
			}
			return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
}

// decideAt runs decide on the current state and returns the tip it decided
// at.
func (r *registry) decideAt(decide func() ([]domain.Envelope, error)) ([]domain.Envelope, uint64, string, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	events, err := decide()
	return events, r.chain.lastSeq, r.chain.lastHash, err
}

// applyAppended applies the events just appended at seq, fenced on tipSeq,
// and moves the tip to staged's, unless a catch-up already did both.
func (r *registry) applyAppended(tipSeq uint64, staged *chain, seq uint64, events []domain.Envelope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.chain.lastSeq == tipSeq:
		r.applyCommit(seq, eventstore.Commit{Events: events})
		r.chain.lastSeq, r.chain.lastHash = staged.lastSeq, staged.lastHash
	case r.chain.lastSeq < seq:
		// The fence held, so the first message after tipSeq is this
		// commit, and a catch-up that moved the tip past tipSeq read it.
		panic(fmt.Sprintf("registry tip at %d after an append at %d fenced on %d", r.chain.lastSeq, seq, tipSeq))
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
