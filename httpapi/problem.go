package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/httpapi/compat"
)

// Problem is an RFC 7807 problem document, in the shape of the seed APIs'
// ErrorModel, plus the request id for support.
type Problem struct {
	Type      string         `json:"type"`
	Title     string         `json:"title"`
	Status    int            `json:"status"`
	Detail    string         `json:"detail,omitempty"`
	Instance  string         `json:"instance,omitempty"`
	Errors    []ProblemError `json:"errors,omitempty"`
	RequestID string         `json:"request_id,omitempty"`
}

// ProblemError names one offending location, such as body.events[3].amount.
type ProblemError struct {
	Location string `json:"location"`
	Message  string `json:"message"`
	Value    any    `json:"value,omitempty"`
}

// problemTypePrefix makes problem types URNs: stable names, not links.
const problemTypePrefix = "urn:creditd:problem:"

func newProblem(status int, kind, detail string) *Problem {
	typ := "about:blank"
	if kind != "" {
		typ = problemTypePrefix + kind
	}
	return &Problem{Type: typ, Title: http.StatusText(status), Status: status, Detail: detail}
}

func (p *Problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail) }

// validationProblem is a 400 listing every field error of err, each located
// under prefix (such as "body." or "body.events[3].").
func validationProblem(prefix string, err error) *Problem {
	p := newProblem(http.StatusBadRequest, "invalid-request", "the request has invalid fields")
	p.Errors = fieldErrors(prefix, err)
	if len(p.Errors) == 0 {
		p.Detail = err.Error()
	}
	return p
}

func fieldErrors(prefix string, err error) []ProblemError {
	var out []ProblemError
	for _, fe := range domain.FieldErrors(err) {
		location := fe.Location
		// Locations outside the body (header., path., query.) are already
		// absolute.
		if !strings.HasPrefix(location, "header.") && !strings.HasPrefix(location, "path.") && !strings.HasPrefix(location, "query.") {
			location = prefix + location
		}
		out = append(out, ProblemError{Location: location, Message: fe.Message, Value: fe.Value})
	}
	return out
}

// problemFor maps an error of the write side to its problem: the one place
// where domain and command errors meet HTTP statuses.
func problemFor(err error) *Problem {
	var p *Problem
	var fe *domain.FieldError
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &fe):
		return validationProblem("body.", err)
	case errors.Is(err, domain.ErrInsufficientCredits):
		return newProblem(http.StatusPaymentRequired, "insufficient-credits", err.Error())
	case errors.Is(err, domain.ErrReservationNotFound):
		return newProblem(http.StatusNotFound, "reservation-not-found", err.Error())
	case errors.Is(err, domain.ErrReservationClosed):
		return newProblem(http.StatusConflict, "reservation-closed", err.Error())
	case errors.Is(err, domain.ErrCaptureExceedsHold):
		return newProblem(http.StatusConflict, "capture-exceeds-hold", err.Error())
	case errors.Is(err, domain.ErrIdempotencyConflict):
		return newProblem(http.StatusConflict, "idempotency-conflict", "this id was already used with a different request body")
	case errors.Is(err, domain.ErrUsageNotFound):
		return newProblem(http.StatusNotFound, "usage-not-found", err.Error())
	case errors.Is(err, domain.ErrGrantExpired):
		return newProblem(http.StatusConflict, "grant-expired", err.Error())
	case errors.Is(err, domain.ErrGrantNotFound):
		return newProblem(http.StatusNotFound, "grant-not-found", err.Error())
	case errors.Is(err, domain.ErrSubscriptionNotFound):
		return newProblem(http.StatusNotFound, "subscription-not-found", err.Error())
	case errors.Is(err, domain.ErrSubscriptionCanceled):
		return newProblem(http.StatusConflict, "subscription-canceled", err.Error())
	case errors.Is(err, domain.ErrInvalidCommand):
		return newProblem(http.StatusBadRequest, "invalid-request", err.Error())
	case errors.Is(err, commands.ErrTenantNotFound):
		return newProblem(http.StatusNotFound, "tenant-not-found", err.Error())
	case errors.Is(err, commands.ErrAPIKeyNotFound):
		return newProblem(http.StatusNotFound, "api-key-not-found", err.Error())
	case errors.Is(err, commands.ErrCommitTooLarge):
		return newProblem(http.StatusRequestEntityTooLarge, "request-too-large", "the request's events do not fit in one commit; send fewer or smaller events")
	case errors.Is(err, ErrReadModelsCatchingUp):
		return newProblem(http.StatusServiceUnavailable, "read-models-catching-up", err.Error()+"; writes are accepted, reads resume once it is done (see /readyz)")
	case errors.As(err, new(foreignMessage)):
		// Not the client's doing and not retryable until an operator acts;
		// /readyz names the message.
		return newProblem(http.StatusServiceUnavailable, "unavailable", "the log holds a message creditd did not write; writes for this tenant resume once an operator sets it aside (see /readyz)")
	case errors.Is(err, commands.ErrUnavailable), errors.Is(err, commands.ErrContention), errors.Is(err, commands.ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// A write whose wait ended may still land: retrying with the same
		// ids is the safe answer either way.
		return newProblem(http.StatusServiceUnavailable, "unavailable", "the event store is unavailable or busy; retry with the same ids")
	}
	return nil
}

