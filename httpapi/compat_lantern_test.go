package httpapi_test

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/internal/stack"
)

const (
	lanternUsagePath     = "/compat/lantern/v1/credits/usage"
	lanternRemainingPath = "/compat/lantern/v1/credits/remaining"
)

// TestCompatLantern checks the lantern profile (seed 000) against the
// compat scenario: credits used over an instant range with its filters, and
// the remaining and total credits.
func TestCompatLantern(t *testing.T) {
	t.Parallel()
	w := buildCompatScenario(t, "lantern")
	s, key := w.s, w.m.key

	// usage reads the usage endpoint and checks the echo and the number.
	usage := func(t *testing.T, start, end string, extra ...string) map[string]any {
		t.Helper()
		got := read(t, s, lanternUsagePath+q(append([]string{"start_date", start, "end_date", end}, extra...)...), key)
		if got["success"] != true {
			t.Errorf("success = %v", got["success"])
		}
		wantInt(t, got, "tenant_id", w.m.id)
		wantString(t, got, "start_date", start)
		wantString(t, got, "end_date", end)
		return got
	}
	instant := func(text string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, text)
		if err != nil {
			panic(err) // the test's own literals
		}
		return v
	}

	t.Run("the usage answer has the seed's members and types", func(t *testing.T) {
		checkShape(t, "lantern", "usage", fetch(t, s, http.MethodGet, lanternUsagePath+q("start_date", "2026-03-01T00:00:00Z", "end_date", "2026-03-15T23:59:59Z"), key, nil))
	})

	t.Run("the remaining answer has the seed's members and types", func(t *testing.T) {
		checkShape(t, "lantern", "remaining", fetch(t, s, http.MethodGet, lanternRemainingPath, key, nil))
	})

	t.Run("credits used sums usage and captures that occurred in the range", func(t *testing.T) {
		start, end := "2026-03-01T00:00:00Z", "2026-03-15T23:59:59Z"
		got := usage(t, start, end)
		wantDec(t, got, "credits_used", w.usedBetween(instant(start), instant(end), nil))
		// By hand: March's u1 120.25 + u2 80 + u3 45.5 + u4 33.3 + u6 7.45
		// + u-keys 10 + the capture 42.75 + u7 19.5; February's u5 is out.
		wantDec(t, got, "credits_used", dec("358.75"))
	})

	t.Run("both bounds are inclusive to the instant", func(t *testing.T) {
		for _, c := range []struct{ start, end, hand string }{
			// u2 at the very start, u3, u-keys; u4 a second after the end is out.
			{"2026-03-10T08:30:00Z", "2026-03-14T09:14:59Z", "135.5"},
			// u2 a microsecond before the start is out; u3, u-keys and u4 at the very end.
			{"2026-03-10T08:30:00.000001Z", "2026-03-14T09:15:00Z", "88.8"},
			// u3 alone, in one instant.
			{"2026-03-10T23:59:59.5Z", "2026-03-10T23:59:59.5Z", "45.5"},
			// The capture at 12:10 (it occurs when captured) and u7 at 13:05; u6 at 11:00 is out.
			{"2026-03-15T12:10:00Z", "2026-03-15T13:05:00Z", "62.25"},
			// Offsets: 08:00Z on 10 March to 08:00Z on 12 March: u2, u3 and u-keys.
			{"2026-03-10T10:00:00+02:00", "2026-03-12T09:00:00+01:00", "135.5"},
		} {
			t.Run(c.start+" to "+c.end, func(t *testing.T) {
				got := usage(t, c.start, c.end)
				wantDec(t, got, "credits_used", w.usedBetween(instant(c.start), instant(c.end), nil))
				wantDec(t, got, "credits_used", dec(c.hand))
			})
		}
	})

	t.Run("the other ISO 8601 forms are read and echoed as given", func(t *testing.T) {
		for _, c := range []struct{ start, end, hand string }{
			// No seconds and no zone (UTC), a fraction: u2, u3, u-keys.
			{"2026-03-10T08:30", "2026-03-14T09:14:59.999", "135.5"},
			// +hhmm and +hh offsets: 08:30Z to 09:15Z, u4 at the very end.
			{"2026-03-10T10:30+0200", "2026-03-14T04:15-05", "168.8"},
		} {
			t.Run(c.start+" to "+c.end, func(t *testing.T) {
				wantDec(t, usage(t, c.start, c.end), "credits_used", dec(c.hand))
			})
		}
	})

	t.Run("dates mean whole UTC days and are echoed as given", func(t *testing.T) {
		got := usage(t, "2026-03-10", "2026-03-10")
		wantDec(t, got, "credits_used", w.usedBetween(at(3, 10, 0, 0), at(3, 11, 0, 0).Add(-time.Microsecond), nil))
		wantDec(t, got, "credits_used", dec("125.5")) // u2 + u3
	})

	t.Run("workflow filters keep the usage of that workflow or run", func(t *testing.T) {
		start, end := "2026-02-01T00:00:00Z", "2026-03-15T23:59:59Z"
		for _, c := range []struct {
			params []string
			keep   func(usageRec) bool
			hand   string
		}{
			{[]string{"workflow_id", "wf-1"}, func(r usageRec) bool { return r.workflow == "wf-1" }, "350.25"},         // u1, u2, u5
			{[]string{"workflow_id", "wf-3"}, func(r usageRec) bool { return r.workflow == "wf-3" }, "62.25"},          // the capture, u7
			{[]string{"workflow_run_id", "run-2"}, func(r usageRec) bool { return r.run == "run-2" }, "80"},            // u2
			{[]string{"workflow_run_id", "run-9"}, func(r usageRec) bool { return r.run == "run-9" }, "42.75"},         // the capture
			{[]string{"workflow_id", "wf-1", "workflow_run_id", "run-3"}, func(r usageRec) bool { return false }, "0"}, // run-3 is wf-2's
			{[]string{"workflow_id", "wf-unknown"}, func(r usageRec) bool { return false }, "0"},
		} {
			t.Run(q(c.params...), func(t *testing.T) {
				got := usage(t, start, end, c.params...)
				wantDec(t, got, "credits_used", w.usedBetween(instant(start), instant(end), c.keep))
				wantDec(t, got, "credits_used", dec(c.hand))
			})
		}
	})

	t.Run("a custom key and value keep the usage with that custom dimension", func(t *testing.T) {
		summer := func(r usageRec) bool { return r.custom["table_id"] == "tbl-summer" }
		// Whole days (the usage cube) and partial days (the ledger) agree.
		for _, c := range []struct{ start, end, hand string }{
			{"2026-03-01T00:00:00Z", "2026-03-15T23:59:59Z", "208.5"}, // u1, u3, the capture
			{"2026-03-10T12:00:00Z", "2026-03-15T12:10:00Z", "88.25"}, // u3 and the capture, both on partial days
			{"2026-03-02T10:00:00Z", "2026-03-02T10:00:00Z", "120.25"},
		} {
			t.Run(c.start+" to "+c.end, func(t *testing.T) {
				got := usage(t, c.start, c.end, "custom_key", "table_id", "custom_value", "tbl-summer")
				wantDec(t, got, "credits_used", w.usedBetween(instant(c.start), instant(c.end), summer))
				wantDec(t, got, "credits_used", dec(c.hand))
			})
		}
		got := usage(t, "2026-02-01T00:00:00Z", "2026-03-15T23:59:59Z", "workflow_id", "wf-2", "custom_key", "region", "custom_value", "eu")
		wantDec(t, got, "credits_used", dec("33.3")) // u4 alone
	})

	t.Run("remaining is what can be spent now and total the credits in effect", func(t *testing.T) {
		got := read(t, s, lanternRemainingPath, key)
		total := w.total()
		notYet := decimal.Zero
		for _, g := range w.book.grants {
			if g.effective.After(w.now()) {
				notYet = notYet.Add(g.remaining)
			}
		}
		if got["success"] != true {
			t.Errorf("success = %v", got["success"])
		}
		wantInt(t, got, "tenant_id", w.m.id)
		wantDec(t, got, "remaining_credits", total.balance().Sub(total.reserved).Sub(notYet))
		wantDec(t, got, "total_credits", total.granted.Add(total.adjusted).Sub(total.expired).Sub(notYet))
		// By hand: 57066 − 15 held − g-future's 100 (effective 1 April);
		// 58140 − 4.5 − 560.75 − 100.
		wantDec(t, got, "remaining_credits", dec("56951"))
		wantDec(t, got, "total_credits", dec("57474.75"))
	})

	t.Run("a custom key without a value, or a value without a key, is a 400", func(t *testing.T) {
		base := []string{"start_date", "2026-03-01", "end_date", "2026-03-15"}
		badRead(t, s, lanternUsagePath+q(append(base, "custom_key", "table_id")...), key, "query.custom_value")
		badRead(t, s, lanternUsagePath+q(append(base, "custom_value", "tbl-summer")...), key, "query.custom_key")
	})

	t.Run("missing or malformed dates and reversed ranges are 400s", func(t *testing.T) {
		badRead(t, s, lanternUsagePath+q("end_date", "2026-03-15"), key, "query.start_date")
		badRead(t, s, lanternUsagePath+q("start_date", "2026-03-01"), key, "query.end_date")
		badRead(t, s, lanternUsagePath+q("start_date", "yesterday", "end_date", "2026-03-15"), key, "query.start_date")
		badRead(t, s, lanternUsagePath+q("start_date", "2026-03-15", "end_date", "2026-03-01"), key, "query.start_date")
	})

	t.Run("a bad key is a 401 on both endpoints", func(t *testing.T) {
		fetch(t, s, http.MethodGet, lanternRemainingPath, badKey, nil).problem(t, http.StatusUnauthorized)
		fetch(t, s, http.MethodGet, lanternUsagePath+q("start_date", "2026-03-01", "end_date", "2026-03-15"), badKey, nil).problem(t, http.StatusUnauthorized)
	})
}

