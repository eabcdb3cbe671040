// Package client records usage in creditd from a metering producer: events
// are batched (by size and linger), sent over HTTP or NATS, retried with
// their own ids until creditd answers (ids make every retry safe), and
// Record blocks when the bounded queue is full, so a producer slows down
// instead of piling up memory.
//
//	c, _ := client.New(client.Config{HTTPURL: "http://127.0.0.1:8080", APIKey: key})
//	defer c.Close()
//	results, err := c.Record(ctx, client.UsageEvent{ID: "req-1", Amount: decimal.RequireFromString("2.5"), Module: "search"})
package client

import (
	"bytes"
	"context"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"
)

// UsageEvent is one metered consumption, as POST /v1/usage takes it.
type UsageEvent struct {
	ID            string            `json:"id"`
	Timestamp     *time.Time        `json:"timestamp,omitempty"`
	Amount        decimal.Decimal   `json:"amount"`
	CreditType    string            `json:"credit_type,omitempty"`
	Module        string            `json:"module,omitempty"`
	Service       string            `json:"service,omitempty"`
	UserID        string            `json:"user_id,omitempty"`
	WorkflowID    string            `json:"workflow_id,omitempty"`
	WorkflowRunID string            `json:"workflow_run_id,omitempty"`
	Endpoint      string            `json:"endpoint,omitempty"`
	Success       *bool             `json:"success,omitempty"`
	Quantity      *decimal.Decimal  `json:"quantity,omitempty"`
	Custom        map[string]string `json:"custom,omitempty"`
	Description   string            `json:"description,omitempty"`
}

