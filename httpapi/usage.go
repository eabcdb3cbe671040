package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
)

// usageEventRequest is one usage event; the NATS ingestion path takes the
// same JSON.
type usageEventRequest struct {
	ID         string    `json:"id"`
	Timestamp  Timestamp `json:"timestamp"`
	Amount     Amount    `json:"amount"`
	CreditType string    `json:"credit_type"`
	dimensionsRequest
	Description string `json:"description"`
}

// dimensionsRequest is what a usage or a reservation was for, as sent.
type dimensionsRequest struct {
	Module        string            `json:"module"`
	Service       string            `json:"service"`
	UserID        string            `json:"user_id"`
	WorkflowID    string            `json:"workflow_id"`
	WorkflowRunID string            `json:"workflow_run_id"`
	Endpoint      string            `json:"endpoint"`
	Success       *bool             `json:"success"`
	Quantity      Amount            `json:"quantity"`
	Custom        map[string]string `json:"custom"`
}

// dimensions checks the quantity and returns the dimensions; success
// defaults to true.
func (d dimensionsRequest) dimensions(check *fieldCheck, prefix string) domain.Dimensions {
	d.Quantity.check(check, prefix+"quantity", false)
	return domain.Dimensions{Module: d.Module, Service: d.Service, UserID: d.UserID, WorkflowID: d.WorkflowID,
		WorkflowRunID: d.WorkflowRunID, Endpoint: d.Endpoint, Success: d.Success == nil || *d.Success,
		Quantity: d.Quantity.Value, Custom: d.Custom}
}

type usageBatchRequest struct {
	Events []usageEventRequest `json:"events" required:"true"`
}

type usageResult struct {
	ID     string `json:"id"`
	Status string `json:"status" enum:"accepted,duplicate,rejected,conflict"`
	Reason string `json:"reason,omitempty"`
	// Duplicate marks a repeat answered with the original outcome.
	Duplicate bool   `json:"duplicate,omitempty"`
	Position  uint64 `json:"position,omitempty"`
}

type usageBatchResponse struct {
	Accepted   int           `json:"accepted"`
	Duplicates int           `json:"duplicates"`
	Rejected   int           `json:"rejected"`
	Conflicts  int           `json:"conflicts"`
	Results    []usageResult `json:"results"`
	Position   uint64        `json:"position"`
}

// usageFutureMax is how far ahead of the server's clock a usage timestamp
// may be. Beyond it the event is a 400, not stored: no report range would
// ever reach it. Within it, a timestamp more than domain.FutureSkewMax ahead
// is recorded as a refused debit (occurred_in_future).
const usageFutureMax = 24 * time.Hour

// statusConflict and rejectIDConflict are the per-event status and reason
// of an id reused with another body; nothing is stored for it.
const (
	statusConflict   = "conflict"
	rejectIDConflict = "id_conflict"
)

// toCommand checks the decoded fields and returns the event as a command.
func (ev usageEventRequest) toCommand(check *fieldCheck, prefix string) commands.UsageEvent {
	ev.Amount.check(check, prefix+"amount", true)
	dims := ev.dimensions(check, prefix)
	ev.Timestamp.check(check, prefix+"timestamp")
	return commands.UsageEvent{CreditType: creditTypeOrDefault(ev.CreditType), RecordUsage: domain.RecordUsage{
		UsageID: ev.ID, Amount: ev.Amount.Value, OccurredAt: ev.Timestamp.Value, Description: ev.Description, Dimensions: dims,
	}}
}