// TestCompatLanternSeedExample reproduces the seed's example: 1250.5 credits
// used by workflow-123 in 2024 and 4750.25 remaining.
func TestCompatLanternSeedExample(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(compatEpoch)
	m := newTenant(t, s, "lantern-seed", "USD")
	// 6150.25 granted; 1400 used in all, 1250.5 of it by workflow-123 in 2024.
	m.grant("g", "", "6150.25", nil)
	m.use(
		usageEv{id: "a", at: time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC), amount: "1000", workflow: "workflow-123", module: "llm"},
		usageEv{id: "b", at: time.Date(2024, 12, 31, 23, 59, 59, 0, time.UTC), amount: "250.5", workflow: "workflow-123", module: "llm"},
		usageEv{id: "c", at: time.Date(2024, 6, 1, 9, 0, 0, 0, time.UTC), amount: "99.5", workflow: "workflow-456", module: "llm"},
		usageEv{id: "d", at: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), amount: "50", workflow: "workflow-123", module: "llm"},
	)
	s.Sync()

	t.Run("the seed's example request answers the seed's example response", func(t *testing.T) {
		got := read(t, s, lanternUsagePath+"?start_date=2024-01-01T00:00:00Z&end_date=2024-12-31T23:59:59Z&workflow_id=workflow-123", m.key)
		if got["success"] != true {
			t.Errorf("success = %v", got["success"])
		}
		wantInt(t, got, "tenant_id", m.id)
		wantString(t, got, "start_date", "2024-01-01T00:00:00Z")
		wantString(t, got, "end_date", "2024-12-31T23:59:59Z")
		wantNumber(t, got, "credits_used", "1250.5")
	})

	t.Run("the remaining credits are the seed's 4750.25", func(t *testing.T) {
		got := read(t, s, lanternRemainingPath, m.key)
		wantNumber(t, got, "remaining_credits", "4750.25")
		wantNumber(t, got, "total_credits", "6150.25")
	})
}

