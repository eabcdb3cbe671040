package queries

import (
	"errors"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

var datesNow = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// Go's zero time is a real instant a client may send (as "the beginning of
// time"); only an absent parameter takes the default.
func TestRangeBoundsAtGosZeroTimeAreGiven(t *testing.T) {
	r, err := ParseRange("", "0001-01-01T00:00:00Z", datesNow, 30)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC); !r.To.Equal(want) {
		t.Errorf("to=0001-01-01T00:00:00Z read as %s, want %s", r.To, want)
	}
	if _, err := ParseRange("0001-01-01", "2026-03-15", datesNow, 30); !errors.Is(err, ErrInvalidQuery) {
		t.Errorf("from=0001-01-01 to=2026-03-15 (over %d days): %v, want an invalid query", RangeDaysMax, err)
	}
}

// A range error names a parameter the client sent, with its value.
func TestRangeErrorNamesAGivenParameter(t *testing.T) {
	cases := []struct{ from, to, param, value string }{
		{"2015-01-01", "", "from", "2015-01-01"},
		{"2015-01-01", "2026-03-15", "to", "2026-03-15"},
	}
	for _, c := range cases {
		_, err := ParseRange(c.from, c.to, datesNow, 30)
		pes := ParamErrors(err)
		if len(pes) != 1 || pes[0].Param != c.param || pes[0].Value != c.value {
			t.Errorf("from=%q to=%q: %+v, want one error naming %s=%q", c.from, c.to, pes, c.param, c.value)
		}
	}
}

// The read models keep microseconds. A start finer than that begins at the
// next whole microsecond (an entry at the microsecond before it is
// earlier than the start); an end keeps its microsecond (the read models
// truncate it, which keeps everything up to it).
func TestSubMicrosecondBounds(t *testing.T) {
	start, err := ParseInstant("2026-03-15T12:00:00.0000005Z", false)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 3, 15, 12, 0, 0, 1000, time.UTC); !start.Equal(want) {
		t.Errorf("start 12:00:00.0000005 read as %s, want %s", start.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
	}
	end, err := ParseInstant("2026-03-15T12:00:00.0000005Z", true)
	if err != nil {
		t.Fatal(err)
	}
	if end.UnixMicro() != time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC).UnixMicro() {
		t.Errorf("end 12:00:00.0000005 read as %s, want within 12:00:00.000000", end.Format(time.RFC3339Nano))
	}
	r, err := ParseRange("2026-03-15T12:00:00.0000005Z", "2026-03-15T13:00:00Z", datesNow, 30)
	if err != nil {
		t.Fatal(err)
	}
	if r.From.UnixMicro() != start.UnixMicro() {
		t.Errorf("range from %s, want %s", r.From.Format(time.RFC3339Nano), start.Format(time.RFC3339Nano))
	}
	// Whole microseconds are left as they are, before 1970 too.
	for _, text := range []string{"2026-03-15T12:00:00.000001Z", "1969-12-31T23:59:59.999999Z"} {
		got, err := ParseInstant(text, false)
		if err != nil || got.Format(time.RFC3339Nano) != text {
			t.Errorf("start %s read as %s (%v)", text, got.Format(time.RFC3339Nano), err)
		}
	}
}

// Days are UTC days counted from the epoch, floored: an instant before 1970
// is on a day before day 0.
func TestDaysBeforeTheEpoch(t *testing.T) {
	r, err := ParseRange("1969-12-31T12:00:00Z", "1970-01-01T12:00:00Z", datesNow, 30)
	if err != nil {
		t.Fatal(err)
	}
	if r.FromDay != -1 || r.ToDay != 0 {
		t.Errorf("days %d..%d, want -1..0", r.FromDay, r.ToDay)
	}
}

// ChangePct rounds the exact quotient once, half away from zero.
func TestChangePctRoundsOnce(t *testing.T) {
	cases := []struct{ current, previous, want string }{
		{"2001.000001", "2000.000001", "0"}, // 0.04999999997…: was rounded to 0.05000000, then to 0.1
		{"1999.000001", "2000.000001", "0"}, // −0.0499…
		{"110.5", "100", "10.5"},
		{"100.05", "100", "0.1"}, // exactly 0.05
		{"99.95", "100", "-0.1"}, // exactly −0.05
		{"1", "3", "-66.7"},
		{"2", "3", "-33.3"},
		{"0", "7", "-100"},
	}
	for _, c := range cases {
		got := ChangePct(decimal.RequireFromString(c.current), decimal.RequireFromString(c.previous))
		if got == nil || !got.Equal(decimal.RequireFromString(c.want)) {
			t.Errorf("ChangePct(%s, %s) = %v, want %s", c.current, c.previous, got, c.want)
		}
	}
	if got := ChangePct(decimal.NewFromInt(5), decimal.Zero); got != nil {
		t.Errorf("ChangePct(5, 0) = %v, want nil", got)
	}
}