func (a *API) recordUsage(w http.ResponseWriter, r *http.Request, tenantID int64) {
	scratch := usageScratches.Get().(*usageScratch)
	defer scratch.release()
	body, p := readBody(w, r, usageBodyMax, scratch.body[:0])
	scratch.body = body
	if p != nil {
		writeProblem(w, r, a.log, p)
		return
	}
	resp, err := a.recordUsageBody(r.Context(), tenantID, body, r.Header.Get(idempotencyKeyHeader), scratch)
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// AnswerUsage records a body of POST /v1/usage that came another way than
// HTTP (a NATS request on credits.record.<tenant_id>) and returns what
// POST /v1/usage would have answered: its status and its JSON, the batch's
// results or an RFC 7807 problem, from the same checks. batchKey is the
// Idempotency-Key, if any; instance names the request in a problem.
func (a *API) AnswerUsage(ctx context.Context, tenantID int64, body []byte, batchKey, instance string) (status int, answer []byte) {
	scratch := usageScratches.Get().(*usageScratch)
	defer scratch.release()
	var resp usageBatchResponse
	var err error
	if len(body) > usageBodyMax {
		err = newProblem(http.StatusRequestEntityTooLarge, "request-too-large", fmt.Sprintf("the body exceeds %d bytes", usageBodyMax))
	} else {
		resp, err = a.recordUsageBody(ctx, tenantID, body, batchKey, scratch)
	}
	var out any = resp
	status = http.StatusOK
	if err != nil {
		p := problemFor(err)
		if p == nil {
			a.log.Error("usage request failed", "instance", instance, "err", err)
			p = newProblem(http.StatusInternalServerError, "internal", "an internal error occurred")
		}
		p.cut()
		p.Instance = cutText(instance)
		status, out = p.Status, p
	}
	answer, err = json.Marshal(out)
	if err != nil {
		panic(err) // a response of strings and numbers always encodes
	}
	return status, answer
}

// recordUsageBody checks and records the body of POST /v1/usage; the error
// is the request's problem, or the write side's error.
func (a *API) recordUsageBody(ctx context.Context, tenantID int64, body []byte, batchKey string, scratch *usageScratch) (usageBatchResponse, error) {
	req := usageBatchRequest{Events: scratch.events[:0]}
	p := decodeUsageBody(body, &req)
	scratch.events = req.Events
	if p != nil {
		return usageBatchResponse{}, p
	}
	if len(req.Events) == 0 || len(req.Events) > commands.UsageBatchMax {
		p := newProblem(http.StatusBadRequest, "invalid-request", fmt.Sprintf("a batch holds 1 to %d events", commands.UsageBatchMax))
		p.Errors = []ProblemError{{Location: "body.events", Message: fmt.Sprintf("must hold 1 to %d events", commands.UsageBatchMax), Value: len(req.Events)}}
		return usageBatchResponse{}, p
	}
	// Every event is checked before any is stored: a batch with a malformed
	// event is refused whole, with every problem listed.
	var check fieldCheck
	latest := a.cfg.Clock().Add(usageFutureMax)
	events := make([]commands.UsageEvent, len(req.Events))
	for i, ev := range req.Events {
		// Each event is checked with bare locations, prefixed only when it
		// has a problem: building every location's text cost more than
		// the checks on a batch that has none.
		var own fieldCheck
		events[i] = ev.toCommand(&own, "")
		if ev.Timestamp.Set && ev.Timestamp.Value.After(latest) {
			own.add("timestamp", "must be at most 24 h after the server's clock", ev.Timestamp.Value.Format(time.RFC3339Nano))
		}
		if err := errors.Join(domain.ValidateCreditType(events[i].CreditType), events[i].Validate()); err != nil {
			for _, fe := range domain.FieldErrors(err) {
				own.add(fe.Location, fe.Message, fe.Value)
			}
		}
		if len(own.errs) > 0 {
			check.addPrefixed("body.events["+strconv.Itoa(i)+"].", own)
		}
	}
	// The header keys the whole batch: there is no body id to compare it
	// with, so it is checked like an id on its own.
	if batchKey != "" {
		for _, fe := range domain.FieldErrors(domain.UsageBatch{Key: batchKey}.Validate()) {
			check.add("header."+idempotencyKeyHeader, fe.Message, cutText(batchKey))
		}
	}
	if err := check.err(); err != nil {
		return usageBatchResponse{}, validationProblem("", err)
	}
	results, err := a.writer.RecordUsageBatch(ctx, tenantID, batchKey, events)
	if err != nil {
		return usageBatchResponse{}, err
	}
	return summarizeUsage(events, results), nil
}

func summarizeUsage(events []commands.UsageEvent, results []commands.Result) usageBatchResponse {
	resp := usageBatchResponse{Results: make([]usageResult, len(results))}
	for i, res := range results {
		out := usageResult{ID: events[i].UsageID, Status: string(res.Status), Reason: res.Reason, Duplicate: res.Duplicate, Position: res.Position}
		switch {
		case errors.Is(res.Err, domain.ErrIdempotencyConflict):
			// The batch form of the 409 every other write answers.
			out.Status, out.Reason = statusConflict, rejectIDConflict
			resp.Conflicts++
		case res.Err != nil:
			out.Status, out.Reason = string(commands.StatusRejected), res.Err.Error()
			resp.Rejected++
		case res.Status == commands.StatusAccepted:
			resp.Accepted++
		case res.Status == commands.StatusDuplicate:
			resp.Duplicates++
		case res.Duplicate:
			// A repeat of a rejected event: its original outcome, counted as
			// a duplicate so totals add up across retries.
			resp.Duplicates++
		default:
			resp.Rejected++
		}
		resp.Position = max(resp.Position, res.Position)
		resp.Results[i] = out
	}
	return resp
}

// decodeUsageBody decodes a POST /v1/usage body, or returns the problem:
// by the hand-written decoder (usage_decode.go), or by decodeBody where it
// gives up, which also answers every malformed body. The events are
// appended to req.Events, whose room the caller may provide.
func decodeUsageBody(body []byte, req *usageBatchRequest) *Problem {
	if decodeUsageBatchFast(body, req) {
		return nil
	}
	*req = usageBatchRequest{} // what the fast path filled in before giving up
	return decodeBody(body, req)
}

// decodeUsageEvent is decodeUsageBody for one event.
func decodeUsageEvent(d *usageDecoder, data []byte, req *usageEventRequest) *Problem {
	if d.oneEvent(data, req) {
		return nil
	}
	*req = usageEventRequest{}
	return decodeBody(data, req)
}

// UsageEventBytesMax bounds one usage event's JSON on the NATS path.
const UsageEventBytesMax = 64 << 10

// DecodeUsageEvent reads one usage event in the JSON of an element of
// POST /v1/usage, as producers publish it on NATS. It refuses unknown
// fields and reports every malformed field (*domain.FieldError values with
// their locations) at once.
func DecodeUsageEvent(data []byte) (commands.UsageEvent, error) {
	var d UsageEventDecoder
	return d.Decode(data)
}

// UsageEventDecoder decodes usage events one by one as DecodeUsageEvent
// does, keeping the strings and amounts that recur from event to event (a
// module, an endpoint, a credit type) rather than allocating them for each:
// the events of one NATS message share it. Not for concurrent use.
type UsageEventDecoder struct {
	d usageDecoder
}

// Decode is DecodeUsageEvent.
func (u *UsageEventDecoder) Decode(data []byte) (commands.UsageEvent, error) {
	if len(data) > UsageEventBytesMax {
		return commands.UsageEvent{}, fmt.Errorf("%w: event of %d bytes exceeds %d", domain.ErrInvalidCommand, len(data), UsageEventBytesMax)
	}
	var req usageEventRequest
	if p := decodeUsageEvent(&u.d, data, &req); p != nil {
		// The same refusals as POST /v1/usage, located relative to the event.
		reason := p.Detail
		for _, pe := range p.Errors {
			reason = strings.TrimPrefix(strings.TrimPrefix(pe.Location, "body"), ".") + " " + pe.Message
		}
		return commands.UsageEvent{}, fmt.Errorf("%w: %s", domain.ErrInvalidCommand, cutText(reason))
	}
	var check fieldCheck
	ev := req.toCommand(&check, "")
	if err := errors.Join(check.err(), domain.ValidateCreditType(ev.CreditType), ev.Validate()); err != nil {
		return commands.UsageEvent{}, err
	}
	return ev, nil
}
