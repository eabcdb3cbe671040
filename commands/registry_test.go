package commands

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// lookupWaitMax is how long a lookup of a known tenant or key may take
// while a registry append or read is held: far more than an in-memory
// lookup needs, far less than forever.
const lookupWaitMax = 5 * time.Second

// gatedStore is the real store with gates on the registry subject: an
// armed gate stops the next registry Append or ReadSubject until it is
// released, as a slow or unreachable server would. It also counts registry
// reads.
type gatedStore struct {
	*eventstore.Store
	appendGate atomic.Pointer[gate]
	readGate   atomic.Pointer[gate]
	reads      atomic.Int64
}

type gate struct {
	entered chan struct{} // closed once a call is held at the gate
	release chan struct{} // closed to let it go on
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

// pass holds the call at g, if armed, until it is released or ctx ends.
func (g *gate) pass(ctx context.Context) error {
	if g == nil {
		return nil
	}
	close(g.entered)
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *gatedStore) Append(ctx context.Context, subject string, expectedSeq uint64, data []byte) (uint64, error) {
	if subject == eventstore.RegistrySubject {
		if err := s.appendGate.Swap(nil).pass(ctx); err != nil {
			return 0, err
		}
	}
	return s.Store.Append(ctx, subject, expectedSeq, data)
}

func (s *gatedStore) ReadSubject(ctx context.Context, subject string, afterSeq uint64, fn func(eventstore.StoredMsg) error) error {
	if subject == eventstore.RegistrySubject {
		s.reads.Add(1)
		if err := s.readGate.Swap(nil).pass(ctx); err != nil {
			return err
		}
	}
	return s.Store.ReadSubject(ctx, subject, afterSeq, fn)
}

// within runs f and fails the test if it does not return within
// lookupWaitMax.
func within(t *testing.T, what string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	case <-time.After(lookupWaitMax):
		t.Errorf("%s: no answer within %s while the registry's I/O was held", what, lookupWaitMax)
	}
}

