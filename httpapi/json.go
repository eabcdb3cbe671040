package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/httpapi/internal/web"
)

// Amount is a decimal in a request: a JSON number or a decimal string.
// Malformed text is kept and reported by Validate with its location,
// instead of failing the whole decode without one.
type Amount struct {
	Value   decimal.Decimal
	Set     bool
	bad     bool
	invalid string
}

// UnmarshalJSON accepts 12.5 or "12.5".
func (a *Amount) UnmarshalJSON(b []byte) error {
	text := string(b)
	if text == "null" {
		*a = Amount{}
		return nil
	}
	if len(text) >= 2 && text[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			a.invalid, a.bad, a.Set = text, true, true
			return nil
		}
		text = strings.TrimSpace(s)
	}
	d, err := decimal.NewFromString(text)
	if err != nil || text == "" {
		a.invalid, a.bad, a.Set = text, true, true
		return nil
	}
	*a = Amount{Value: d, Set: true}
	return nil
}

// check reports a malformed amount, and a missing one when required.
func (a Amount) check(v *fieldCheck, location string, required bool) {
	switch {
	case a.bad:
		v.add(location, "must be a decimal number or a decimal string", a.invalid)
	case required && !a.Set:
		v.add(location, "is required", nil)
	}
}

// Timestamp is an RFC 3339 time in a request; malformed text is reported
// by check with its location.
type Timestamp struct {
	Value   time.Time
	Set     bool
	invalid string
}

// UnmarshalJSON accepts an RFC 3339 string or null.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = Timestamp{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		t.invalid, t.Set = string(b), true
		return nil
	}
	parsed, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.invalid, t.Set = s, true
		return nil
	}
	*t = Timestamp{Value: parsed.UTC(), Set: true}
	return nil
}

// timeFloor is the earliest time a request may carry. The domain reads the
// zero time as "unset" (now), so 0001-01-01 would silently become now, and
// the read models' ranges start at the Unix epoch.
var timeFloor = time.Unix(0, 0).UTC()

// timeCeiling is the latest: RFC 3339 has four-digit years, and a time
// sent with an offset (9999-12-31T23:30:00-01:00) can fall in year 10000
// in UTC, which the log's encoding cannot write: the commit it joined
// failed, with every other write in it.
var timeCeiling = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)

func (t Timestamp) check(v *fieldCheck, location string) {
	switch {
	case t.invalid != "":
		v.add(location, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z", t.invalid)
	case t.Set && t.Value.Before(timeFloor):
		v.add(location, "must be 1970-01-01T00:00:00Z or later (omit it or send null to leave it unset)", t.Value.Format(time.RFC3339Nano))
	case t.Set && t.Value.After(timeCeiling):
		v.add(location, "must be 9999-12-31T23:59:59Z (UTC) or earlier", t.Value.UTC().Format(time.RFC3339Nano))
	}
}

// Ptr returns the time or nil when unset.
func (t Timestamp) Ptr() *time.Time {
	if !t.Set || t.invalid != "" {
		return nil
	}
	v := t.Value
	return &v
}

// Number writes a decimal as a JSON number whose text is the exact decimal;
// it is web.Number, shared with the compat profiles.
type Number = web.Number

// fieldCheck gathers decode-level field problems (before domain validation).
type fieldCheck struct{ errs []error }

func (v *fieldCheck) add(location, message string, value any) {
	v.errs = append(v.errs, &domain.FieldError{Location: location, Message: message, Value: value})
}

func (v *fieldCheck) err() error { return errors.Join(v.errs...) }

// addPrefixed adds other's problems, each location prefixed (evaluated
// only when there is one).
func (v *fieldCheck) addPrefixed(prefix string, other fieldCheck) {
	for _, err := range other.errs {
		for _, fe := range domain.FieldErrors(err) {
			v.add(prefix+fe.Location, fe.Message, fe.Value)
		}
	}
}

// creditType checks a credit type given at location (body.credit_type,
// path.credit_type, query.credit_type); empty is allowed when optional.
func (v *fieldCheck) creditType(location, value string, optional bool) {
	if optional && value == "" {
		return
	}
	if err := domain.ValidateCreditType(value); err != nil {
		for _, fe := range domain.FieldErrors(err) {
			v.add(location, fe.Message, fe.Value)
		}
	}
}

// queryCreditType reads the optional credit_type query parameter of a
// bodyless write; ok is false when a problem was written.
func (a *API) queryCreditType(w http.ResponseWriter, r *http.Request) (creditType string, ok bool) {
	creditType = r.URL.Query().Get("credit_type")
	var check fieldCheck
	check.creditType("query.credit_type", creditType, true)
	if err := check.err(); err != nil {
		writeProblem(w, r, a.log, validationProblem("", err))
		return "", false
	}
	return creditType, true
}

// writeJSON is web.WriteJSON, the one way both native and compat routes
// answer JSON.
func writeJSON(w http.ResponseWriter, status int, v any) { web.WriteJSON(w, status, v) }
