package compat

import (
	"net/url"
	"strings"
	"time"

	"github.com/creditd/creditd/queries"
)

// Times in the lantern and account profiles' queries. Both seeds ask for
// ISO 8601 and show only one example form, so the common ones are read:
//
//	2026-03-10                      the whole UTC day
//	2026-03-10T12:00                a date-time, seconds optional,
//	2026-03-10T12:00:30.25          with up to 9 digits of fraction (. or ,),
//	2026-03-10T12:00:30Z            and Z, an offset (+02:00, +0200, +02)
//	2026-03-10T12:00:30+02:00       or no zone, which is UTC.
//
// A date-time is that instant whatever its precision: 12:00 is 12:00:00.0,
// not the minute. A date as the end of a range is the day's last
// microsecond.

// ISOTimePattern matches the forms above, for the OpenAPI document of the
// routes that read them (Route.ISOTimes). The separator before an offset
// may be a space: see parseInstant.
const ISOTimePattern = `^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]{1,9})?)?(Z|[+ -][0-9]{2}(:?[0-9]{2})?)?)?$`

// fractionDigitsMax is the longest fraction read: nanoseconds, which Go
// keeps; a longer one would be cut short silently.
const fractionDigitsMax = 9

// instantFormsText is what a malformed time's problem says to write.
const instantFormsText = "must be an ISO 8601 date (2026-03-10) or date-time (2026-03-10T12:00, seconds and fraction optional, then Z, an offset such as +02:00, or nothing for UTC)"

// instantLayouts are the date-time forms, seconds and fractions included:
// Go reads a fraction after the seconds whatever the layout says.
var instantLayouts = func() []string {
	var out []string
	for _, clock := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04"} {
		for _, zone := range []string{"Z07:00", "Z0700", "Z07", ""} {
			out = append(out, clock+zone)
		}
	}
	return out
}()

// parseInstant reads text as one of the forms above: a date is its first
// microsecond, or with end its last. Read models keep microseconds, so an
// instant between two of them starts a range at the later one and ends it
// at the earlier one: the range holds exactly the times asked.
func parseInstant(text string, end bool) (time.Time, bool) {
	if day, err := time.Parse(time.DateOnly, text); err == nil {
		if end {
			return day.Add(24*time.Hour - time.Microsecond), true
		}
		return day, true
	}
	// A + of an offset that the client left unescaped in the URL arrives
	// as a space; nothing else in these forms is a space.
	if i := strings.LastIndexByte(text, ' '); i > len(time.DateOnly) {
		text = text[:i] + "+" + text[i+1:]
	}
	if _, fraction, ok := strings.Cut(text, "."); ok && digitsAt(fraction) > fractionDigitsMax {
		return time.Time{}, false
	}
	if _, fraction, ok := strings.Cut(text, ","); ok && digitsAt(fraction) > fractionDigitsMax {
		return time.Time{}, false
	}
	for _, layout := range instantLayouts {
		t, err := time.Parse(layout, text)
		if err != nil {
			continue
		}
		t = t.UTC()
		rounded := t.Truncate(time.Microsecond)
		if !end && !rounded.Equal(t) {
			rounded = rounded.Add(time.Microsecond)
		}
		return rounded, true
	}
	return time.Time{}, false
}

// digitsAt counts the digits that text starts with.
func digitsAt(text string) int {
	n := 0
	for n < len(text) && text[n] >= '0' && text[n] <= '9' {
		n++
	}
	return n
}

// instantParam reads the optional time parameter name (nil when absent or
// empty), appending a *queries.ParamError to errs when it is malformed.
func instantParam(params url.Values, name string, end bool, errs *[]error) *time.Time {
	text := params.Get(name)
	if text == "" {
		return nil
	}
	t, ok := parseInstant(text, end)
	if !ok {
		*errs = append(*errs, &queries.ParamError{Param: name, Message: instantFormsText, Value: text})
		return nil
	}
	return &t
}

// requiredInstant reads the time parameter name, which must be given.
func requiredInstant(params url.Values, name string, end bool, errs *[]error) time.Time {
	if params.Get(name) == "" {
		*errs = append(*errs, &queries.ParamError{Param: name, Message: "is required"})
		return time.Time{}
	}
	if t := instantParam(params, name, end, errs); t != nil {
		return *t
	}
	return time.Time{}
}

// orderedRange refuses a range whose start (param) is after its end. A
// range has no length limit here, unlike the native API's: neither seed
// gives one, and all time is a question their clients ask.
func orderedRange(from, to time.Time, param string) error {
	if from.After(to) {
		return &queries.ParamError{Param: param, Message: "must not be after the end of the range", Value: from.Format(time.RFC3339Nano)}
	}
	return nil
}
