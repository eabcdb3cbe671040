package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/creditd/creditd/queries"
)

// queryProblem turns query parameter errors into a 400 naming each one.
func queryProblem(err error) *Problem {
	params := queries.ParamErrors(err)
	if len(params) == 0 {
		return nil
	}
	p := newProblem(http.StatusBadRequest, "invalid-request", "the request has invalid query parameters")
	for _, pe := range params {
		pe := pe
		var value any
		if pe.Value != "" {
			value = pe.Value
		}
		p.Errors = append(p.Errors, ProblemError{Location: "query." + pe.Param, Message: pe.Message, Value: value})
	}
	return p
}

// writeReadError answers a failed read: a 400 for bad parameters, else
// the write-side mapping (which ends in a sanitized 500).
func (a *API) writeReadError(w http.ResponseWriter, r *http.Request, err error) {
	if p := queryProblem(err); p != nil {
		writeProblem(w, r, a.log, p)
		return
	}
	writeProblem(w, r, a.log, err)
}

func creditTypeParam(r *http.Request, errs *[]error) string {
	ct := r.URL.Query().Get("credit_type")
	if ct == "" {
		return ""
	}
	var check fieldCheck
	check.creditType("credit_type", ct, false)
	if check.err() != nil {
		*errs = append(*errs, &queries.ParamError{Param: "credit_type", Message: "must be 1 to 64 letters, digits or _-.:", Value: ct})
	}
	return ct
}

func listParam(r *http.Request, name string) []string {
	var out []string
	for _, v := range r.URL.Query()[name] {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

func joinErrs(errs []error) error { return errors.Join(errs...) }

func itoa(i int) string { return strconv.Itoa(i) }
