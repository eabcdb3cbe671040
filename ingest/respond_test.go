package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/ingest"
)

// respond starts the usage request responders on a connection of their
// own; the returned func stops them and waits until Respond returns.
func (e *env) respond(t *testing.T, workers int) (stop func()) {
	return e.respondObserved(t, workers, nil)
}

// counting is a RequestObserver that keeps its counts.
type counting struct {
	mu       sync.Mutex
	statuses map[int]int
	refused  map[string]int
	dropped  func() (int, error)
}

func (c *counting) UsageRequest(status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.statuses[status]++
}

func (c *counting) UsageRequestRefused(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refused[reason]++
}

func (c *counting) WatchUsageRequestsDropped(dropped func() (int, error)) { c.dropped = dropped }

func (e *env) respondObserved(t *testing.T, workers int, observer ingest.RequestObserver) (stop func()) {
	t.Helper()
	conn, err := e.srv.Embedded.Connect("usage-requests")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ingest.Respond(ctx, conn, httpapi.NewUsageAnswerer(httpapi.Config{Writer: e.engine}), ingest.RespondOptions{Workers: workers, Observer: observer})
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Respond: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	// Subscribed once a request is answered.
	probe := e.producer(t)
	eventually(t, "responders subscribed", func() bool {
		_, err := probe.Request(ingest.RecordSubjectPrefix+"0", []byte(`{}`), 200*time.Millisecond)
		return err == nil
	})
	return stop
}

