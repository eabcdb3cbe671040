package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/internal/stack"
)

// catchUp is a settable httpapi.ReadModels.
type catchUp struct {
	mu       sync.Mutex
	state    httpapi.CatchUp
	caughtUp chan struct{}
}

func (c *catchUp) CatchUp() httpapi.CatchUp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

func (c *catchUp) CaughtUp() <-chan struct{} { return c.caughtUp }

func (c *catchUp) finish() {
	c.mu.Lock()
	c.state.Done, c.state.Position = true, c.state.Target
	c.mu.Unlock()
	close(c.caughtUp)
}

// TestReadsDuringTheFirstCatchUp runs the API while the read models'
// first catch-up after a start is not done: writes are accepted; a read
// waits for the catch-up up to 5 s and then answers 503
// read-models-catching-up with Retry-After, naming the position reached
// and the target, in a compat profile's own shape under its prefix; a
// read of a position the read models hold is served at once; /readyz
// answers 503 (reads catching up), 200 for ?scope=writes; a read waiting
// when the catch-up ends is served.
func TestReadsDuringTheFirstCatchUp(t *testing.T) {
	t.Parallel()
	models := &catchUp{caughtUp: make(chan struct{})}
	s := stack.StartWith(t, t.TempDir(), &stack.Clock{}, stack.Options{ReadModels: models})
	m := newTenant(t, s, "early", "USD")
	granted := m.grant("g", "", "100", nil)
	s.Sync()
	models.mu.Lock()
	models.state = httpapi.CatchUp{Mode: httpapi.CatchUpInPlace, Position: granted, Target: 9_999}
	models.mu.Unlock()

	t.Run("writes_are_accepted", func(t *testing.T) {
		fetch(t, s, http.MethodPost, "/v1/usage", m.key, map[string]any{"events": []any{event("u1", "1")}}).want(t, http.StatusOK)
	})
	t.Run("reads_answer_503_after_waiting", func(t *testing.T) {
		var wg sync.WaitGroup
		for _, path := range []string{"/v1/balance", "/v1/ledger", "/compat/openrouter/api/v1/credits"} {
			wg.Go(func() {
				start := time.Now()
				r := fetch(t, s, http.MethodGet, path, m.key, nil)
				if waited := time.Since(start); waited < 4*time.Second {
					t.Errorf("GET %s answered after %s, want a wait of 5 s first", path, waited)
				}
				if r.Header.Get("Retry-After") != "5" {
					t.Errorf("GET %s: Retry-After %q, want 5", path, r.Header.Get("Retry-After"))
				}
				if strings.HasPrefix(path, "/compat/openrouter/") {
					body := r.want(t, http.StatusServiceUnavailable)
					if e, _ := body["error"].(map[string]any); e == nil || !strings.Contains(fmt.Sprint(e["message"]), "catching up") {
						t.Errorf("GET %s: %s, want openrouter's error object", path, r.Body)
					}
					return
				}
				p := r.problem(t, http.StatusServiceUnavailable)
				if p.Type != "urn:creditd:problem:read-models-catching-up" || !strings.Contains(p.Detail, fmt.Sprintf("at position %d of 9999", granted)) {
					t.Errorf("GET %s: %+v", path, p)
				}
			})
		}
		wg.Wait()
	})
	t.Run("a_read_of_a_position_held_is_served", func(t *testing.T) {
		read(t, s, fmt.Sprintf("/v1/balance?min_position=%d", granted), m.key)
	})
	t.Run("readyz_tells_writes_from_reads", func(t *testing.T) {
		body := fetch(t, s, http.MethodGet, "/readyz", "", nil).want(t, http.StatusServiceUnavailable)
		wantString(t, body, "writes", "ready")
		wantString(t, body, "reads", "catching_up")
		if c, _ := body["catch_up"].(map[string]any); c == nil || c["mode"] != "in_place" || fmt.Sprint(c["target"]) != "9999" {
			t.Errorf("/readyz catch_up: %v", body["catch_up"])
		}
		fetch(t, s, http.MethodGet, "/readyz?scope=writes", "", nil).want(t, http.StatusOK)
		fetch(t, s, http.MethodGet, "/readyz?scope=reads", "", nil).want(t, http.StatusServiceUnavailable)
		fetch(t, s, http.MethodGet, "/readyz?scope=everything", "", nil).problem(t, http.StatusBadRequest, "query.scope")
	})
	t.Run("a_waiting_read_is_served_once_caught_up", func(t *testing.T) {
		answered := make(chan response, 1)
		go func() { answered <- fetch(t, s, http.MethodGet, "/v1/balance", m.key, nil) }()
		time.Sleep(200 * time.Millisecond) // let the read start waiting; it passes either way
		models.finish()
		select {
		case r := <-answered:
			r.want(t, http.StatusOK)
		case <-time.After(4 * time.Second):
			t.Fatal("the waiting read was not answered when the catch-up ended")
		}
		fetch(t, s, http.MethodGet, "/readyz", "", nil).want(t, http.StatusOK)
	})
}