// Result is creditd's answer for one event: accepted, duplicate or
// rejected (with a reason) over HTTP; queued over NATS, where creditd
// records the event moments later.
type Result struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Reason    string `json:"reason,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Position  uint64 `json:"position,omitempty"`
}

// StatusQueued is the status of an event stored on the NATS work stream.
const StatusQueued = "queued"

// Defaults and bounds.
const (
	BatchSizeMax     = 1000
	batchSizeDefault = 500
	lingerDefault    = 5 * time.Millisecond
	// queueBatchesDefault sizes the queue in batches: enough to keep
	// Inflight batches going while the next fill, small enough that many
	// clients in one process stay cheap (a channel's buffer is allocated
	// up front).
	queueBatchesDefault = 4
	inflightDefault     = 4
	retriesDefault      = 10
	retryBackoffDefault = 50 * time.Millisecond
	retryBackoffMax     = 5 * time.Second
	requestTimeout      = 30 * time.Second
)

// Config selects the transport and tunes batching. Set HTTPURL and APIKey
// for HTTP, or NATS and TenantID for NATS.
type Config struct {
	HTTPURL    string
	APIKey     string
	HTTPClient *http.Client

	NATS     *nats.Conn
	TenantID int64
	// NATSRequest sends each batch as a NATS request to
	// credits.record.<TenantID>, answered as POST /v1/usage is, with each
	// event's outcome, once stored. Without it, a batch is queued on the
	// usage work stream (credits.usage.<TenantID>) and recorded moments
	// later: that keeps events while no creditd runs, but stores each
	// twice, and its results only say "queued".
	NATSRequest bool

	// BatchSize bounds the events per request (at most 1000); Linger is
	// how long a partial batch waits for more.
	BatchSize int
	Linger    time.Duration
	// QueueSize bounds the events waiting to be sent; Record blocks when
	// it is full (back-pressure).
	QueueSize int
	// Inflight bounds the batches sent at once.
	Inflight int
	// Retries bounds the attempts at a batch that fails with a retryable
	// error (network, 5xx, 429); RetryBackoff is the first pause.
	Retries      int
	RetryBackoff time.Duration
}

// NATSProducerOptions are the options a producer connects to creditd's NATS
// server with: its tenant's API key as the token, and the reply-inbox
// prefix its tenant may subscribe to, where publish acknowledgements come
// back. A producer may publish only to credits.usage.<tenantID>.
//
//	nc, _ := nats.Connect(url, client.NATSProducerOptions(apiKey, tenantID)...)
//	c, _ := client.New(client.Config{NATS: nc, TenantID: tenantID})
func NATSProducerOptions(apiKey string, tenantID int64) []nats.Option {
	return []nats.Option{nats.Token(apiKey), nats.CustomInboxPrefix("_INBOX.tenant." + strconv.FormatInt(tenantID, 10))}
}

// ErrRejectedRequest: creditd refused the request itself (4xx): retrying
// it unchanged cannot succeed. The error text carries the problem.
var ErrRejectedRequest = errors.New("creditd refused the request")

// ErrClosed: the client is closed.
var ErrClosed = errors.New("client closed")

type item struct {
	id    string
	data  json.RawMessage
	call  *call
	index int
}

// call is one Record: it completes when every event has a result.
type call struct {
	results []Result
	left    int
	err     error
	mu      sync.Mutex
	done    chan struct{}
}

func (c *call) finish(index int, r Result, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil && c.err == nil {
		c.err = err
	}
	c.results[index] = r
	if c.left--; c.left == 0 {
		close(c.done)
	}
}

// Client batches and sends usage events. It is safe for concurrent use.
type Client struct {
	cfg    Config
	msgKey [16]byte // the random part of its work-stream message ids (sendNATS)
	send   func(ctx context.Context, batch []item) ([]Result, error)
	queue  chan item
	slots  chan struct{}
	closed sync.Once
	wg     sync.WaitGroup
	mu     sync.RWMutex
	done   bool
}

// New starts a client.
func New(cfg Config) (*Client, error) {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = batchSizeDefault
	}
	cfg.BatchSize = min(cfg.BatchSize, BatchSizeMax)
	if cfg.Linger <= 0 {
		cfg.Linger = lingerDefault
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = queueBatchesDefault * cfg.BatchSize
	}
	if cfg.Inflight <= 0 {
		cfg.Inflight = inflightDefault
	}
	if cfg.Retries <= 0 {
		cfg.Retries = retriesDefault
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = retryBackoffDefault
	}
	c := &Client{cfg: cfg, queue: make(chan item, cfg.QueueSize), slots: make(chan struct{}, cfg.Inflight)}
	if _, err := cryptorand.Read(c.msgKey[:]); err != nil {
		return nil, err
	}
	switch {
	case cfg.HTTPURL != "" && cfg.NATS == nil:
		if cfg.APIKey == "" {
			return nil, errors.New("client: HTTP needs an APIKey")
		}
		if c.cfg.HTTPClient == nil {
			c.cfg.HTTPClient = &http.Client{Timeout: requestTimeout}
		}
		c.send = c.sendHTTP
	case cfg.NATS != nil && cfg.HTTPURL == "":
		if cfg.TenantID < 1 {
			return nil, errors.New("client: NATS needs the TenantID")
		}
		if cfg.NATSRequest {
			c.send = c.sendNATSRequest
			break
		}
		js, err := jetstream.New(cfg.NATS)
		if err != nil {
			return nil, err
		}
		c.send = func(ctx context.Context, batch []item) ([]Result, error) { return c.sendNATS(ctx, js, batch) }
	default:
		return nil, errors.New("client: set either HTTPURL and APIKey, or NATS and TenantID")
	}
	c.wg.Add(1)
	go c.batch()
	return c, nil
}

// Record sends events and waits until creditd has answered for each (over
// NATS: until each is durably queued). It blocks while the queue is full.
// The error is the first failure; results hold what was answered.
func (c *Client) Record(ctx context.Context, events ...UsageEvent) ([]Result, error) {
	if len(events) == 0 {
		return nil, nil
	}
	cl := &call{results: make([]Result, len(events)), left: len(events), done: make(chan struct{})}
	c.mu.RLock()
	if c.done {
		c.mu.RUnlock()
		return nil, ErrClosed
	}
	for i, ev := range events {
		data, err := appendUsageEvent(nil, ev)
		if err != nil {
			c.mu.RUnlock()
			return nil, fmt.Errorf("client: event %q: %w", ev.ID, err)
		}
		select {
		case c.queue <- item{id: ev.ID, data: data, call: cl, index: i}:
		case <-ctx.Done():
			c.mu.RUnlock()
			// Queued events are still sent; their ids keep a retry safe.
			return nil, ctx.Err()
		}
	}
	c.mu.RUnlock()
	select {
	case <-cl.done:
		return cl.results, cl.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close sends what is queued and stops.
func (c *Client) Close() error {
	c.closed.Do(func() {
		c.mu.Lock()
		c.done = true
		close(c.queue)
		c.mu.Unlock()
		c.wg.Wait()
	})
	return nil
}

// batch gathers queued events into batches of BatchSize, or whatever came
// within Linger of a batch's first event, and hands each to a sender.
func (c *Client) batch() {
	defer c.wg.Done()
	var senders sync.WaitGroup
	defer senders.Wait()
	for {
		first, ok := <-c.queue
		if !ok {
			return
		}
		batch := []item{first}
		timer := time.NewTimer(c.cfg.Linger)
	fill:
		for len(batch) < c.cfg.BatchSize {
			select {
			case it, ok := <-c.queue:
				if !ok {
					break fill
				}
				batch = append(batch, it)
			case <-timer.C:
				break fill
			}
		}
		timer.Stop()
		c.slots <- struct{}{}
		senders.Add(1)
		go func() {
			defer senders.Done()
			defer func() { <-c.slots }()
			c.deliver(batch)
		}()
	}
}

// deliver sends a batch, retrying retryable failures with the same ids.
func (c *Client) deliver(batch []item) {
	backoff := c.cfg.RetryBackoff
	var err error
	for attempt := 1; attempt <= c.cfg.Retries; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		var results []Result
		results, err = c.send(ctx, batch)
		cancel()
		if err == nil {
			for i, it := range batch {
				it.call.finish(it.index, results[i], nil)
			}
			return
		}
		if errors.Is(err, ErrRejectedRequest) {
			if len(batch) > 1 {
				// creditd refuses a whole request for one bad event, and a
				// batch mixes events from many Record calls: send each on its
				// own so only the bad one fails.
				for _, it := range batch {
					c.deliver([]item{it})
				}
				return
			}
			break
		}
		time.Sleep(backoff/2 + rand.N(backoff))
		backoff = min(2*backoff, retryBackoffMax)
	}
	for _, it := range batch {
		it.call.finish(it.index, Result{ID: it.id, Status: "failed"}, err)
	}
}

type retryable struct{ error }

func (c *Client) sendHTTP(ctx context.Context, batch []item) ([]Result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.cfg.HTTPURL, "/")+"/v1/usage", bytes.NewReader(batchBody(batch)))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRejectedRequest, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, retryable{err}
	}
	defer resp.Body.Close()
	data, err := readAnswer(resp)
	if err != nil {
		return nil, retryable{err}
	}
	return answerResults(resp.StatusCode, data, len(batch))
}

// answerResults reads creditd's answer to a batch of n events: its
// status, as POST /v1/usage answers it, and its body.
func answerResults(status int, data []byte, n int) ([]Result, error) {
	switch {
	case status == http.StatusOK:
	case status == http.StatusTooManyRequests || status >= 500:
		return nil, retryable{fmt.Errorf("creditd answered %d: %s", status, data)}
	default:
		return nil, fmt.Errorf("%w: %d %s", ErrRejectedRequest, status, data)
	}
	results, err := decodeResults(data, n)
	if err != nil || len(results) != n {
		return nil, retryable{fmt.Errorf("unexpected answer: %s", data)}
	}
	return results, nil
}

// sendNATSRequest sends the batch as a request to the tenant's record
// subject. No answer (no creditd running, a timeout) is retried: the
// events' ids make a repeat a duplicate.
func (c *Client) sendNATSRequest(ctx context.Context, batch []item) ([]Result, error) {
	msg := &nats.Msg{Subject: "credits.record." + strconv.FormatInt(c.cfg.TenantID, 10), Data: batchBody(batch)}
	reply, err := c.cfg.NATS.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return nil, retryable{err}
	}
	status, err := strconv.Atoi(reply.Header.Get("Creditd-Status"))
	if err != nil {
		return nil, retryable{fmt.Errorf("an answer without its status: %s", reply.Data)}
	}
	return answerResults(status, reply.Data, len(batch))
}

// sendNATS publishes the batch as one message to the tenant's usage
// subject. The message id is a hash of the client's own random key and the
// event ids, so a retry of the batch within the stream's dedupe window is
// dropped there (creditd dedupes by event id anyway). The work stream
// dedupes ids across every tenant's subject: an id made of the event ids
// alone dropped another tenant's batch of the same ids, acknowledged as a
// duplicate and never recorded, and a producer that guessed a batch's ids
// could have sent that id first. The key makes the id unguessable and the
// client's own.
func (c *Client) sendNATS(ctx context.Context, js jetstream.JetStream, batch []item) ([]Result, error) {
	hash := sha256.New()
	hash.Write(c.msgKey[:])
	for _, it := range batch {
		hash.Write([]byte(it.id))
		hash.Write([]byte{0})
	}
	subject := "credits.usage." + strconv.FormatInt(c.cfg.TenantID, 10)
	if _, err := js.Publish(ctx, subject, batchBody(batch), jetstream.WithMsgID(hex.EncodeToString(hash.Sum(nil)))); err != nil {
		return nil, retryable{err}
	}
	results := make([]Result, len(batch))
	for i, it := range batch {
		results[i] = Result{ID: it.id, Status: StatusQueued}
	}
	return results, nil
}

// batchBody is {"events":[...]} of the batch's encoded events, allocated
// once at its size: a bytes.Buffer grew and copied a 20 KiB body of 100
// events eight times.
func batchBody(batch []item) []byte {
	const opening, closing = `{"events":[`, `]}`
	n := len(opening) + len(closing) + max(len(batch)-1, 0)
	for _, it := range batch {
		n += len(it.data)
	}
	body := make([]byte, 0, n)
	body = append(body, opening...)
	for i, it := range batch {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, it.data...)
	}
	return append(body, closing...)
}

// answerBytesMax bounds the answer read from creditd: one result per event
// of a batch is far less.
const answerBytesMax = 16 << 20

// readAnswer reads the response body, into a buffer of its announced size
// when it has one (io.ReadAll starts at 512 bytes and grows).
func readAnswer(resp *http.Response) ([]byte, error) {
	var buf bytes.Buffer
	if n := resp.ContentLength; n > 0 && n < answerBytesMax {
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(io.LimitReader(resp.Body, answerBytesMax))
	return buf.Bytes(), err
}
