package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/ingest"
	"github.com/creditd/creditd/internal/testnats"
)

// flaky fails the first call for each tenant it is told to, then records
// through the real engine: the failure a broker must survive by redelivery.
type flaky struct {
	engine *commands.Engine
	fails  atomic.Int32
}

func (f *flaky) RecordUsage(ctx context.Context, tenantID int64, events []commands.UsageEvent) ([]commands.Result, error) {
	if f.fails.Add(-1) >= 0 {
		return nil, fmt.Errorf("%w: simulated outage", commands.ErrUnavailable)
	}
	return f.engine.RecordUsage(ctx, tenantID, events)
}

type env struct {
	srv    *testnats.Server
	engine *commands.Engine
	js     jetstream.JetStream
	rec    *flaky
}

func start(t *testing.T) *env { return startOn(t, nil) }

// startOn starts the engine on wrap(the store), or on the store itself when
// wrap is nil.
func startOn(t *testing.T, wrap func(*eventstore.Store) commands.FullStore) *env {
	t.Helper()
	srv := testnats.Start(t, t.TempDir())
	var store commands.FullStore = srv.Store
	if wrap != nil {
		store = wrap(srv.Store)
	}
	engine, err := commands.New(context.Background(), store, commands.Options{CheckInvariants: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(engine.Close)
	js, _ := jetstream.New(srv.Conn)
	if err := ingest.EnsureStreams(context.Background(), js, 1); err != nil {
		t.Fatal(err)
	}
	e := &env{srv: srv, engine: engine, js: js, rec: &flaky{engine: engine}}
	conn, err := srv.Embedded.Connect("ingest")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ingest.Consume(ctx, conn, e.rec, ingest.Options{Workers: 8}) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return e
}

func (e *env) tenant(t *testing.T, credits string) int64 {
	t.Helper()
	c, err := e.engine.CreateTenant(context.Background(), commands.CreateTenant{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.engine.Grant(context.Background(), c.Tenant.ID, "default", domain.Grant{GrantID: "g", Amount: decimal.RequireFromString(credits), Source: domain.SourcePurchase}); err != nil {
		t.Fatal(err)
	}
	return c.Tenant.ID
}

func (e *env) publish(t *testing.T, subject string, payload any) {
	t.Helper()
	data, ok := payload.([]byte)
	if !ok {
		data, _ = json.Marshal(payload)
	}
	if _, err := e.js.Publish(context.Background(), subject, data); err != nil {
		t.Fatal(err)
	}
}

func (e *env) used(t *testing.T, tenant int64) decimal.Decimal {
	t.Helper()
	l, _, err := e.engine.Line(context.Background(), tenant, "default")
	if err != nil {
		t.Fatal(err)
	}
	return l.Used
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) deadLetters(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	stream, err := e.js.Stream(context.Background(), ingest.DeadStreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := stream.Info(context.Background())
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(context.Background(), seq)
		if err != nil {
			continue
		}
		out[string(m.Data)] = m.Header.Get(ingest.HeaderReason)
	}
	return out
}

func TestNATSIngestion(t *testing.T) {
	t.Parallel()
	e := start(t)
	tenant := e.tenant(t, "1000")
	subject := fmt.Sprintf("%s%d", ingest.SubjectPrefix, tenant)

	t.Run("events_published_twice_are_counted_once", func(t *testing.T) {
		for range 2 {
			for i := range 20 {
				e.publish(t, subject, map[string]any{"id": fmt.Sprintf("e%d", i), "amount": "1.5", "module": "search"})
			}
		}
		eventually(t, "30 credits used", func() bool { return e.used(t, tenant).Equal(decimal.RequireFromString("30")) })
	})

	t.Run("a_batch_message_records_every_event", func(t *testing.T) {
		e.publish(t, subject, map[string]any{"events": []any{
			map[string]any{"id": "b1", "amount": 2}, map[string]any{"id": "b2", "amount": "3"},
		}})
		eventually(t, "35 credits used", func() bool { return e.used(t, tenant).Equal(decimal.RequireFromString("35")) })
	})

	t.Run("a_failed_attempt_is_redelivered_and_counted_once", func(t *testing.T) {
		e.rec.fails.Store(1)
		e.publish(t, subject, map[string]any{"id": "flaky", "amount": "5"})
		eventually(t, "40 credits used", func() bool { return e.used(t, tenant).Equal(decimal.RequireFromString("40")) })
		if e.rec.fails.Load() >= 0 {
			t.Fatal("the simulated failure never happened")
		}
		time.Sleep(200 * time.Millisecond)
		if got := e.used(t, tenant); !got.Equal(decimal.RequireFromString("40")) {
			t.Fatalf("used %s after redelivery, want 40", got)
		}
	})

	t.Run("late_and_out_of_order_events_are_accepted", func(t *testing.T) {
		long := time.Now().AddDate(0, -4, 0).UTC().Format(time.RFC3339)
		e.publish(t, subject, map[string]any{"id": "late-2", "amount": "1", "timestamp": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)})
		e.publish(t, subject, map[string]any{"id": "late-1", "amount": "1", "timestamp": long})
		eventually(t, "42 credits used", func() bool { return e.used(t, tenant).Equal(decimal.RequireFromString("42")) })
	})

	t.Run("poison_messages_go_to_the_dead_letter_stream_with_a_reason", func(t *testing.T) {
		e.publish(t, subject, []byte(`{not json`))
		e.publish(t, subject, map[string]any{"id": "", "amount": "x"})
		e.publish(t, ingest.SubjectPrefix+"999", map[string]any{"id": "ghost", "amount": "1"})
		e.publish(t, ingest.SubjectPrefix+"abc", map[string]any{"id": "nobody", "amount": "1"})
		e.publish(t, subject, map[string]any{"id": "e1", "amount": "99"}) // e1 was 1.5
		eventually(t, "five dead letters", func() bool { return len(e.deadLetters(t)) == 5 })
		dead := e.deadLetters(t)
		for payload, wantIn := range map[string]string{
			`{not json`: "invalid JSON", `{"amount":"x","id":""}`: "invalid event", `{"amount":"1","id":"ghost"}`: "unknown tenant 999",
			`{"amount":"1","id":"nobody"}`: "names no tenant", `{"id":"e1"}`: "id conflict",
		} {
			reason, ok := dead[payload]
			if !ok || !contains(reason, wantIn) {
				t.Errorf("dead letter %s: reason %q, want it to mention %q (all: %v)", payload, reason, wantIn, dead)
			}
		}
		if got := e.used(t, tenant); !got.Equal(decimal.RequireFromString("42")) {
			t.Fatalf("poison changed the balance: used %s", got)
		}
	})

	t.Run("insufficient_credits_is_recorded_not_dead_lettered", func(t *testing.T) {
		before := len(e.deadLetters(t))
		e.publish(t, subject, map[string]any{"id": "too-much", "amount": "5000"})
		eventually(t, "the rejection is recorded", func() bool {
			results, err := e.engine.RecordUsage(context.Background(), tenant, []commands.UsageEvent{{CreditType: "default",
				RecordUsage: domain.RecordUsage{UsageID: "too-much", Amount: decimal.RequireFromString("5000"), Dimensions: domain.Dimensions{Success: true}}}})
			return err == nil && results[0].Duplicate && results[0].Reason == domain.RejectInsufficientCredits
		})
		if len(e.deadLetters(t)) != before {
			t.Fatal("a refused debit was dead-lettered")
		}
	})
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// A timestamp whose UTC year is past 9999 (9999-12-31T23:30:00-01:00) has
// no RFC 3339 form to store: it is an invalid event, dead-lettered at once,
// and the writes of the commit it would have joined go on. It made every
// commit it joined fail to encode, other tenants' writes with it, for five
// deliveries.
func TestATimestampPastYear9999IsInvalid(t *testing.T) {
	t.Parallel()
	e := start(t)
	tenant := e.tenant(t, "100")
	subject := fmt.Sprintf("%s%d", ingest.SubjectPrefix, tenant)
	payload := []byte(`{"id":"far","amount":"1","timestamp":"9999-12-31T23:30:00-01:00"}`)
	e.publish(t, subject, payload)
	e.publish(t, subject, map[string]any{"id": "near", "amount": "2"})
	eventually(t, "the far event dead-lettered", func() bool { return e.deadLetters(t)[string(payload)] != "" })
	if reason := e.deadLetters(t)[string(payload)]; !contains(reason, "invalid event") || !contains(reason, "timestamp") {
		t.Errorf("dead letter reason %q, want an invalid event naming its timestamp", reason)
	}
	eventually(t, "2 credits used", func() bool { return e.used(t, tenant).Equal(decimal.RequireFromString("2")) })
}