// writeProblem answers with a problem. Unknown errors become a 500 whose
// body says nothing internal; the error goes to the log with the request id.
func writeProblem(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	p := problemFor(err)
	if p == nil {
		log.Error("request failed", "request_id", requestIDOf(r), "method", r.Method, "path", r.URL.Path, "err", err)
		p = newProblem(http.StatusInternalServerError, "internal", "an internal error occurred; quote the request id when reporting it")
	}
	p.cut()
	p.Instance = cutText(r.URL.Path)
	p.RequestID = requestIDOf(r)
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="creditd"`)
	}
	if p.Status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		// Kept when a profile answers it as a 500: the wait still helps.
		// A caller that knows the wait better has set its own.
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	profile, _ := r.Context().Value(profileErrorsKey).(compat.Errors)
	if status := profile.Status(p.Status); status != p.Status {
		p.Status, p.Title = status, http.StatusText(status)
	}
	var body any = p
	contentType := "application/problem+json"
	switch profile.Shape {
	case compat.ErrorShapeErrorModel:
		body = p.errorModel()
	case compat.ErrorShapeErrorObject:
		body, contentType = p.errorObject(), "application/json"
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(body)
}

// errorModel is a problem with exactly the members of an ErrorModel that
// allows no others (compat.ErrorShapeErrorModel): no request_id.
type errorModel struct {
	Type     string         `json:"type"`
	Title    string         `json:"title"`
	Status   int            `json:"status"`
	Detail   string         `json:"detail,omitempty"`
	Instance string         `json:"instance,omitempty"`
	Errors   []ProblemError `json:"errors,omitempty"`
}

func (p *Problem) errorModel() errorModel {
	return errorModel{Type: p.Type, Title: p.Title, Status: p.Status, Detail: p.Detail, Instance: p.Instance, Errors: p.Errors}
}

// errorObject is an error as compat.ErrorShapeErrorObject writes it.
type errorObject struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// errorObject carries the problem's status and, as the shape has no
// other member, its detail and located errors in one message.
func (p *Problem) errorObject() errorObject {
	var out errorObject
	out.Error.Code = p.Status
	parts := []string{cmp.Or(p.Detail, p.Title)}
	for _, e := range p.Errors {
		parts = append(parts, e.Location+": "+e.Message)
	}
	out.Error.Message = strings.Join(parts, "; ")
	return out
}

// problemTextMax bounds each text a problem echoes (detail, a location, a
// value), so a megabyte of bad input answers with a small problem.
const problemTextMax = 256

// cut shortens every echoed text to problemTextMax bytes.
func (p *Problem) cut() {
	p.Detail = cutText(p.Detail)
	for i := range p.Errors {
		p.Errors[i].Location = cutText(p.Errors[i].Location)
		if s, ok := p.Errors[i].Value.(string); ok {
			p.Errors[i].Value = cutText(s)
		}
	}
}

// cutText keeps the first problemTextMax bytes of s, and marks the cut
// with an ellipsis. A cut that would split a rune moves back to its start,
// at most utf8.UTFMax-1 bytes: further back there is no rune to split,
// only invalid bytes (which JSON writes as U+FFFD), and walking back over
// them would eat the text down to its last valid byte ("query." of a
// long invalid parameter name, to "query").
func cutText(s string) string {
	if len(s) <= problemTextMax {
		return s
	}
	end := problemTextMax
	for back := 1; back < utf8.UTFMax; back++ {
		start := problemTextMax - back
		if utf8.RuneStart(s[start]) {
			if r, size := utf8.DecodeRuneInString(s[start:]); (r != utf8.RuneError || size > 1) && start+size > problemTextMax {
				end = start
			}
			break
		}
	}
	return s[:end] + "…"
}

// retryAfterSeconds is what a 503 tells clients to wait.
const retryAfterSeconds = 1
