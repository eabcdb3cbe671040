package httpapi_test

// The HTTP-visible answers of issue 12's regressions (commands/edges_test.go
// has the engine-level ones), against the rules of domain/README.md.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/internal/openapicheck"
	"github.com/creditd/creditd/internal/testnats"
)

// newEnvNoSweep is newEnv with a sweeper that does not run during a test, so
// every answer is decided without its help.
func newEnvNoSweep(t *testing.T) *env {
	t.Helper()
	nats := testnats.Start(t, t.TempDir())
	clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	engine, err := commands.New(context.Background(), nats.Store, commands.Options{Clock: clock.Now, CheckInvariants: true, SweepInterval: time.Hour})
	if err != nil {
		t.Fatalf("new engine: %v", err)
	}
	t.Cleanup(engine.Close)
	srv := httptest.NewServer(openapicheck.Wrap(t, httpapi.New(httpapi.Config{Writer: engine, AdminToken: adminToken})))
	t.Cleanup(srv.Close)
	return &env{clock: clock, engine: engine, srv: srv}
}

func edgeAdvance(c *fakeClock, d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Rule: only the engine writes source auto_reload: a client grant with source
// "auto_reload" is refused, 400 naming body.source.
func TestEdge02ClientGrantWithAutoReloadSourceIs400(t *testing.T) {
	t.Parallel()
	e := newEnvNoSweep(t)
	tenantID, key := e.tenant(t, "acme")
	e.call(t, http.MethodPost, "/v1/grants", key, map[string]any{"grant_id": "g1", "amount": "10", "source": "auto_reload"}).
		problem(t, http.StatusBadRequest, "body.source")
	if l := e.line(t, tenantID, "default"); !l.Granted.IsZero() {
		t.Errorf("granted %s, want 0: nothing stored", l.Granted)
	}
}

// Rule: a grant whose expiry has passed at now is expired; changing its expiry
// is a 409 problem.
func TestEdge04PatchOfAnExpiredGrantsExpiryIs409(t *testing.T) {
	t.Parallel()
	e := newEnvNoSweep(t)
	tenantID, key := e.tenant(t, "acme")
	expires := e.clock.Now().Add(time.Hour)
	e.call(t, http.MethodPost, "/v1/grants", key, map[string]any{"grant_id": "g1", "amount": "100", "expires_at": expires.Format(time.RFC3339Nano)}).
		want(t, http.StatusCreated)
	edgeAdvance(e.clock, time.Hour+time.Microsecond)
	e.call(t, http.MethodPatch, "/v1/grants/g1", key, raw(`{"expires_at":null}`)).problem(t, http.StatusConflict)
	later := expires.Add(24 * time.Hour).Format(time.RFC3339Nano)
	e.call(t, http.MethodPatch, "/v1/grants/g1", key, map[string]any{"expires_at": later}).problem(t, http.StatusConflict)
	// The expired credits stay expired.
	wantCounts(t, e.usage(t, key, event("u1", "10")), 0, 0, 1)
	if l := e.line(t, tenantID, "default"); !l.Expired.Equal(decimalOf(t, "100")) || !l.Balance().IsZero() {
		t.Errorf("expired %s balance %s, want 100 and 0", l.Expired, l.Balance())
	}
}

// Rule: every write's fingerprint covers every field of its body; void and
// reversal fingerprints cover their reason (same id, other body → 409).
func TestEdge07AmendmentWithAnotherReasonIs409(t *testing.T) {
	t.Parallel()
	e := newEnvNoSweep(t)
	_, key := e.tenant(t, "acme")
	e.grant(t, key, "g1", "100")
	e.grant(t, key, "g2", "100")
	wantCounts(t, e.usage(t, key, event("u1", "30")), 1, 0, 0)

	for name, path := range map[string]string{"reversal": "/v1/usage/u1/reverse", "void": "/v1/grants/g2/void"} {
		t.Run(name, func(t *testing.T) {
			e.call(t, http.MethodPost, path, key, map[string]any{"reason": "a"}).want(t, http.StatusOK)
			e.call(t, http.MethodPost, path, key, map[string]any{"reason": "b"}).problem(t, http.StatusConflict)
			wantString(t, e.call(t, http.MethodPost, path, key, map[string]any{"reason": "a"}).want(t, http.StatusOK), "status", "duplicate")
		})
	}
}

// Rule: capture or release naming a credit line that does not hold that
// reservation → 404 not found (not 409 "closed").
func TestEdge08CaptureOrReleaseOnTheWrongLineIs404(t *testing.T) {
	t.Parallel()
	e := newEnvNoSweep(t)
	tenantID, key := e.tenant(t, "acme")
	e.call(t, http.MethodPost, "/v1/grants", key, map[string]any{"grant_id": "g1", "credit_type": "gpu", "amount": "100"}).want(t, http.StatusCreated)
	e.call(t, http.MethodPost, "/v1/reservations", key, map[string]any{"reservation_id": "r1", "credit_type": "gpu", "amount": "30"}).want(t, http.StatusCreated)
	t.Run("capture", func(t *testing.T) {
		e.call(t, http.MethodPost, "/v1/reservations/r1/capture", key, map[string]any{"credit_type": "default", "amount": "10"}).problem(t, http.StatusNotFound)
	})
	t.Run("release", func(t *testing.T) {
		e.call(t, http.MethodPost, "/v1/reservations/r1/release?credit_type=default", key, nil).problem(t, http.StatusNotFound)
	})
	if l := e.line(t, tenantID, "gpu"); !l.Reserved.Equal(decimalOf(t, "30")) {
		t.Errorf("gpu reserved %s, want the hold still open (30)", l.Reserved)
	}
	e.call(t, http.MethodPost, "/v1/reservations/r1/capture", key, map[string]any{"amount": "10"}).want(t, http.StatusOK)
}

// Rule: each of a line's totals stays ≤ 10^12 credits; a client write that
// would take one past it is refused (400 naming the amount field; nothing stored).
func TestEdge09GrantPastTheTotalsLimitIs400(t *testing.T) {
	t.Parallel()
	e := newEnvNoSweep(t)
	tenantID, key := e.tenant(t, "acme")
	e.grant(t, key, "g1", "999999999999")
	e.call(t, http.MethodPost, "/v1/grants", key, map[string]any{"grant_id": "g2", "amount": "999999999999"}).
		problem(t, http.StatusBadRequest, "body.amount")
	if l := e.line(t, tenantID, "default"); !l.Granted.Equal(decimalOf(t, "999999999999")) {
		t.Errorf("granted %s, want 999999999999", l.Granted)
	}
	// Nothing was stored: the id is still free.
	e.grant(t, key, "g2", "1")
}