func (e *env) producer(t *testing.T) *nats.Conn {
	t.Helper()
	nc, err := e.srv.Embedded.Connect("producer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

type answer struct {
	status int
	body   map[string]any
}

func request(t *testing.T, nc *nats.Conn, subject, body string, headers ...string) answer {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = []byte(body)
	for i := 0; i+1 < len(headers); i += 2 {
		msg.Header.Set(headers[i], headers[i+1])
	}
	reply, err := nc.RequestMsg(msg, 10*time.Second)
	if err != nil {
		t.Fatalf("request to %s: %v", subject, err)
	}
	status, err := strconv.Atoi(reply.Header.Get(ingest.HeaderStatus))
	if err != nil {
		t.Fatalf("answer without %s: %v %s", ingest.HeaderStatus, reply.Header, reply.Data)
	}
	a := answer{status: status}
	if err := json.Unmarshal(reply.Data, &a.body); err != nil {
		t.Fatalf("answer is not a JSON object: %s", reply.Data)
	}
	return a
}

// TestUsageRequests records usage by NATS requests on the embedded server:
// each is answered with its status in a header and the body POST
// /v1/usage answers (TestAnswerUsageIsWhatPostUsageAnswers holds the two
// to each other), once the events are stored and only then.
func TestUsageRequests(t *testing.T) {
	t.Parallel()
	e := start(t)
	tenant := e.tenant(t, "100")
	e.respond(t, 4)
	nc := e.producer(t)
	subject := ingest.RecordSubjectPrefix + strconv.FormatInt(tenant, 10)

	t.Run("answered once stored, with each event's outcome", func(t *testing.T) {
		a := request(t, nc, subject, `{"events":[{"id":"r1","amount":"1.5"},{"id":"r2","amount":"2"},{"id":"r3","amount":"1000"}]}`)
		if a.status != 200 || a.body["accepted"] != 2.0 || a.body["rejected"] != 1.0 {
			t.Fatalf("answer %d %v", a.status, a.body)
		}
		// No waiting: the answer came after the commit.
		if got := e.used(t, tenant); !got.Equal(decimal.RequireFromString("3.5")) {
			t.Fatalf("used %s right after the answer, want 3.5", got)
		}
	})
	t.Run("a repeat is answered as duplicates and counted once", func(t *testing.T) {
		a := request(t, nc, subject, `{"events":[{"id":"r1","amount":"1.5"},{"id":"r2","amount":"2"}]}`)
		if a.status != 200 || a.body["duplicates"] != 2.0 {
			t.Fatalf("answer %d %v", a.status, a.body)
		}
		if got := e.used(t, tenant); !got.Equal(decimal.RequireFromString("3.5")) {
			t.Fatalf("used %s, want 3.5", got)
		}
	})
	t.Run("a batch key travels in its header", func(t *testing.T) {
		request(t, nc, subject, `{"events":[{"id":"k1","amount":"1"}]}`, ingest.HeaderIdempotencyKey, "batch-1")
		a := request(t, nc, subject, `{"events":[{"id":"k2","amount":"1"}]}`, ingest.HeaderIdempotencyKey, "batch-1")
		if a.status != 409 {
			t.Fatalf("a batch key reused with another body: %d %v, want 409", a.status, a.body)
		}
	})
	t.Run("bad input is a problem and stores nothing", func(t *testing.T) {
		for body, want := range map[string]int{
			`{"events":[{"id":"b1","amount":"1"},{"id":"b2","amount":"x"}]}`: 400,
			`{"events":[`: 400,
			``:            400,
		} {
			a := request(t, nc, subject, body)
			if a.status != want || a.body["status"] != float64(want) || a.body["instance"] != subject {
				t.Errorf("%q: %d %v, want a %d problem naming the subject", body, a.status, a.body, want)
			}
		}
		if got := e.used(t, tenant); !got.Equal(decimal.RequireFromString("4.5")) {
			t.Fatalf("used %s, want 4.5", got)
		}
	})
	t.Run("an unknown tenant or a subject with no tenant id is a 404", func(t *testing.T) {
		for _, s := range []string{ingest.RecordSubjectPrefix + "999", ingest.RecordSubjectPrefix + "abc", ingest.RecordSubjectPrefix + "-1"} {
			if a := request(t, nc, s, `{"events":[{"id":"x","amount":"1"}]}`); a.status != 404 {
				t.Errorf("%s: %d %v, want 404", s, a.status, a.body)
			}
		}
	})
	t.Run("a publish without a reply subject is not recorded", func(t *testing.T) {
		if err := nc.Publish(subject, []byte(`{"events":[{"id":"silent","amount":"1"}]}`)); err != nil {
			t.Fatal(err)
		}
		nc.Flush()
		time.Sleep(300 * time.Millisecond)
		// Recorded, it would now be a duplicate.
		a := request(t, nc, subject, `{"events":[{"id":"silent","amount":"1"}]}`)
		if a.status != 200 || a.body["accepted"] != 1.0 {
			t.Fatalf("the request after the publish: %d %v, want it accepted", a.status, a.body)
		}
	})
	t.Run("many at once, each answered", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 64 {
			wg.Go(func() {
				a := request(t, nc, subject, fmt.Sprintf(`{"events":[{"id":"m%d","amount":"0.5"}]}`, i))
				if a.status != 200 || a.body["accepted"] != 1.0 {
					t.Errorf("request %d: %d %v", i, a.status, a.body)
				}
			})
		}
		wg.Wait()
		if got := e.used(t, tenant); !got.Equal(decimal.RequireFromString("37.5")) {
			t.Fatalf("used %s, want 37.5", got)
		}
	})
}

// TestUsageRequestsStop: once stopped, no request is taken (a producer
// meets no responders and retries elsewhere or later), and Respond returns.
func TestUsageRequestsStop(t *testing.T) {
	t.Parallel()
	e := start(t)
	tenant := e.tenant(t, "100")
	stop := e.respond(t, 2)
	nc := e.producer(t)
	subject := ingest.RecordSubjectPrefix + strconv.FormatInt(tenant, 10)
	if a := request(t, nc, subject, `{"events":[{"id":"before","amount":"1"}]}`); a.status != 200 {
		t.Fatalf("%d %v", a.status, a.body)
	}
	stop()
	_, err := nc.Request(subject, []byte(`{"events":[{"id":"after","amount":"1"}]}`), 2*time.Second)
	if err != nats.ErrNoResponders {
		t.Fatalf("a request after stop: %v, want no responders", err)
	}
	if got := e.used(t, tenant); !got.Equal(decimal.RequireFromString("1")) {
		t.Fatalf("used %s, want 1", got)
	}
}

// TestUsageRequestRepliesGoToInboxesOnly: a request's reply subject is
// the sender's to choose, and creditd's connection may publish anywhere.
// A reply to credits.registry, a partition's log subject or the forward
// subject would put creditd's answer in the log (a message creditd did
// not write, which stops the chain) or in another instance's writes: such
// a request is refused, nothing is published there, and nothing is
// recorded. So is a reply into another tenant's inbox.
func TestUsageRequestRepliesGoToInboxesOnly(t *testing.T) {
	t.Parallel()
	e := start(t)
	tenant := e.tenant(t, "100")
	observed := &counting{statuses: map[int]int{}, refused: map[string]int{}}
	e.respondObserved(t, 2, observed)
	nc := e.producer(t)
	subject := ingest.RecordSubjectPrefix + strconv.FormatInt(tenant, 10)
	stream, err := e.js.Stream(context.Background(), "CREDITS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	before := info.State.LastSeq
	forward, err := nc.SubscribeSync("creditd.forward.>")
	if err != nil {
		t.Fatal(err)
	}
	other, err := nc.SubscribeSync(ingest.ProducerInboxPrefix(tenant+1) + ".>")
	if err != nil {
		t.Fatal(err)
	}
	for i, reply := range []string{"credits.registry", "credits.events.0", "creditd.forward.3", ingest.ProducerInboxPrefix(tenant+1) + ".x", "_INBOX", ""} {
		msg := &nats.Msg{Subject: subject, Reply: reply, Data: []byte(fmt.Sprintf(`{"events":[{"id":"evil-%d","amount":"1"}]}`, i))}
		if err := nc.PublishMsg(msg); err != nil {
			t.Fatal(err)
		}
	}
	nc.Flush()
	// An honest request after them is answered: they were taken first.
	if a := request(t, nc, subject, `{"events":[{"id":"honest","amount":"1"}]}`); a.status != 200 {
		t.Fatalf("%d %v", a.status, a.body)
	}
	time.Sleep(300 * time.Millisecond)
	info, err = stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The honest request's commit is the only message since.
	if info.State.LastSeq != before+1 {
		t.Fatalf("the log grew by %d messages, want 1 (the honest commit)", info.State.LastSeq-before)
	}
	if m, err := forward.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("an answer was published on %s", m.Subject)
	}
	if m, err := other.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("an answer was published in another tenant's inbox, %s", m.Subject)
	}
	if got := e.used(t, tenant); !got.Equal(decimal.RequireFromString("1")) {
		t.Fatalf("used %s, want 1: a request with a forbidden reply subject was recorded", got)
	}
	// Counted for metrics: the probe's 400 (an empty body) and the honest
	// 200 answered,
	// five refused for their reply, one for having none, none dropped.
	observed.mu.Lock()
	defer observed.mu.Unlock()
	if observed.statuses[200] != 1 || observed.statuses[400] < 1 || observed.refused["reply_not_inbox"] != 5 || observed.refused["no_reply"] != 1 {
		t.Errorf("counted %v answered, %v refused", observed.statuses, observed.refused)
	}
	if n, err := observed.dropped(); n != 0 || err != nil {
		t.Errorf("dropped %d, %v", n, err)
	}
}
