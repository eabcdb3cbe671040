package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/internal/testnats"
	webhookrules "github.com/creditd/creditd/internal/webhook"
	"github.com/creditd/creditd/projections"
)

// crossingWait bounds each wait for deliveries: a few poll intervals.
const crossingWait = 15 * time.Second

// crossing names a crossing as every instance sees it.
type crossing struct {
	TenantID   int64  `json:"tenant_id"`
	CreditType string `json:"credit_type"`
	Kind       string `json:"kind"`
	Threshold  string `json:"threshold"`
	Position   uint64 `json:"position"`
}

// receiver counts the POSTs of each crossing, and checks that each
// crossing comes with one key, in the body and the header, of its own.
type receiver struct {
	mu    sync.Mutex
	posts map[crossing]int
	keys  map[crossing]string
	bad   []string
}

func newReceiver() *receiver {
	return &receiver{posts: map[crossing]int{}, keys: map[crossing]string{}}
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var n struct {
		crossing
		Key string `json:"key"`
	}
	if err := json.Unmarshal(body, &n); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.posts[n.crossing]++
	if header := req.Header.Get(projections.NoticeKeyHeader); n.Key == "" || header != n.Key {
		r.bad = append(r.bad, fmt.Sprintf("crossing %+v: key %q, header %q", n.crossing, n.Key, header))
	}
	if known, ok := r.keys[n.crossing]; ok && known != n.Key {
		r.bad = append(r.bad, fmt.Sprintf("crossing %+v came with keys %q and %q", n.crossing, known, n.Key))
	}
	for other, key := range r.keys {
		if key == n.Key && other != n.crossing {
			r.bad = append(r.bad, fmt.Sprintf("crossings %+v and %+v share key %q", other, n.crossing, key))
		}
	}
	r.keys[n.crossing] = n.Key
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) snapshot() map[crossing]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[crossing]int, len(r.posts))
	for c, n := range r.posts {
		out[c] = n
	}
	return out
}

// instance is one creditd instance's read models and notice dispatcher,
// fed from the shared log.
type instance struct {
	name      string
	db        *projections.DB
	projector *projections.Projector
	done      chan struct{}
}

// owner is which instance owns the tenants, as partition ownership would
// say; it moves on failover.
type owner struct{ name atomic.Pointer[string] }

func (o *owner) set(name string) { o.name.Store(&name) }

// owns is the Owns of instance name.
func (o *owner) owns(name string) func(int64) bool {
	return func(int64) bool { return *o.name.Load() == name }
}

// sharedRecord opens the delivery record on the log's server.
func sharedRecord(t *testing.T, srv *testnats.Server) projections.DeliveryRecord {
	t.Helper()
	record, err := projections.OpenDeliveryRecord(t.Context(), srv.Conn, 1)
	if err != nil {
		t.Fatal(err)
	}
	return record
}

