// Package stack runs the whole of creditd in one test process: a real
// embedded JetStream, the command engine, the SQLite read models with their
// Watermill consumer, and the HTTP API on a loopback listener. Tests of
// every layer above the store use it instead of mocks.
package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creditd/creditd/audit"
	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/ingest"
	"github.com/creditd/creditd/internal/openapicheck"
	"github.com/creditd/creditd/internal/testnats"
	"github.com/creditd/creditd/internal/webhook"
	"github.com/creditd/creditd/projections"
	"github.com/creditd/creditd/queries"
)

// AdminToken is the admin token of every stack.
const AdminToken = "stack-admin-token"

// WebhookKey is the webhook signing key of every stack.
var WebhookKey = []byte("stack-webhook-key")

// Clock is a settable clock; the zero value reads time.Now until Set.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// Now returns the set time, or the real time when none was set.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now.IsZero() {
		return time.Now()
	}
	return c.now
}

// Set fixes the clock at t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// Advance moves a set clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Stack is a running creditd.
type Stack struct {
	T         testing.TB
	Dir       string
	Clock     *Clock
	NATS      *testnats.Server
	Engine    *commands.Engine
	DB        *projections.DB
	Projector *projections.Projector
	Reader    *queries.Reader
	Server    *httptest.Server

	opts         Options
	stopConsumer context.CancelFunc
	// stopProjection stops the projection consumer alone; projectionDone
	// is closed once it returned.
	stopProjection context.CancelFunc
	projectionDone chan struct{}
	ingestDone     chan error
	dispatchDone   chan struct{}
}

// Start runs a stack on a fresh data directory.
func Start(t testing.TB) *Stack {
	return StartAt(t, t.TempDir(), &Clock{})
}

// Options are a stack's settings beyond the defaults.
type Options struct {
	// Webhooks are the webhook rules, strict when zero; tests that receive
	// webhooks on 127.0.0.1 admit it here, as an operator would.
	Webhooks webhook.Policy
	// ReadModels, when set, is the API's view of the read models' first
	// catch-up after a start (httpapi.Config.ReadModels).
	ReadModels httpapi.ReadModels
}

// StartAt runs a stack on dir (reuse it to restart on the same data).
func StartAt(t testing.TB, dir string, clock *Clock) *Stack {
	t.Helper()
	return StartWith(t, dir, clock, Options{})
}

