package ingest

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Usage requests: a producer that wants each event's outcome sends the body
// of POST /v1/usage as a NATS request to credits.record.<tenant_id>, and
// creditd answers it as POST /v1/usage does, once the events are stored.
// Unlike credits.usage.<tenant_id>, nothing is queued: the events are
// stored once, in their commit, so this path is as fast as HTTP; in
// exchange a producer must retry (by the same event ids) when no creditd
// answers, where the work stream would have kept its events until creditd
// came back.
const (
	// RecordSubjectPrefix starts the subject of a tenant's usage requests.
	RecordSubjectPrefix = "credits.record."
	// RecordQueue is the queue group of every creditd instance's
	// responders: each request goes to one of them.
	RecordQueue = "creditd-record"
	// HeaderStatus carries the answer's HTTP status, as POST /v1/usage
	// would have answered it (200, or a problem's status).
	HeaderStatus = "Creditd-Status"
	// HeaderIdempotencyKey keys a whole batch, as the HTTP header does.
	HeaderIdempotencyKey = "Idempotency-Key"

	// RespondersDefault is how many requests are recorded at once: as
	// many as the HTTP server's handlers would run for the bench's
	// producers, so the engine's group commit gathers as many into one
	// commit.
	RespondersDefault = 256
	// requestsPendingMax and requestPendingBytesMax bound the requests
	// received and not yet taken by a responder. Past either, NATS drops
	// requests (counted as a slow consumer) and their producers retry
	// after their timeout.
	requestsPendingMax      = 4096
	requestsPendingBytesMax = 256 << 20
	// requestWait bounds the recording of one request. It does not end
	// with serve's context, so a request taken before shutdown is still
	// answered.
	requestWait = 30 * time.Second
	// respondCloseWait bounds how long shutdown waits for the requests
	// already received to be answered.
	respondCloseWait = 10 * time.Second
)

// UsageAnswerer records a POST /v1/usage body and says what POST
// /v1/usage would have answered; *httpapi.API satisfies it.
type UsageAnswerer interface {
	AnswerUsage(ctx context.Context, tenantID int64, body []byte, batchKey, instance string) (status int, answer []byte)
}

// RespondOptions configures Respond.
type RespondOptions struct {
	Workers int
	Logger  *slog.Logger
	// Observer counts requests, for metrics; may be nil.
	Observer RequestObserver
}

// RequestObserver counts usage requests; *metrics.Metrics satisfies it.
type RequestObserver interface {
	UsageRequest(status int)
	UsageRequestRefused(reason string)
	// WatchUsageRequestsDropped is given, once, what counts the requests
	// NATS dropped before a responder took them.
	WatchUsageRequestsDropped(dropped func() (int, error))
}

// Reasons a request is refused unanswered.
const (
	refusedNoReply       = "no_reply"
	refusedReplyNotInbox = "reply_not_inbox"
)

// noObserver counts nothing.
type noObserver struct{}

func (noObserver) UsageRequest(int)                              {}
func (noObserver) UsageRequestRefused(string)                    {}
func (noObserver) WatchUsageRequestsDropped(func() (int, error)) {}

