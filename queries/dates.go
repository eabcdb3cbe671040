package queries

import (
	"fmt"
	"time"
)

// RangeDaysMax bounds a date range: five years of days.
const RangeDaysMax = 1830

// Range is an instant range [From, To], both inclusive. FromDay and ToDay are
// the UTC days it touches, for the daily read models.
type Range struct {
	From, To       time.Time
	FromDay, ToDay int64
}

// ParseRange reads from and to as RFC 3339 instants or YYYY-MM-DD dates
// (a date means the whole UTC day: from its start, to its end). Missing
// values default to defaultDays days ending today. It reports from after
// to, malformed values and ranges over RangeDaysMax days as *ParamError.
func ParseRange(fromText, toText string, now time.Time, defaultDays int) (Range, error) {
	var errs []error
	to, err := parseBound(toText, true)
	if err != nil {
		errs = append(errs, &ParamError{Param: "to", Message: err.Error(), Value: toText})
	}
	from, err := parseBound(fromText, false)
	if err != nil {
		errs = append(errs, &ParamError{Param: "from", Message: err.Error(), Value: fromText})
	}
	if len(errs) > 0 {
		return Range{}, joinParams(errs)
	}
	// Absent is the empty text, not the zero time: 0001-01-01T00:00:00Z is
	// an instant a client may send.
	if toText == "" {
		to = endOfDay(now)
	}
	if fromText == "" {
		from = startOfDay(to).AddDate(0, 0, -(defaultDays - 1))
	}
	r := Range{From: from.UTC(), To: to.UTC(), FromDay: dayOf(from), ToDay: dayOf(to)}
	switch {
	case r.From.After(r.To):
		return Range{}, &ParamError{Param: "from", Message: "must not be after to", Value: fromText}
	case r.ToDay-r.FromDay+1 > RangeDaysMax:
		// Name a parameter the client sent: from, when to was the default.
		param, value := "to", toText
		if toText == "" {
			param, value = "from", fromText
		}
		return Range{}, &ParamError{Param: param, Message: fmt.Sprintf("the range spans more than %d days", RangeDaysMax), Value: value}
	}
	return r, nil
}

// ParseInstant reads an RFC 3339 instant or a YYYY-MM-DD date (its end,
// when end is true, else its start). The empty text is the zero time.
func ParseInstant(text string, end bool) (time.Time, error) { return parseBound(text, end) }

// parseBound reads a range's bound. The read models keep microseconds, and
// compare a bound's microseconds (UnixMicro, which truncates): a start
// finer than a microsecond therefore begins at the next whole one, or an
// entry at the microsecond before it would be in range; an end keeps its
// microsecond, which holds everything up to it.
func parseBound(text string, end bool) (time.Time, error) {
	if text == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, text); err == nil {
		t = t.UTC()
		if !end && t.Nanosecond()%int(time.Microsecond) != 0 {
			t = t.Truncate(time.Microsecond).Add(time.Microsecond)
		}
		return t, nil
	}
	day, err := time.Parse(time.DateOnly, text)
	if err != nil {
		return time.Time{}, fmt.Errorf("must be an RFC 3339 time or a YYYY-MM-DD date")
	}
	if end {
		return endOfDay(day), nil
	}
	return day, nil
}

func startOfDay(t time.Time) time.Time { return dayStart(dayOf(t)) }

func endOfDay(t time.Time) time.Time { return startOfDay(t).Add(24*time.Hour - time.Microsecond) }