// reverse reverses usage id through the native API and waits for the read
// models.
func reverse(t *testing.T, s *stack.Stack, key, id string) {
	t.Helper()
	fetch(t, s, http.MethodPost, "/v1/usage/"+id+"/reverse", key, map[string]any{"reason": "refund"}).want(t, http.StatusOK)
	s.Sync()
}

// TestCompatLanternNetsReversals: a reversal nets against the usage it
// reverses at that usage's occurred_at, in a window of whole days (the
// usage cube) and in a window of part of a day (the ledger) alike.
func TestCompatLanternNetsReversals(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(compatEpoch)
	m := newTenant(t, s, "lantern-reversals", "USD")
	m.grant("g", "", "100", nil)
	m.use(
		usageEv{id: "reversed", at: at(3, 10, 0, 30), amount: "20.25", workflow: "wf-1"},
		usageEv{id: "kept", at: at(3, 10, 0, 40), amount: "5", workflow: "wf-1"},
	)
	reverse(t, s, m.key, "reversed")

	for _, c := range []struct{ start, end, hand string }{
		{"2026-03-10T00:15:00Z", "2026-03-10T00:45:00Z", "5"},
		{"2026-03-10T00:30:00Z", "2026-03-10T00:30:00Z", "0"},
		{"2026-03-10", "2026-03-10", "5"},
		{"2026-03-09T12:00:00Z", "2026-03-11T12:00:00Z", "5"},
		{"2026-03-10T00:00:00Z", "2026-03-10T00:35:00Z", "0"},
		// The reversal was made at 12:00 on 15 March; it counts at the
		// usage's time, not its own.
		{"2026-03-15T11:59:00Z", "2026-03-15T12:01:00Z", "0"},
	} {
		t.Run(c.start+" to "+c.end, func(t *testing.T) {
			got := read(t, s, lanternUsagePath+q("start_date", c.start, "end_date", c.end), m.key)
			wantNumber(t, got, "credits_used", c.hand)
			got = read(t, s, lanternUsagePath+q("start_date", c.start, "end_date", c.end, "workflow_id", "wf-1"), m.key)
			wantNumber(t, got, "credits_used", c.hand)
		})
	}
}