// Respond answers usage requests until ctx ends; then it stops taking
// requests (the queue group sends the next ones to another instance, if
// any) and answers the ones already received, for at most
// respondCloseWait. nc must be a connection of its own: a request carries
// up to a whole batch, and a shared connection would queue other traffic
// behind them.
func Respond(ctx context.Context, nc *nats.Conn, ans UsageAnswerer, opts RespondOptions) error {
	if opts.Workers <= 0 {
		opts.Workers = RespondersDefault
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Observer == nil {
		opts.Observer = noObserver{}
	}
	// The subscription's pending queue, bounded, is the only buffer: the
	// callback hands each request to a free responder and waits for one.
	work := make(chan *nats.Msg)
	quit := make(chan struct{})
	sub, err := nc.QueueSubscribe(RecordSubjectPrefix+"*", RecordQueue, func(m *nats.Msg) {
		select {
		case work <- m:
		case <-quit:
		}
	})
	if err != nil {
		return err
	}
	if err := sub.SetPendingLimits(requestsPendingMax, requestsPendingBytesMax); err != nil {
		sub.Unsubscribe()
		return err
	}
	opts.Observer.WatchUsageRequestsDropped(sub.Dropped)
	closed := sub.StatusChanged(nats.SubscriptionClosed)
	r := responder{nc: nc, ans: ans, log: opts.Logger, warned: &logEvery{}, observe: opts.Observer}
	var workers sync.WaitGroup
	for range opts.Workers {
		workers.Go(func() {
			for {
				select {
				case m := <-work:
					r.answer(m)
				case <-quit:
					return
				}
			}
		})
	}
	<-ctx.Done()
	// Drain delivers what was received before it and then closes the
	// subscription; the responders answer those meanwhile.
	if err := sub.Drain(); err != nil {
		opts.Logger.Warn("usage requests: drain", "err", err)
	}
	select {
	case <-closed:
	case <-time.After(respondCloseWait):
		opts.Logger.Warn("usage requests: some received before shutdown were not answered; their producers retry")
	}
	close(quit)
	workers.Wait()
	return nil
}

type responder struct {
	nc      *nats.Conn
	ans     UsageAnswerer
	log     *slog.Logger
	warned  *logEvery
	observe RequestObserver
}

// replyAllowed says whether creditd may answer a tenant's request on
// reply. The sender chooses the reply subject and creditd's connection may
// publish anywhere, so an answer sent to credits.registry, to a
// partition's log subject or to creditd.forward.* would write into the log
// (a message creditd did not write, which stops its chain) or into
// another instance's writes. Producers are kept out of creditd's account
// (eventstore.ProducerAccount, docs/nats-server.conf), so their requests
// come with a reply NATS mapped (_R_.…) back to theirs; what else may be
// answered is a connection in creditd's own account: the tenant's own
// inbox (_INBOX.tenant.<id>.) or a plain inbox (_INBOX.<token>), never
// another tenant's, and never a subject with a wildcard or a space.
func replyAllowed(reply string, tenantID int64) bool {
	const inbox, tenantInbox, imported = "_INBOX.", "_INBOX.tenant.", "_R_."
	if strings.ContainsAny(reply, "*> \t\r\n") {
		return false
	}
	if strings.HasPrefix(reply, imported) {
		// A request through the producers' account's import: NATS maps
		// the reply back to that account, and refuses any client that
		// names such a reply itself.
		return len(reply) > len(imported)
	}
	if !strings.HasPrefix(reply, inbox) || len(reply) == len(inbox) {
		return false
	}
	if rest, ok := strings.CutPrefix(reply, tenantInbox); ok {
		own := strconv.FormatInt(tenantID, 10) + "."
		return tenantID > 0 && strings.HasPrefix(rest, own) && len(rest) > len(own)
	}
	return !strings.HasPrefix(reply, "_INBOX.tenant")
}

// logEvery lets a warning through at most once a second: a hostile
// producer must not be able to flood the log.
type logEvery struct {
	mu   sync.Mutex
	last time.Time
}

func (l *logEvery) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.last) < time.Second {
		return false
	}
	l.last = now
	return true
}

// answer records one request and replies. A subject that names no tenant
// id (only an operator's connection may send one) is answered as an
// unknown tenant.
func (r responder) answer(m *nats.Msg) {
	if m.Reply == "" {
		// Nowhere to answer: a publish, not a request. Recording it would
		// store usage its producer cannot know the outcome of.
		r.log.Debug("usage request without a reply subject dropped", "subject", m.Subject)
		r.observe.UsageRequestRefused(refusedNoReply)
		return
	}
	tenantID, err := strconv.ParseInt(strings.TrimPrefix(m.Subject, RecordSubjectPrefix), 10, 64)
	if err != nil || tenantID < 1 {
		tenantID = 0
	}
	if !replyAllowed(m.Reply, tenantID) {
		// Not recorded either: its producer could never learn the outcome.
		if r.warned.allow(time.Now()) {
			r.log.Warn("usage request refused: its reply subject is not an inbox of its tenant", "subject", m.Subject, "reply", m.Reply)
		}
		r.observe.UsageRequestRefused(refusedReplyNotInbox)
		return
	}
	var batchKey string
	if m.Header != nil {
		batchKey = m.Header.Get(HeaderIdempotencyKey)
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestWait)
	status, answer := r.ans.AnswerUsage(ctx, tenantID, m.Data, batchKey, m.Subject)
	cancel()
	r.observe.UsageRequest(status)
	reply := &nats.Msg{Subject: m.Reply, Header: nats.Header{HeaderStatus: []string{strconv.Itoa(status)}}, Data: answer}
	if err := r.nc.PublishMsg(reply); err != nil {
		// The events are stored (or refused) either way; the producer's
		// retry by the same ids is answered as duplicates.
		r.log.Warn("usage request: reply not sent", "subject", m.Subject, "err", err)
	}
}