// While a registry append or read is held, everything that needs only what
// the registry already knows answers: tenant lookups, API key
// authentication, writes of known tenants.
func TestRegistryAnswersWhileItsIOIsHeld(t *testing.T) {
	t.Parallel()
	type held struct {
		gated *gatedStore
		e     *Engine
		other *Engine
		known int64
		key   string
		keyID string
	}
	cases := []struct {
		name string
		// read holds the registry read instead of the append.
		read bool
		// stale makes the state older than registryRefreshMin first, so an
		// unknown id or key reads the registry.
		stale bool
		// setup runs before the gate is armed.
		setup func(t *testing.T, h *held)
		// op is the registry operation held at the gate.
		op func(h *held) error
	}{
		{name: "tenant_creation", op: func(h *held) error {
			_, err := h.e.CreateTenant(context.Background(), CreateTenant{Name: "held"})
			return err
		}},
		{name: "api_key_issue", op: func(h *held) error {
			_, err := h.e.IssueAPIKey(context.Background(), h.known)
			return err
		}},
		{name: "api_key_revocation", op: func(h *held) error {
			_, err := h.e.RevokeAPIKey(context.Background(), h.known, h.keyID)
			return err
		}, setup: func(t *testing.T, h *held) {
			issued, err := h.e.IssueAPIKey(context.Background(), h.known)
			if err != nil {
				t.Fatal(err)
			}
			h.keyID = issued.KeyID
		}},
		{name: "settings_change", op: func(h *held) error {
			_, _, err := h.e.ConfigureSettings(context.Background(), h.known, Settings{Currency: "EUR"})
			return err
		}},
		{name: "refresh_for_an_unknown_tenant", read: true, stale: true, op: func(h *held) error {
			if _, err := h.e.Tenant(1_000_000); !errors.Is(err, ErrTenantNotFound) {
				return fmt.Errorf("unknown tenant: %v, want ErrTenantNotFound", err)
			}
			return nil
		}},
		{name: "refresh_for_an_unknown_api_key", read: true, stale: true, op: func(h *held) error {
			if _, ok := h.e.Authenticate("cdk_unknown"); ok {
				return errors.New("an unknown key authenticated")
			}
			return nil
		}},
		{name: "catch_up_after_another_instance_appended", read: true, op: func(h *held) error {
			created, err := h.e.CreateTenant(context.Background(), CreateTenant{Name: "after-conflict"})
			if err == nil && created.Tenant.ID != h.known+2 {
				return fmt.Errorf("created tenant %d, want %d (after the other instance's)", created.Tenant.ID, h.known+2)
			}
			return err
		}, setup: func(t *testing.T, h *held) {
			if _, err := h.other.CreateTenant(context.Background(), CreateTenant{Name: "elsewhere"}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run("lookups_answer_while_the_"+tc.name+"_is_held", func(t *testing.T) {
			t.Parallel()
			hs := newHarness(t)
			h := &held{gated: &gatedStore{Store: hs.server.Store}}
			h.e = hs.newEngine(h.gated)
			h.other = hs.newEngine(hs.server.Store)
			created, err := h.e.CreateTenant(context.Background(), CreateTenant{Name: "known"})
			if err != nil {
				t.Fatal(err)
			}
			h.known, h.key = created.Tenant.ID, created.APIKey
			if tc.setup != nil {
				tc.setup(t, h)
			}
			if tc.stale {
				time.Sleep(registryRefreshMin)
			}
			g := newGate()
			if tc.read {
				h.gated.readGate.Store(g)
			} else {
				h.gated.appendGate.Store(g)
			}
			opDone := make(chan error, 1)
			go func() { opDone <- tc.op(h) }()
			select {
			case <-g.entered:
			case err := <-opDone:
				t.Fatalf("the operation ended without reaching the gate: %v", err)
			case <-time.After(lookupWaitMax):
				t.Fatal("the operation never reached the gate")
			}

			within(t, "tenant lookup", func() error {
				tenant, err := h.e.Tenant(h.known)
				if err == nil && tenant.ID != h.known {
					err = fmt.Errorf("tenant %d, want %d", tenant.ID, h.known)
				}
				return err
			})
			within(t, "API key authentication", func() error {
				if id, ok := h.e.Authenticate(h.key); !ok || id != h.known {
					return fmt.Errorf("authenticated as %d, %v; want %d", id, ok, h.known)
				}
				return nil
			})
			within(t, "a known tenant's write", func() error {
				_, err := h.e.Grant(context.Background(), h.known, domain.DefaultCreditType, grantCommand("g-while-held", "1"))
				return err
			})

			close(g.release)
			select {
			case err := <-opDone:
				if err != nil {
					t.Fatalf("the held operation, once released: %v", err)
				}
			case <-time.After(lookupWaitMax):
				t.Fatal("the held operation did not finish once released")
			}
		})
	}
}

// A flood of distinct unknown tenant ids or keys (producers name any tenant
// id on credits.usage.<tenant_id>) reads the registry at most once per
// registryRefreshMin, however many there are, and at least once when the
// last read is older than that.
func TestUnknownIDsReadTheRegistryAtMostOncePerInterval(t *testing.T) {
	t.Parallel()
	const unknowns, callers = 2000, 16
	cases := []struct {
		name string
		call func(e *Engine, i int) error
		// interval is the least time between two registry reads.
		interval time.Duration
	}{
		{"usage_for_distinct_unknown_tenants", func(e *Engine, i int) error {
			_, err := e.RecordUsage(context.Background(), int64(1_000_000+i), []UsageEvent{usage("u", "1")})
			return wantNotFound(err, ErrTenantNotFound)
		}, registryRefreshMin},
		{"lookups_of_distinct_unknown_tenants", func(e *Engine, i int) error {
			_, err := e.Tenant(int64(1_000_000 + i))
			return wantNotFound(err, ErrTenantNotFound)
		}, registryRefreshMin},
		// A key missing here waits for a read that began after the miss,
		// so keys are rationed by registryKeyReadGap, not registryRefreshMin.
		{"distinct_unknown_api_keys", func(e *Engine, i int) error {
			if _, ok := e.Authenticate(fmt.Sprintf("cdk_unknown_%d", i)); ok {
				return errors.New("an unknown key authenticated")
			}
			return nil
		}, registryKeyReadGap},
		{"api_key_issue_for_distinct_unknown_tenants", func(e *Engine, i int) error {
			_, err := e.IssueAPIKey(context.Background(), int64(1_000_000+i))
			return wantNotFound(err, ErrTenantNotFound)
		}, registryRefreshMin},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			gated := &gatedStore{Store: h.server.Store}
			e := h.newEngine(gated)
			// The last read is older than the interval: the flood's first
			// miss reads, the others answer from that read.
			time.Sleep(registryRefreshMin)
			before := gated.reads.Load()
			started := time.Now()
			var wg sync.WaitGroup
			for c := range callers {
				wg.Go(func() {
					for i := c; i < unknowns; i += callers {
						if err := tc.call(e, i); err != nil {
							t.Errorf("unknown %d: %v", i, err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(started)
			allowed := 1 + int64(elapsed/tc.interval)
			got := gated.reads.Load() - before
			t.Logf("%d unknown ids, %d registry reads in %s", unknowns, got, elapsed)
			if got < 1 || got > allowed {
				t.Fatalf("%d unknown ids read the registry %d times in %s, want 1 to %d", unknowns, got, elapsed, allowed)
			}
		})
	}
}

func wantNotFound(err, want error) error {
	if !errors.Is(err, want) {
		return fmt.Errorf("got %v, want %v", err, want)
	}
	return nil
}

// A tenant another instance creates is known here within
// registryRefreshMin, even when this instance answered "unknown" just
// before: to lookups, to its writes, to its keys and to the administration
// of its keys.
func TestTenantCreatedElsewhereIsKnownWithinTheRefreshInterval(t *testing.T) {
	t.Parallel()
	const slack = time.Second // scheduling on a loaded machine
	cases := []struct {
		name string
		call func(e *Engine, created CreatedTenant) error
	}{
		{"lookup", func(e *Engine, c CreatedTenant) error { _, err := e.Tenant(c.Tenant.ID); return err }},
		{"write", func(e *Engine, c CreatedTenant) error {
			_, err := e.Grant(context.Background(), c.Tenant.ID, domain.DefaultCreditType, grantCommand("g-here", "1"))
			return err
		}},
		{"authentication", func(e *Engine, c CreatedTenant) error {
			if got, ok := e.Authenticate(c.APIKey); !ok || got != c.Tenant.ID {
				return fmt.Errorf("authenticated as %d, %v", got, ok)
			}
			return nil
		}},
		{"api_key_issue", func(e *Engine, c CreatedTenant) error {
			_, err := e.IssueAPIKey(context.Background(), c.Tenant.ID)
			return err
		}},
		{"api_key_revocation", func(e *Engine, c CreatedTenant) error {
			_, err := e.RevokeAPIKey(context.Background(), c.Tenant.ID, c.KeyID)
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			other := h.newEngine(h.server.Store)
			if _, err := h.engine.Tenant(1); !errors.Is(err, ErrTenantNotFound) {
				t.Fatalf("tenant 1 before it exists: %v", err)
			}
			created, err := other.CreateTenant(context.Background(), CreateTenant{Name: "elsewhere"})
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(registryRefreshMin + slack)
			for {
				err := tc.call(h.engine, created)
				if err == nil {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("tenant %d created on another instance: still %v after %s", created.Tenant.ID, err, registryRefreshMin+slack)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// An API key issued on another instance authenticates here at once, even
// though this instance read the registry a moment before the key existed:
// its holder may send it to any instance behind a load balancer, and a
// client does not retry a 401.
func TestKeyIssuedElsewhereAuthenticatesAtOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	other := h.newEngine(h.server.Store)
	if _, ok := h.engine.Authenticate("cdk_not_yet"); ok {
		t.Fatal("an unknown key authenticated")
	}
	created, err := other.CreateTenant(context.Background(), CreateTenant{Name: "elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	issued, err := other.IssueAPIKey(context.Background(), created.Tenant.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{created.APIKey, issued.APIKey} {
		if id, ok := h.engine.Authenticate(key); !ok || id != created.Tenant.ID {
			t.Fatalf("a key issued on another instance: authenticated as %d, %v; want %d", id, ok, created.Tenant.ID)
		}
	}
}

// Tenant creations in one instance, concurrently, and on a second instance
// appending to the same registry, all land with distinct ids, and both
// instances come to know every tenant and key.
func TestConcurrentTenantCreationsOnTwoInstances(t *testing.T) {
	t.Parallel()
	const perInstance = 20
	h := newHarness(t)
	engines := []*Engine{h.engine, h.newEngine(h.server.Store)}
	var mu sync.Mutex
	created := map[int64]string{}
	var wg sync.WaitGroup
	for w, e := range engines {
		for i := range perInstance {
			wg.Go(func() {
				var c CreatedTenant
				var err error
				for range appendAttemptsMax {
					c, err = e.CreateTenant(context.Background(), CreateTenant{Name: fmt.Sprintf("t-%d-%d", w, i)})
					if !errors.Is(err, ErrContention) {
						break
					}
				}
				if err != nil {
					t.Errorf("instance %d: %v", w, err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if prior, ok := created[c.Tenant.ID]; ok {
					t.Errorf("tenant id %d given twice (%s and %s)", c.Tenant.ID, prior, c.Tenant.Name)
				}
				created[c.Tenant.ID] = c.APIKey
			})
		}
	}
	wg.Wait()
	if len(created) != 2*perInstance {
		t.Fatalf("%d tenants created, want %d", len(created), 2*perInstance)
	}
	for _, e := range engines {
		eventually(t, registryRefreshMin+time.Second, func() bool {
			for id, key := range created {
				if got, ok := e.Authenticate(key); !ok || got != id {
					return false
				}
				if _, err := e.Tenant(id); err != nil {
					return false
				}
			}
			return true
		})
	}
}