// TestCompatLanternRemainingIsSpendableNow: remaining_credits is what usage
// can spend now. A grant not yet in effect is in the balance but no debit
// can burn it, so it is in neither remaining_credits nor total_credits
// until its effective_at.
func TestCompatLanternRemainingIsSpendableNow(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(compatEpoch)
	m := newTenant(t, s, "lantern-spendable", "USD")
	m.grant("now", "", "100", nil)
	m.grant("next-year", "", "50", map[string]any{"effective_at": "2027-01-01T00:00:00Z"})
	m.grant("half-past", "keys", "7", map[string]any{"effective_at": "2026-03-15T12:30:00Z"})
	m.use(usageEv{id: "u", amount: "10"})
	m.reserve(usageEv{id: "hold", amount: "5"})
	s.Sync()

	got := read(t, s, lanternRemainingPath, m.key)
	// By hand: 100 − 10 used − 5 held; 100 granted in effect.
	wantNumber(t, got, "remaining_credits", "85")
	wantNumber(t, got, "total_credits", "100")

	// At its effective_at a grant is in effect: 7 more.
	s.Clock.Set(time.Date(2026, 3, 15, 12, 30, 0, 0, time.UTC))
	got = read(t, s, lanternRemainingPath, m.key)
	wantNumber(t, got, "remaining_credits", "92")
	wantNumber(t, got, "total_credits", "107")
}

// TestCompatLanternAllTime: a range has no length limit, so one query can
// ask for all the usage ever recorded.
func TestCompatLanternAllTime(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(compatEpoch)
	m := newTenant(t, s, "lantern-all-time", "USD")
	m.grant("g", "", "100", nil)
	m.use(
		usageEv{id: "old", at: time.Date(2019, 7, 1, 0, 0, 0, 0, time.UTC), amount: "1.5"},
		usageEv{id: "new", at: at(3, 15, 11, 0), amount: "2"},
	)
	s.Sync()
	for _, c := range []struct{ start, end string }{
		{"1970-01-01T00:00:00Z", "2100-12-31T23:59:59Z"},
		{"0001-01-01", "9999-12-31"},
	} {
		t.Run(c.start+" to "+c.end, func(t *testing.T) {
			got := read(t, s, lanternUsagePath+q("start_date", c.start, "end_date", c.end), m.key)
			wantNumber(t, got, "credits_used", "3.5")
		})
	}
}

// TestCompatLanternIgnoresUnknownQueryParameters: a client's own
// parameters (a cache buster, tracking) change nothing in the answer.
func TestCompatLanternIgnoresUnknownQueryParameters(t *testing.T) {
	t.Parallel()
	w := buildCompatScenario(t, "lantern-extra-params")
	for _, path := range []string{lanternUsagePath + q("start_date", "2026-03-01", "end_date", "2026-03-15"), lanternRemainingPath} {
		t.Run(path, func(t *testing.T) {
			wantSameAnswer(t, w, path, path+sep(path)+"_=123&utm_source=x")
		})
	}
}

// sep is what appends a parameter to path.
func sep(path string) string {
	if strings.Contains(path, "?") {
		return "&"
	}
	return "?"
}

// wantSameAnswer reads both paths and wants the same 200 answer, but for
// last_login_at, which each read moves.
func wantSameAnswer(t *testing.T, w *compatWorld, path, other string) {
	t.Helper()
	want, got := read(t, w.s, path, w.m.key), read(t, w.s, other, w.m.key)
	delete(want, "last_login_at")
	delete(got, "last_login_at")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GET %s = %v, want %v as without the extra parameters", other, got, want)
	}
}
