package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// forwardVersion is the version of the forwarded write's encoding. An
// owner refuses a version it does not know with ErrUnavailable, so during
// a rolling upgrade the caller retries until an owner of its own version
// serves the partition.
const forwardVersion = 1

// forwardRequest is a write forwarded to the partition's owner. Its
// deadline travels as the time left, not a wall-clock instant, so the
// instances' clocks need not agree.
type forwardRequest struct {
	V         int
	Call      call
	TimeoutMs int64
}

// forwardReply is the owner's answer: the write's results and error as
// the local call would have returned them.
type forwardReply struct {
	V        int
	NotOwner bool           `json:",omitempty"`
	Results  []remoteResult `json:",omitempty"`
	Err      *remoteError   `json:",omitempty"`
}

type remoteResult struct {
	Status    Status
	Reason    string `json:",omitempty"`
	Duplicate bool   `json:",omitempty"`
	Position  uint64
	// Events are encoded as a commit's events (eventstore's canonical
	// encoding, which round-trips every event type exactly).
	Events json.RawMessage `json:",omitempty"`
	Err    *remoteError    `json:",omitempty"`
}

// forward sends a call to the partition's owner and returns what the
// owner's engine returned; errNotOwner when no instance serves the
// partition now.
func (c *cluster) forward(ctx context.Context, partition int, cl call) ([]Result, error) {
	// One attempt waits at most a TTL: an owner that died with the write
	// in hand never answers, and its partition has a new owner within
	// about a TTL, to whom the write then goes. Sending it again is safe:
	// every write is idempotent, so an owner that was only slow answers
	// the second as a duplicate of the first.
	attempt, cancel := context.WithTimeout(ctx, c.ttl)
	defer cancel()
	deadline, _ := attempt.Deadline()
	data, err := json.Marshal(forwardRequest{V: forwardVersion, Call: cl, TimeoutMs: time.Until(deadline).Milliseconds()})
	if err != nil {
		return nil, err
	}
	if limit := c.co.MaxForwardBytes(); len(data) > limit {
		// NATS would refuse it at once, at every try: a request this
		// large is refused as one too large for a commit would be.
		return nil, fmt.Errorf("%w: %d bytes to forward to the owner of partition %d, NATS takes %d", ErrCommitTooLarge, len(data), partition, limit)
	}
	start := time.Now()
	raw, err := c.co.Forward(attempt, partition, data)
	c.obs.Forwarded(time.Since(start), err)
	switch {
	case errors.Is(err, eventstore.ErrNoOwner):
		return nil, errNotOwner
	case err != nil && ctx.Err() == nil && attempt.Err() != nil:
		return nil, errNotOwner // no answer within a TTL: find the owner again
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var reply forwardReply
	if err := json.Unmarshal(raw, &reply); err != nil {
		return nil, fmt.Errorf("%w: the owner of partition %d answered %d bytes that do not decode: %v", ErrUnavailable, partition, len(raw), err)
	}
	if reply.NotOwner {
		return nil, errNotOwner
	}
	results := make([]Result, len(reply.Results))
	for i, r := range reply.Results {
		res := Result{Status: r.Status, Reason: r.Reason, Duplicate: r.Duplicate, Position: r.Position, Err: r.Err.decode()}
		if len(r.Events) > 0 {
			commit, err := eventstore.DecodeCommit(r.Events)
			if err != nil {
				return nil, fmt.Errorf("%w: the owner of partition %d answered events that do not decode: %v", ErrUnavailable, partition, err)
			}
			for _, env := range commit.Events {
				res.Events = append(res.Events, env.Event)
			}
		}
		results[i] = res
	}
	return results, reply.Err.decode()
}

// handle runs a forwarded write on this instance, which owns the
// partition, and encodes the answer.
func (c *cluster) handle(request []byte) []byte {
	var req forwardRequest
	if err := json.Unmarshal(request, &req); err != nil || req.V != forwardVersion {
		return encodeReply(forwardReply{V: forwardVersion, Err: encodeError(fmt.Errorf("%w: a forwarded write this instance cannot read (version %d)", ErrUnavailable, req.V))})
	}
	if !c.owns(c.e.store.PartitionOf(req.Call.Tenant)) {
		return encodeReply(forwardReply{V: forwardVersion, NotOwner: true})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(max(req.TimeoutMs, 1))*time.Millisecond)
	defer cancel()
	if r := c.e.registry; !r.known(req.Call.Tenant) {
		// The sender knows the tenant, so it was created, maybe a moment
		// ago through another instance: read the registry again now
		// rather than answer from a read up to registryRefreshMin old.
		// Only instances reach this subject, so no flood of made-up ids
		// comes this way; reads are shared and spaced as for API keys.
		if err := r.refreshAfter(r.reads.now()); err != nil {
			return encodeReply(forwardReply{V: forwardVersion, Err: encodeError(fmt.Errorf("%w: %v", ErrUnavailable, err))})
		}
	}
	results, err := c.e.exec(ctx, req.Call)
	if errors.Is(err, errNotOwner) {
		return encodeReply(forwardReply{V: forwardVersion, NotOwner: true})
	}
	reply := forwardReply{V: forwardVersion, Err: encodeError(err), Results: make([]remoteResult, len(results))}
	for i, r := range results {
		rr := remoteResult{Status: r.Status, Reason: r.Reason, Duplicate: r.Duplicate, Position: r.Position, Err: encodeError(r.Err)}
		if len(r.Events) > 0 {
			envs := make([]domain.Envelope, len(r.Events))
			for j, ev := range r.Events {
				envs[j] = domain.Envelope{TenantID: req.Call.Tenant, Event: ev}
			}
			events, err := eventstore.EncodeCommit(eventstore.Commit{Version: eventstore.CommitVersion, Events: envs})
			if err != nil {
				return encodeReply(forwardReply{V: forwardVersion, Err: encodeError(fmt.Errorf("encode the answer: %w", err))})
			}
			rr.Events = events
		}
		reply.Results[i] = rr
	}
	data := encodeReply(reply)
	if len(data) > c.co.MaxForwardBytes() {
		// The write landed; an answer NATS would refuse would leave the
		// sender to time out and send it again. The events are what makes
		// it large (a batch of large events): the outcomes go without them.
		for i := range reply.Results {
			reply.Results[i].Events = nil
		}
		data = encodeReply(reply)
	}
	return data
}

func encodeReply(r forwardReply) []byte {
	data, err := json.Marshal(r)
	if err != nil {
		data, _ = json.Marshal(forwardReply{V: forwardVersion, Err: encodeError(fmt.Errorf("encode the answer: %w", err))})
	}
	return data
}

// remoteError carries an error across instances: its text, the sentinel
// it wraps (by name) and its field errors, so the caller's HTTP edge maps
// it to the same problem as a local write's.
type remoteError struct {
	Kind   string
	Text   string
	Fields []remoteField `json:",omitempty"`
}

type remoteField struct {
	Location string
	Message  string
	Value    json.RawMessage `json:",omitempty"`
}

// errorKinds names the sentinels a write can wrap; the first that matches
// names the error, so more specific ones come first.
var errorKinds = []struct {
	name string
	err  error
}{
	{"insufficient_credits", domain.ErrInsufficientCredits},
	{"reservation_not_found", domain.ErrReservationNotFound},
	{"reservation_closed", domain.ErrReservationClosed},
	{"capture_exceeds_hold", domain.ErrCaptureExceedsHold},
	{"idempotency_conflict", domain.ErrIdempotencyConflict},
	{"usage_not_found", domain.ErrUsageNotFound},
	{"grant_expired", domain.ErrGrantExpired},
	{"grant_not_found", domain.ErrGrantNotFound},
	{"subscription_not_found", domain.ErrSubscriptionNotFound},
	{"subscription_canceled", domain.ErrSubscriptionCanceled},
	{"amount_precision", domain.ErrAmountPrecision},
	{"amount_magnitude", domain.ErrAmountMagnitude},
	{"amount_not_positive", domain.ErrAmountNotPositive},
	{"amount_negative", domain.ErrAmountNegative},
	{"invalid_command", domain.ErrInvalidCommand},
	{"tenant_not_found", ErrTenantNotFound},
	{"api_key_not_found", ErrAPIKeyNotFound},
	{"commit_too_large", ErrCommitTooLarge},
	{"contention", ErrContention},
	{"closed", ErrClosed},
	{"broken_chain", ErrBrokenChain},
	{"unavailable", ErrUnavailable},
	{"canceled", context.Canceled},
	{"deadline_exceeded", context.DeadlineExceeded},
}

// kindForeign names a foreign message in the owner's log.
const kindForeign = "foreign_message"

func encodeError(err error) *remoteError {
	if err == nil {
		return nil
	}
	re := &remoteError{Text: err.Error()}
	if eventstore.IsForeign(err) {
		re.Kind = kindForeign
	} else {
		for _, k := range errorKinds {
			if errors.Is(err, k.err) {
				re.Kind = k.name
				break
			}
		}
	}
	for _, fe := range domain.FieldErrors(err) {
		value, _ := json.Marshal(fe.Value)
		re.Fields = append(re.Fields, remoteField{Location: fe.Location, Message: fe.Message, Value: value})
	}
	return re
}

func (re *remoteError) decode() error {
	if re == nil {
		return nil
	}
	err := &forwardedError{text: re.Text}
	for _, k := range errorKinds {
		if k.name == re.Kind {
			err.wraps = append(err.wraps, k.err)
		}
	}
	if re.Kind == kindForeign {
		// The owner's writer stopped at a message creditd did not write:
		// the caller answers as the owner would (503, see /readyz there).
		err.wraps = append(err.wraps, ErrUnavailable)
	}
	for _, f := range re.Fields {
		var value any
		if len(f.Value) > 0 && string(f.Value) != "null" {
			value = f.Value
		}
		err.wraps = append(err.wraps, &domain.FieldError{Location: f.Location, Message: f.Message, Value: value})
	}
	if re.Kind == kindForeign {
		return &forwardedForeign{err}
	}
	return err
}

// forwardedError is an error the owner returned: its text, and what it
// wrapped, for errors.Is and errors.As (domain.FieldErrors).
type forwardedError struct {
	text  string
	wraps []error
}

func (e *forwardedError) Error() string   { return e.text }
func (e *forwardedError) Unwrap() []error { return e.wraps }

// forwardedForeign is a foreign message met by the owner's writer.
type forwardedForeign struct{ *forwardedError }

// ForeignMessage marks it as *eventstore.ForeignMessageError marks a
// local one, for the HTTP edge.
func (*forwardedForeign) ForeignMessage() {}
