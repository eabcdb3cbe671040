package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/creditd/creditd/queries"
)

// Each reader below appends a *queries.ParamError to errs for a bad value,
// so that a handler reports every bad parameter of a request at once.

// IntParam reads an optional integer query parameter; 0 when absent.
func IntParam(r *http.Request, name string, errs *[]error) int {
	text := r.URL.Query().Get(name)
	if text == "" {
		return 0
	}
	v, err := strconv.Atoi(text)
	if err != nil {
		*errs = append(*errs, &queries.ParamError{Param: name, Message: "must be an integer", Value: text})
	}
	return v
}

// InstantParam reads an optional RFC 3339 time or YYYY-MM-DD date (the
// day's start, or its end when end is set); nil when absent.
func InstantParam(r *http.Request, name string, end bool, errs *[]error) *time.Time {
	text := r.URL.Query().Get(name)
	if text == "" {
		return nil
	}
	t, err := queries.ParseInstant(text, end)
	if err != nil {
		*errs = append(*errs, &queries.ParamError{Param: name, Message: err.Error(), Value: text})
		return nil
	}
	return &t
}

// RequiredInstant reads a required RFC 3339 time or YYYY-MM-DD date given
// as text for the parameter param.
func RequiredInstant(text, param string, end bool, errs *[]error) time.Time {
	if text == "" {
		*errs = append(*errs, &queries.ParamError{Param: param, Message: "is required"})
		return time.Time{}
	}
	t, err := queries.ParseInstant(text, end)
	if err != nil {
		*errs = append(*errs, &queries.ParamError{Param: param, Message: err.Error(), Value: text})
	}
	return t
}

// CheckSpan refuses from after to and spans over queries.RangeDaysMax days,
// naming param (the range's start) in the error.
func CheckSpan(from, to time.Time, param string) error {
	if from.After(to) {
		return &queries.ParamError{Param: param, Message: "must not be after the end of the range", Value: from.Format(time.RFC3339)}
	}
	if days := to.UTC().Unix()/86400 - from.UTC().Unix()/86400 + 1; days > queries.RangeDaysMax {
		return &queries.ParamError{Param: param, Message: "the range spans more than 1830 days", Value: from.Format(time.RFC3339)}
	}
	return nil
}