// StartWith runs a stack on dir with opts.
func StartWith(t testing.TB, dir string, clock *Clock, opts Options) *Stack {
	t.Helper()
	s := &Stack{T: t, Dir: dir, Clock: clock, opts: opts}
	s.NATS = testnats.Start(t, filepath.Join(dir, "jetstream"))
	engine, err := commands.New(context.Background(), s.NATS.Store, commands.Options{Clock: clock.Now, CheckInvariants: true, SweepInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatalf("engine: %v", err)
	}
	s.Engine = engine
	s.DB, err = projections.Open(filepath.Join(dir, "readmodel.db"))
	if err != nil {
		t.Fatalf("read models: %v", err)
	}
	s.Projector, err = projections.NewProjector(context.Background(), s.DB, nil)
	if err != nil {
		t.Fatalf("projector: %v", err)
	}
	conn, err := s.NATS.Embedded.Connect("projection")
	if err != nil {
		t.Fatalf("projection connection: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopConsumer = cancel
	projectionCtx, stopProjection := context.WithCancel(ctx)
	s.stopProjection, s.projectionDone = stopProjection, make(chan struct{})
	go func() {
		defer close(s.projectionDone)
		projections.Consume(projectionCtx, conn, s.Projector, s.NATS.Store, nil)
	}()
	js, err := jetstream.New(s.NATS.Conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := ingest.EnsureStreams(context.Background(), js, 1); err != nil {
		t.Fatalf("ingest streams: %v", err)
	}
	ingestConn, err := s.NATS.Embedded.Connect("ingest")
	if err != nil {
		t.Fatalf("ingest connection: %v", err)
	}
	s.ingestDone = make(chan error, 1)
	go func() { s.ingestDone <- ingest.Consume(ctx, ingestConn, engine, ingest.Options{Workers: 8}) }()
	s.dispatchDone = make(chan struct{})
	dispatcher := &projections.Dispatcher{DB: s.DB, Projector: s.Projector, NATS: s.NATS.Conn, SigningKey: WebhookKey, Clock: clock.Now, Webhooks: opts.Webhooks}
	go func() {
		dispatcher.Run(ctx)
		close(s.dispatchDone)
	}()
	s.Reader = queries.New(s.DB.Reader())
	// Every exchange of every test is held against /openapi.json.
	s.Server = httptest.NewServer(openapicheck.Wrap(t, httpapi.New(httpapi.Config{
		Writer: engine, Reader: s.Reader, Projection: s.Projector, ReadModels: opts.ReadModels, WriteChains: engine, LogPosition: s.NATS.Store.LastPosition,
		AdminToken: AdminToken, Clock: clock.Now, WebhookSecret: func(tenantID int64) string { return projections.WebhookSecret(WebhookKey, tenantID) }, Webhooks: opts.Webhooks,
		Verify: func(ctx context.Context, tenantID int64) (audit.Report, error) {
			return audit.Verify(ctx, s.NATS.Store, s.DB.Reader(), tenantID)
		},
	})))
	t.Cleanup(s.Stop)
	return s
}

// Stop stops everything; safe to call twice.
func (s *Stack) Stop() {
	if s.Server == nil {
		return
	}
	s.Server.Close()
	s.stopConsumer()
	<-s.projectionDone
	<-s.ingestDone
	<-s.dispatchDone
	s.Engine.Close()
	s.DB.Close()
	s.NATS.Stop()
	s.Server = nil
}

// Restart stops the stack and starts it again on the same data.
func (s *Stack) Restart() *Stack {
	s.Stop()
	return StartWith(s.T, s.Dir, s.Clock, s.opts)
}

// StopProjection stops the projection consumer alone, as a stuck or dead
// consumer would: writes go on, the read models stand still.
func (s *Stack) StopProjection() {
	s.stopProjection()
	<-s.projectionDone
}

// Response is an HTTP answer read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body, keeping numbers as json.Number (exact text).
func (r Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
	return m
}

// Do sends a request with a bearer token; body is nil, a string sent as
// is, or a value marshalled to JSON.
func (s *Stack) Do(method, path, token string, body any) Response {
	s.T.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	default:
		data, err := json.Marshal(b)
		if err != nil {
			s.T.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, s.Server.URL+path, rd)
	if err != nil {
		s.T.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.Server.Client().Do(req)
	if err != nil {
		s.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// Must sends a request and fails the test unless the status is want.
func (s *Stack) Must(want int, method, path, token string, body any) map[string]any {
	s.T.Helper()
	resp := s.Do(method, path, token, body)
	if resp.Status != want {
		s.T.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.Status, want, resp.Body)
	}
	if len(resp.Body) == 0 {
		return nil
	}
	return resp.JSON(s.T)
}

// Tenant creates a tenant and returns its id and API key.
func (s *Stack) Tenant(name string) (int64, string) {
	s.T.Helper()
	m := s.Must(http.StatusCreated, http.MethodPost, "/v1/tenants", AdminToken, map[string]any{"name": name, "email": name + "@example.test"})
	id, _ := strconv.ParseInt(string(m["tenant_id"].(json.Number)), 10, 64)
	return id, m["api_key"].(string)
}

// Sync waits until the read models include every write so far.
func (s *Stack) Sync() {
	s.T.Helper()
	last, err := s.NATS.Store.LastPosition(context.Background())
	if err != nil {
		s.T.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Projector.WaitFor(ctx, last); err != nil {
		s.T.Fatalf("projection did not reach %d: %v (at %d)", last, err, s.Projector.Position())
	}
}