func startInstance(t *testing.T, srv *testnats.Server, name string, configure func(*projections.Dispatcher)) *instance {
	t.Helper()
	db, err := projections.Open(filepath.Join(t.TempDir(), name+".db"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := projections.NewProjector(t.Context(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &projections.Dispatcher{DB: db, Projector: p, SigningKey: []byte("key"),
		Webhooks: webhookrules.Policy{AllowHTTP: true, AllowHosts: []string{"127.0.0.1"}}}
	if configure != nil {
		configure(d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{name: name, db: db, projector: p, done: make(chan struct{})}
	go func() {
		defer close(in.done)
		d.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-in.done
		db.Close()
	})
	return in
}

// catchUp applies the log so far to the instance's read models.
func (in *instance) catchUp(t *testing.T, srv *testnats.Server) {
	t.Helper()
	if err := in.projector.CatchUp(t.Context(), srv.Store, 0); err != nil {
		t.Fatalf("%s: catch up: %v", in.name, err)
	}
}

// outboxRow is a notice's delivery state in one instance's outbox.
type outboxRow struct {
	crossing
	delivered bool
	attempts  int
}

func (in *instance) outbox(t *testing.T) []outboxRow {
	t.Helper()
	rows, err := in.db.Reader().QueryContext(t.Context(), `SELECT tenant_id, credit_type, kind, threshold, position,
		delivered_at IS NOT NULL, attempts FROM notices ORDER BY notice_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		var threshold int64
		if err := rows.Scan(&r.TenantID, &r.CreditType, &r.Kind, &threshold, &r.Position, &r.delivered, &r.attempts); err != nil {
			t.Fatal(err)
		}
		r.Threshold = projections.FromMicro(threshold).String()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitDelivered waits until the instance's outbox holds want notices, none
// of them pending.
func (in *instance) waitDelivered(t *testing.T, want int) []outboxRow {
	t.Helper()
	deadline := time.Now().Add(crossingWait)
	for {
		rows := in.outbox(t)
		pending := 0
		for _, r := range rows {
			if !r.delivered {
				pending++
			}
		}
		if len(rows) == want && pending == 0 {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after %s: %d notices, %d pending; want %d, none pending", in.name, crossingWait, len(rows), pending, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// history writes through the real engine.
type history struct {
	t      *testing.T
	srv    *testnats.Server
	engine *commands.Engine
	step   int
}

func newHistory(t *testing.T) *history {
	t.Helper()
	srv := testnats.Start(t, t.TempDir())
	engine, err := commands.New(context.Background(), srv.Store, commands.Options{CheckInvariants: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(engine.Close)
	return &history{t: t, srv: srv, engine: engine}
}

// tenant creates a tenant whose notices, at 50 and 10, go to url.
func (h *history) tenant(name, url string) int64 {
	h.t.Helper()
	created, err := h.engine.CreateTenant(h.t.Context(), commands.CreateTenant{Name: name})
	if err != nil {
		h.t.Fatal(err)
	}
	id := created.Tenant.ID
	if _, err := h.engine.ConfigureNotices(h.t.Context(), id, commands.Notices{
		Thresholds: []decimal.Decimal{decimal.New(50, 0), decimal.New(10, 0)}, WebhookURL: url}); err != nil {
		h.t.Fatal(err)
	}
	return id
}

// crossings grants 100 and uses it up in three steps: three crossings
// (below 50, below 10, depleted), each in a commit of its own.
func (h *history) crossings(tenantID int64) {
	h.t.Helper()
	ctx := h.t.Context()
	h.step++
	if _, err := h.engine.Grant(ctx, tenantID, "credits", domain.Grant{GrantID: fmt.Sprintf("g%d", h.step), Amount: decimal.New(100, 0), Source: domain.SourcePurchase}); err != nil {
		h.t.Fatal(err)
	}
	for i, amount := range []int64{60, 35, 5} {
		events := []commands.UsageEvent{{CreditType: "credits", RecordUsage: domain.RecordUsage{
			UsageID: fmt.Sprintf("u%d-%d", h.step, i), Amount: decimal.New(amount, 0), OccurredAt: time.Now(), Dimensions: domain.Dimensions{Success: true}}}}
		results, err := h.engine.RecordUsage(ctx, tenantID, events)
		if err != nil {
			h.t.Fatal(err)
		}
		if len(results) != 1 || results[0].Status != commands.StatusAccepted {
			h.t.Fatalf("usage %d-%d: %+v", h.step, i, results)
		}
	}
}

// wantEachOnce fails unless the receiver got exactly the crossings of
// rows, each once, each with a key of its own.
func wantEachOnce(t *testing.T, hook *receiver, rows []outboxRow) {
	t.Helper()
	got := hook.snapshot()
	hook.mu.Lock()
	for _, bad := range hook.bad {
		t.Error(bad)
	}
	hook.mu.Unlock()
	for _, r := range rows {
		if n := got[r.crossing]; n != 1 {
			t.Errorf("crossing %+v POSTed %d times, want once", r.crossing, n)
		}
	}
	if len(got) != len(rows) {
		t.Errorf("%d crossings POSTed, want %d", len(got), len(rows))
	}
}

// pending counts the rows not delivered, failing on any attempted.
func pending(t *testing.T, in *instance, rows []outboxRow) int {
	t.Helper()
	n := 0
	for _, r := range rows {
		if !r.delivered {
			n++
			if r.attempts != 0 {
				t.Errorf("%s: notice %+v of a tenant it does not own has %d attempts, want 0", in.name, r.crossing, r.attempts)
			}
		}
	}
	return n
}

// waitOutbox waits until the instance's outbox holds want notices.
func (in *instance) waitOutbox(t *testing.T, want int) []outboxRow {
	t.Helper()
	deadline := time.Now().Add(crossingWait)
	for {
		rows := in.outbox(t)
		if len(rows) == want {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d notices, want %d", in.name, len(rows), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two instances on one log record the same crossings in their own
// outboxes; the owner of the tenant posts each crossing once, and the
// other leaves them pending, unattempted, in case it owns the tenant
// later. (Without Owns and the record, each instance posted each
// crossing.)
func TestTwoInstancesPostEachCrossingOnce(t *testing.T) {
	t.Parallel()
	h := newHistory(t)
	hook := newReceiver()
	server := httptest.NewServer(hook)
	defer server.Close()
	tenant := h.tenant("acme", server.URL)
	h.crossings(tenant)

	record := sharedRecord(t, h.srv)
	var own owner
	own.set("a")
	configure := func(name string) func(*projections.Dispatcher) {
		return func(d *projections.Dispatcher) { d.Owns, d.Record = own.owns(name), record }
	}
	a := startInstance(t, h.srv, "a", configure("a"))
	b := startInstance(t, h.srv, "b", configure("b"))
	b.catchUp(t, h.srv)
	a.catchUp(t, h.srv)
	rows := a.waitDelivered(t, 3)
	// b never sends them; once a recorded them, b marks them delivered
	// too (settleOthers), so every instance answers the same status.
	for _, r := range b.waitDelivered(t, 3) {
		if r.attempts != 0 {
			t.Errorf("b: notice %+v has %d attempts, want 0 (a's to send)", r.crossing, r.attempts)
		}
	}
	wantEachOnce(t, hook, rows)
}

// Ownership moves from a to b between crossings: a posts the first ones,
// b the later ones, and b, which finds a's pending in its own outbox,
// does not post them again.
func TestFailoverPostsEachCrossingOnce(t *testing.T) {
	t.Parallel()
	h := newHistory(t)
	hook := newReceiver()
	server := httptest.NewServer(hook)
	defer server.Close()
	tenant := h.tenant("acme", server.URL)

	record := sharedRecord(t, h.srv)
	var own owner
	own.set("a")
	configure := func(name string) func(*projections.Dispatcher) {
		return func(d *projections.Dispatcher) { d.Owns, d.Record = own.owns(name), record }
	}
	a := startInstance(t, h.srv, "a", configure("a"))
	b := startInstance(t, h.srv, "b", configure("b"))

	h.crossings(tenant)
	a.catchUp(t, h.srv)
	b.catchUp(t, h.srv)
	a.waitDelivered(t, 3)
	b.waitOutbox(t, 3)

	own.set("b")
	h.crossings(tenant)
	a.catchUp(t, h.srv)
	b.catchUp(t, h.srv)
	rows := b.waitDelivered(t, 6)
	for i, r := range rows {
		// a's three were settled from the record, never attempted by b.
		if wantAttempts := min(i/3, 1); r.attempts != wantAttempts {
			t.Errorf("b: notice %d %+v has %d attempts, want %d", i, r.crossing, r.attempts, wantAttempts)
		}
	}
	// a settles b's three from the record, without an attempt.
	for i, r := range a.waitDelivered(t, 6) {
		if wantAttempts := 1 - min(i/3, 1); r.attempts != wantAttempts {
			t.Errorf("a: notice %d %+v has %d attempts, want %d", i, r.crossing, r.attempts, wantAttempts)
		}
	}
	wantEachOnce(t, hook, rows)
}

// A dispatcher delivers only the tenants it owns; another tenant's
// notices stay pending with no attempt, however many polls pass.
func TestNoticesOfTenantsNotOwnedStayPending(t *testing.T) {
	t.Parallel()
	h := newHistory(t)
	hook := newReceiver()
	server := httptest.NewServer(hook)
	defer server.Close()
	mine := h.tenant("mine", server.URL)
	theirs := h.tenant("theirs", server.URL)
	h.crossings(theirs)
	h.crossings(mine)

	record := sharedRecord(t, h.srv)
	in := startInstance(t, h.srv, "a", func(d *projections.Dispatcher) {
		d.Owns, d.Record = func(tenantID int64) bool { return tenantID == mine }, record
	})
	in.catchUp(t, h.srv)
	deadline := time.Now().Add(crossingWait)
	for len(hook.snapshot()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the owned tenant's notices: %d posted, want 3", len(hook.snapshot()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // another poll
	var delivered []outboxRow
	for _, r := range in.outbox(t) {
		switch {
		case r.TenantID == mine:
			if !r.delivered {
				t.Errorf("owned tenant's notice %+v pending", r.crossing)
			}
			delivered = append(delivered, r)
		case r.delivered || r.attempts != 0:
			t.Errorf("notice %+v of a tenant not owned: delivered %v, %d attempts; want pending, 0 attempts", r.crossing, r.delivered, r.attempts)
		}
	}
	wantEachOnce(t, hook, delivered)
}
