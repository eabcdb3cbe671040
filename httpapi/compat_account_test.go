package httpapi_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/internal/stack"
)

const (
	accountUsagePath   = "/compat/account/auth/account/usage"
	accountCreditsPath = "/compat/account/auth/account/credits"
	accountLedgerPath  = "/compat/account/auth/account/ledger"
	accountSummaryPath = "/compat/account/auth/account/summary"
)

// endOfUTCDay is the last microsecond of the UTC day holding t.
func endOfUTCDay(t time.Time) time.Time {
	return t.UTC().Truncate(24 * time.Hour).Add(24*time.Hour - time.Microsecond)
}

// checkAccountUsage checks a UsageStats object: the usage of the UTC days
// from..to, and from and to as period_start and period_end.
func checkAccountUsage(t *testing.T, got map[string]any, w *compatWorld, period string, from, to time.Time) {
	t.Helper()
	agg, byEndpoint := w.usageOnDays(from, to)
	wantInt(t, got, "user_id", w.m.id)
	wantString(t, got, "period", period)
	wantInt(t, got, "total_requests", agg.requests)
	wantInt(t, got, "successful_requests", agg.successful)
	wantInt(t, got, "failed_requests", agg.failed)
	wantDec(t, got, "credits_consumed", agg.credits)
	endpoints := obj(t, got["requests_by_endpoint"], "requests_by_endpoint")
	if len(endpoints) != len(byEndpoint) {
		t.Errorf("requests_by_endpoint = %v, want %v", endpoints, byEndpoint)
	}
	for ep, n := range byEndpoint {
		wantInt(t, endpoints, ep, n)
	}
	wantTime(t, got, "period_start", from)
	wantTime(t, got, "period_end", to)
}

// checkAccountBalance checks a CreditBalance object against the model.
func checkAccountBalance(t *testing.T, got map[string]any, w *compatWorld) {
	t.Helper()
	total := w.total()
	def := w.m.line("default")
	wantInt(t, got, "user_id", w.m.id)
	wantDec(t, got, "balance", total.balance())
	wantDec(t, got, "reserved", total.reserved)
	notYet := decimal.Zero
	for _, g := range w.book.grants {
		if g.effective.After(w.now()) {
			notYet = notYet.Add(g.remaining)
		}
	}
	wantDec(t, got, "available", total.balance().Sub(total.reserved).Sub(notYet))
	wantString(t, got, "currency", w.m.currency)
	wantTime(t, got, "last_updated", total.lastUpdated)
	if got["auto_reload_enabled"] != def.arEnabled {
		t.Errorf("auto_reload_enabled = %v, want %v", got["auto_reload_enabled"], def.arEnabled)
	}
	wantDec(t, got, "auto_reload_threshold", def.arThreshold)
	wantDec(t, got, "auto_reload_amount", def.arAmount)
}

// accountEntries is the model's ledger as the account profile lists it:
// every entry dated when what it records happened (a debit when its usage
// occurred, any other entry when recorded), newest first by that time and
// then by the order recorded, expiries as adjustments, and balance_after
// the account's running balance in that order, over all its lines; then
// the entries that keep keeps.
func accountEntries(w *compatWorld, keep func(ledgerWant) bool) []ledgerWant {
	all := slices.Clone(w.m.ledger)
	for i := range all {
		if !all[i].occurredAt.IsZero() {
			all[i].createdAt = all[i].occurredAt
		}
		if all[i].typ == "expiry" {
			all[i].typ = "adjustment"
		}
	}
	// Stable: equal times keep the order recorded, as entry ids do.
	slices.SortStableFunc(all, func(a, b ledgerWant) int { return a.createdAt.Compare(b.createdAt) })
	balance := decimal.Zero
	for i := range all {
		balance = balance.Add(all[i].amount)
		all[i].after = balance
	}
	return newestFirst(all, keep)
}

// checkAccountLedger checks a ledger page against the expected entries
// (all that match) at limit and offset.
func checkAccountLedger(t *testing.T, got map[string]any, w *compatWorld, all []ledgerWant, limit, offset int) {
	t.Helper()
	wantInt(t, got, "total", int64(len(all)))
	wantInt(t, got, "limit", int64(limit))
	wantInt(t, got, "offset", int64(offset))
	want := all[min(offset, len(all)):min(offset+limit, len(all))]
	entries := list(t, got["entries"], "entries")
	if len(entries) != len(want) {
		t.Fatalf("%d entries, want %d: %v", len(entries), len(want), got["entries"])
	}
	var previousID uint64
	var previousAt time.Time
	for i, e := range entries {
		what := fmt.Sprintf("entry %d (%s %s)", i, want[i].typ, want[i].sourceID)
		wantInt(t, e, "user_id", w.m.id)
		wantString(t, e, "type", want[i].typ)
		wantDec(t, e, "amount", want[i].amount)
		wantDec(t, e, "balance_after", want[i].after)
		wantString(t, e, "description", want[i].description)
		wantString(t, e, "reference", want[i].ref)
		wantTime(t, e, "created_at", want[i].createdAt)
		meta := obj(t, e["metadata"], what+" metadata")
		wantMeta := map[string]any{}
		for k, v := range want[i].metadata {
			wantMeta[k] = v
		}
		if fmt.Sprint(meta) != fmt.Sprint(wantMeta) {
			t.Errorf("%s metadata = %v, want %v", what, meta, wantMeta)
		}
		// Newest first: by time, then by entry id (the order recorded).
		id := num(t, e, "id")
		at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(e["created_at"]))
		if err != nil {
			t.Fatalf("%s created_at: %v", what, err)
		}
		if c := at.Compare(previousAt); i > 0 && (c > 0 || c == 0 && id >= previousID) {
			t.Errorf("%s (%s, id %d) after (%s, id %d): not newest first", what, at, id, previousAt, previousID)
		}
		previousID, previousAt = id, at
	}
}

// TestCompatAccount checks the account profile (seed 001) against the
// compat scenario: usage statistics, credit balance, ledger and summary.
func TestCompatAccount(t *testing.T) {
	t.Parallel()
	w := buildCompatScenario(t, "account")
	s, key := w.s, w.m.key
	monthStart := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

	t.Run("every endpoint answers the seed's members and types", func(t *testing.T) {
		checkShape(t, "account", "usage", fetch(t, s, http.MethodGet, accountUsagePath, key, nil))
		checkShape(t, "account", "credits", fetch(t, s, http.MethodGet, accountCreditsPath, key, nil))
		checkShape(t, "account", "ledger", fetch(t, s, http.MethodGet, accountLedgerPath, key, nil))
		checkShape(t, "account", "summary", fetch(t, s, http.MethodGet, accountSummaryPath, key, nil))
	})

	t.Run("usage without a range is this month's days to the end of today", func(t *testing.T) {
		got := read(t, s, accountUsagePath, key)
		checkAccountUsage(t, got, w, "monthly", monthStart, endOfUTCDay(w.now()))
		// By hand: March holds u1, u2, u3, u4 (failed), u6, u-keys, the
		// capture and u7: 8 requests, 358.75 credits; February's u5 is out.
		wantInt(t, got, "total_requests", 8)
		wantInt(t, got, "failed_requests", 1)
		wantDec(t, got, "credits_consumed", dec("358.75"))
		eps := obj(t, got["requests_by_endpoint"], "requests_by_endpoint")
		for ep, n := range map[string]int64{"/v1/enhance": 4, "/v1/translate": 1, "/v1/search": 2, "/v1/keys": 1} {
			wantInt(t, eps, ep, n)
		}
	})

	t.Run("from and to select whole UTC days", func(t *testing.T) {
		got := read(t, s, accountUsagePath+q("period", "monthly", "from", "2026-02-01", "to", "2026-02-28"), key)
		checkAccountUsage(t, got, w, "monthly", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(-time.Microsecond))
		wantDec(t, got, "credits_consumed", dec("150")) // u5 alone
		got = read(t, s, accountUsagePath+q("period", "daily", "from", "2026-03-10T00:00:00Z", "to", "2026-03-14T23:59:59Z"), key)
		checkAccountUsage(t, got, w, "daily", at(3, 10, 0, 0), endOfUTCDay(at(3, 14, 0, 0)))
		wantDec(t, got, "credits_consumed", dec("168.8")) // u2, u3, u-keys, u4
	})

	t.Run("credits are the summed balance, the holds and what is available", func(t *testing.T) {
		got := read(t, s, accountCreditsPath, key)
		checkAccountBalance(t, got, w)
		// By hand: 58140 − 4.5 − 508.75 − 560.75 = 57066, 15 held, and
		// g-future's 100 not in effect before 1 April.
		wantDec(t, got, "balance", dec("57066"))
		wantDec(t, got, "available", dec("56951"))
		wantString(t, got, "currency", "EUR")
		wantTime(t, got, "last_updated", at(3, 15, 13, 15))
	})

	t.Run("the ledger lists every movement newest first, expiries as negative adjustments", func(t *testing.T) {
		all := accountEntries(w, nil)
		checkAccountLedger(t, read(t, s, accountLedgerPath, key), w, all, 50, 0)
		checkAccountLedger(t, read(t, s, accountLedgerPath+"?limit=100", key), w, all, 100, 0)
		// By hand: 6 grants, 9 debits, 2 adjustments and 2 expiries.
		if len(all) != 19 {
			t.Errorf("the model has %d entries, want 19", len(all))
		}
	})

	t.Run("the ledger filters by type", func(t *testing.T) {
		for typ, hand := range map[string]int{"credit": 6, "debit": 9, "adjustment": 4} {
			t.Run(typ, func(t *testing.T) {
				want := accountEntries(w, func(e ledgerWant) bool {
					return e.typ == typ || (typ == "adjustment" && e.typ == "expiry")
				})
				if len(want) != hand {
					t.Errorf("the model has %d %s entries, want %d", len(want), typ, hand)
				}
				checkAccountLedger(t, read(t, s, accountLedgerPath+"?type="+typ, key), w, want, 50, 0)
			})
		}
		adjustments := list(t, read(t, s, accountLedgerPath+"?type=adjustment", key)["entries"], "entries")
		// By hand: the newest adjustments are adj-fix −30 and the expiry of
		// g-soon's 520.75 left, both at 13:15.
		wantDec(t, adjustments[0], "amount", dec("-30"))
		wantDec(t, adjustments[1], "amount", dec("-520.75"))
		wantString(t, adjustments[1], "type", "adjustment")
	})

	t.Run("the ledger filters by time and pages by limit and offset", func(t *testing.T) {
		from, to := at(3, 15, 12, 10), at(3, 15, 12, 35)
		want := accountEntries(w, func(e ledgerWant) bool { return !e.createdAt.Before(from) && !e.createdAt.After(to) })
		got := read(t, s, accountLedgerPath+q("from", "2026-03-15T12:10:00Z", "to", "2026-03-15T12:35:00Z"), key)
		checkAccountLedger(t, got, w, want, 50, 0)
		if len(want) != 3 { // the capture, adj-goodwill, g-legacy's expiry
			t.Errorf("the model has %d entries from 12:10 to 12:35, want 3", len(want))
		}
		all := accountEntries(w, nil)
		checkAccountLedger(t, read(t, s, accountLedgerPath+"?limit=3&offset=2", key), w, all, 3, 2)
		checkAccountLedger(t, read(t, s, accountLedgerPath+"?type=debit&limit=4&offset=8", key), w,
			accountEntries(w, func(e ledgerWant) bool { return e.typ == "debit" }), 4, 8)
	})

	t.Run("the summary holds the balance, the subscription and this month's usage", func(t *testing.T) {
		s.Clock.Advance(time.Minute)
		previous := w.now()
		read(t, s, accountCreditsPath, key)
		s.Clock.Advance(time.Minute)
		got := read(t, s, accountSummaryPath, key)
		now := w.now()
		wantInt(t, got, "user_id", w.m.id)
		wantString(t, got, "email", w.m.email)
		checkAccountBalance(t, obj(t, got["credit_balance"], "credit_balance"), w)
		checkAccountUsage(t, obj(t, got["usage_this_month"], "usage_this_month"), w, "monthly", monthStart, endOfUTCDay(now))
		wantInt(t, got, "total_requests_all_time", int64(len(w.m.usage)))
		wantInt(t, got, "total_requests_all_time", 9) // by hand: u1..u7, u-keys and the capture
		wantTime(t, got, "account_created_at", w.m.created)
		wantTime(t, got, "last_login_at", previous)

		sub := w.subs[0]
		start, end := sub.currentPeriod(now)
		gotSub := obj(t, got["subscription"], "subscription")
		wantString(t, gotSub, "id", sub.id)
		wantString(t, gotSub, "credit_type", ctOr(sub.ct))
		wantString(t, gotSub, "status", "canceling")
		wantString(t, gotSub, "period", "monthly")
		wantDec(t, gotSub, "credits_per_period", sub.credits)
		if gotSub["rollover"] != sub.rollover {
			t.Errorf("rollover = %v, want %v", gotSub["rollover"], sub.rollover)
		}
		wantTime(t, gotSub, "current_period_start", start)
		wantTime(t, gotSub, "current_period_end", end)
		wantTime(t, gotSub, "cancel_at", *sub.cancelAt)
		wantTime(t, gotSub, "current_period_end", time.Date(2026, 3, 18, 0, 0, 0, 0, time.UTC)) // by hand
		price := obj(t, gotSub["price"], "subscription.price")
		wantDec(t, price, "amount", sub.price)
		wantString(t, price, "currency", sub.currency)
	})

	t.Run("a new account has no subscription and no previous login", func(t *testing.T) {
		fresh := newTenant(t, s, "account-fresh", "GBP")
		s.Sync()
		got := read(t, s, accountSummaryPath, fresh.key)
		wantNull(t, got, "subscription")
		wantNull(t, got, "last_login_at")
		wantInt(t, got, "total_requests_all_time", 0)
		balance := obj(t, got["credit_balance"], "credit_balance")
		wantDec(t, balance, "balance", decimal.Zero)
		wantString(t, balance, "currency", "GBP")
		usage := obj(t, got["usage_this_month"], "usage_this_month")
		wantInt(t, usage, "total_requests", 0)
		if len(obj(t, usage["requests_by_endpoint"], "requests_by_endpoint")) != 0 {
			t.Errorf("requests_by_endpoint = %v, want {}", usage["requests_by_endpoint"])
		}
		ledger := read(t, s, accountLedgerPath, fresh.key)
		if entries := list(t, ledger["entries"], "entries"); len(entries) != 0 {
			t.Errorf("entries = %v, want []", entries)
		}
	})

	t.Run("an unknown type, a limit under 1 or a negative offset is a 400", func(t *testing.T) {
		badRead(t, s, accountLedgerPath+"?type=expiry", key, "query.type")
		badRead(t, s, accountLedgerPath+"?limit=0", key, "query.limit")
		badRead(t, s, accountLedgerPath+"?limit=-5", key, "query.limit")
		badRead(t, s, accountLedgerPath+"?offset=-1", key, "query.offset")
		badRead(t, s, accountLedgerPath+"?from=2026-03-15&to=2026-03-01", key, "query.from")
		read(t, s, accountLedgerPath+"?limit=100", key)
	})

	t.Run("a limit over 100 reads as 100", func(t *testing.T) {
		all := accountEntries(w, nil)
		for _, limit := range []string{"101", "5000"} {
			checkAccountLedger(t, read(t, s, accountLedgerPath+"?limit="+limit, key), w, all, 100, 0)
		}
	})

	t.Run("a limit or offset that is not an integer is one error", func(t *testing.T) {
		for _, name := range []string{"limit", "offset"} {
			p := fetch(t, s, http.MethodGet, accountLedgerPath+q(name, "abc"), key, nil).problem(t, http.StatusBadRequest, "query."+name)
			if len(p.Errors) != 1 {
				t.Errorf("%s=abc: errors %v, want one", name, p.Errors)
			}
		}
	})

	t.Run("an unknown period or a reversed range is a 400", func(t *testing.T) {
		badRead(t, s, accountUsagePath+"?period=weekly", key, "query.period")
		badRead(t, s, accountUsagePath+q("from", "2026-03-15", "to", "2026-03-01"), key, "query.from")
		badRead(t, s, accountUsagePath+q("from", "soon"), key, "query.from")
	})

	t.Run("a bad key is a 401 on every endpoint", func(t *testing.T) {
		for _, path := range []string{accountUsagePath, accountCreditsPath, accountLedgerPath, accountSummaryPath} {
			fetch(t, s, http.MethodGet, path, badKey, nil).problem(t, http.StatusUnauthorized)
		}
	})
}

// TestCompatAccountAllTime: a range has no length limit, so one query can
// ask for all the usage and every ledger entry ever recorded.
func TestCompatAccountAllTime(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(compatEpoch)
	m := newTenant(t, s, "account-all-time", "USD")
	m.grant("g", "", "100", nil)
	m.use(
		usageEv{id: "old", at: time.Date(2019, 7, 1, 0, 0, 0, 0, time.UTC), amount: "1.5"},
		usageEv{id: "new", at: at(3, 15, 11, 0), amount: "2"},
	)
	s.Sync()
	for _, c := range []struct{ from, to string }{
		{"1970-01-01T00:00:00Z", "2100-12-31T23:59:59Z"},
		{"0001-01-01", "9999-12-31"},
	} {
		t.Run(c.from+" to "+c.to, func(t *testing.T) {
			got := read(t, s, accountUsagePath+q("from", c.from, "to", c.to), m.key)
			wantInt(t, got, "total_requests", 2)
			wantNumber(t, got, "credits_consumed", "3.5")
			ledger := read(t, s, accountLedgerPath+q("from", c.from, "to", c.to), m.key)
			wantInt(t, ledger, "total", 3)
		})
	}
}

// TestCompatAccountReadsISO8601 reads from and to in the common ISO 8601
// forms: a date; a date-time with or without seconds and fractions; with
// Z, an offset or no zone (UTC).
func TestCompatAccountReadsISO8601(t *testing.T) {
	t.Parallel()
	w := buildCompatScenario(t, "account-iso")
	s, key := w.s, w.m.key
	// The capture at 12:10, adj-goodwill at 12:15 and g-legacy's expiry at
	// 12:35, in every form.
	window := accountEntries(w, func(e ledgerWant) bool {
		return !e.createdAt.Before(at(3, 15, 12, 10)) && !e.createdAt.After(at(3, 15, 12, 35))
	})
	if len(window) != 3 {
		t.Fatalf("the model has %d entries from 12:10 to 12:35, want 3", len(window))
	}
	for _, c := range []struct{ from, to string }{
		{"2026-03-15T12:10:00Z", "2026-03-15T12:35:00Z"},
		{"2026-03-15T12:10", "2026-03-15T12:35"},
		{"2026-03-15T12:10:00", "2026-03-15T12:35:00.000"},
		{"2026-03-15T12:10:00.000000+00:00", "2026-03-15T13:35:00+01:00"},
		{"2026-03-15T14:10+0200", "2026-03-15T07:35-05"},
		{"2026-03-15T12:09:59.9999999Z", "2026-03-15T12:35:00.0000009Z"},
		// A + left unescaped in a URL reaches the server as a space.
		{"2026-03-15T14:10:00 02:00", "2026-03-15T12:35:00Z"},
	} {
		t.Run(c.from+" to "+c.to, func(t *testing.T) {
			checkAccountLedger(t, read(t, s, accountLedgerPath+q("from", c.from, "to", c.to), key), w, window, 50, 0)
		})
	}
	t.Run("a start between two microseconds begins at the later one", func(t *testing.T) {
		// The capture at exactly 12:10 is before 12:10 and 100 ns.
		got := read(t, s, accountLedgerPath+q("from", "2026-03-15T12:10:00.0000001Z", "to", "2026-03-15T12:35:00Z"), key)
		checkAccountLedger(t, got, w, window[:2], 50, 0)
	})
	t.Run("a date is the whole UTC day", func(t *testing.T) {
		day := accountEntries(w, func(e ledgerWant) bool { return e.createdAt.Truncate(24 * time.Hour).Equal(at(3, 15, 0, 0)) })
		checkAccountLedger(t, read(t, s, accountLedgerPath+q("from", "2026-03-15", "to", "2026-03-15"), key), w, day, 50, 0)
	})
	t.Run("usage reads the same forms", func(t *testing.T) {
		got := read(t, s, accountUsagePath+q("from", "2026-03-10T00:00", "to", "2026-03-14T23:59:59.999999+00:00"), key)
		wantDec(t, got, "credits_consumed", dec("168.8")) // u2, u3, u-keys, u4
	})
	t.Run("a malformed time is a 400 naming its parameter", func(t *testing.T) {
		for _, bad := range []string{"2026-13-01", "2026-02-30", "yesterday", "2026-03-15T25:00", "2026-03-15T12", "2026-03-15T12:00+2", "2026-03-15T12:00:00ZZ", "15/03/2026", "2026-03-15T12:00:00.1234567891Z"} {
			badRead(t, s, accountLedgerPath+q("from", bad), key, "query.from")
			badRead(t, s, accountLedgerPath+q("to", bad), key, "query.to")
			badRead(t, s, accountUsagePath+q("from", bad), key, "query.from")
			badRead(t, s, accountUsagePath+q("to", bad), key, "query.to")
		}
		p := fetch(t, s, http.MethodGet, accountUsagePath+q("from", "soon", "to", "later"), key, nil).problem(t, http.StatusBadRequest, "query.from", "query.to")
		if len(p.Errors) != 2 {
			t.Errorf("errors %v, want one for from and one for to", p.locations())
		}
	})
}

// TestCompatAccountUsageCountsTheDaysItEchoes: usage statistics are kept
// per UTC day, so /usage counts the whole UTC days that from and to fall
// on, and period_start and period_end say so: the first and the last
// microsecond counted.
func TestCompatAccountUsageCountsTheDaysItEchoes(t *testing.T) {
	t.Parallel()
	w := buildCompatScenario(t, "account-days")
	s, key := w.s, w.m.key
	for _, c := range []struct {
		name, from, to string
		start, end     time.Time
		requests       int64
		hand           string
	}{
		// u2 at 08:30 on the 10th and u4 at 09:15 on the 14th are in.
		{"from_noon_to_8_am", "2026-03-10T12:00:00Z", "2026-03-14T08:00:00Z", at(3, 10, 0, 0), endOfUTCDay(at(3, 14, 0, 0)), 4, "168.8"},
		// u6 at 11:00, the capture at 12:10 and u7 at 13:05, to the day's end.
		{"from_noon_to_now", "2026-03-15T12:00:00Z", "", at(3, 15, 0, 0), endOfUTCDay(at(3, 15, 0, 0)), 3, "69.7"},
		{"an_offset_moves_the_day", "2026-03-10T01:00:00+02:00", "2026-03-10T01:00:00+02:00", at(3, 9, 0, 0), endOfUTCDay(at(3, 9, 0, 0)), 0, "0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			params := []string{"from", c.from}
			if c.to != "" {
				params = append(params, "to", c.to)
			}
			got := read(t, s, accountUsagePath+q(params...), key)
			checkAccountUsage(t, got, w, "monthly", c.start, c.end)
			wantInt(t, got, "total_requests", c.requests)
			wantDec(t, got, "credits_consumed", dec(c.hand))
		})
	}
}

// TestCompatAccountUsageDefaultsToThisMonth: from defaults to the start of
// the current month (the seed's words) whatever the period, which only
// names the answer; with only to given, from is still that, so a to
// before it needs a from.
func TestCompatAccountUsageDefaultsToThisMonth(t *testing.T) {
	t.Parallel()
	w := buildCompatScenario(t, "account-defaults")
	s, key := w.s, w.m.key
	monthStart, today := at(3, 1, 0, 0), at(3, 16, 0, 0).Add(-time.Microsecond)
	for _, period := range []string{"", "daily", "monthly", "yearly"} {
		t.Run("period "+period, func(t *testing.T) {
			path, want := accountUsagePath, "monthly"
			if period != "" {
				path, want = accountUsagePath+q("period", period), period
			}
			got := read(t, s, path, key)
			checkAccountUsage(t, got, w, want, monthStart, today)
			wantDec(t, got, "credits_consumed", dec("358.75")) // March: every usage but u5
		})
	}
	t.Run("to_in_this_month", func(t *testing.T) {
		got := read(t, s, accountUsagePath+q("to", "2026-03-10"), key)
		checkAccountUsage(t, got, w, "monthly", monthStart, at(3, 11, 0, 0).Add(-time.Microsecond))
		wantDec(t, got, "credits_consumed", dec("245.75")) // u1, u2, u3
	})
	t.Run("to_next_month", func(t *testing.T) {
		got := read(t, s, accountUsagePath+q("period", "daily", "to", "2026-04-10T00:00:00Z"), key)
		checkAccountUsage(t, got, w, "daily", monthStart, at(4, 11, 0, 0).Add(-time.Microsecond))
		wantDec(t, got, "credits_consumed", dec("358.75"))
	})
	t.Run("to_before_this_month_needs_from", func(t *testing.T) {
		badRead(t, s, accountUsagePath+q("to", "2026-02-20"), key, "query.from")
		got := read(t, s, accountUsagePath+q("from", "2026-02-01", "to", "2026-02-20"), key)
		wantDec(t, got, "credits_consumed", dec("150")) // u5
	})
}

// TestCompatAccountOmitsUsageWithoutEndpointFromItsMap: requests_by_endpoint
// has a key per endpoint named; usage that names none is in the totals, not
// under a "" key.
func TestCompatAccountOmitsUsageWithoutEndpointFromItsMap(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(compatEpoch)
	m := newTenant(t, s, "account-no-endpoint", "USD")
	m.grant("g", "", "100", nil)
	m.use(
		usageEv{id: "named", amount: "1", endpoint: "/v1/search"},
		usageEv{id: "unnamed", amount: "2", module: "batch"},
	)
	s.Sync()
	usage := read(t, s, accountUsagePath, m.key)
	summary := obj(t, read(t, s, accountSummaryPath, m.key)["usage_this_month"], "usage_this_month")
	for what, got := range map[string]map[string]any{"usage": usage, "summary": summary} {
		t.Run(what, func(t *testing.T) {
			wantInt(t, got, "total_requests", 2)
			wantNumber(t, got, "credits_consumed", "3")
			endpoints := obj(t, got["requests_by_endpoint"], "requests_by_endpoint")
			if len(endpoints) != 1 {
				t.Errorf("requests_by_endpoint = %v, want only /v1/search", endpoints)
			}
			wantInt(t, endpoints, "/v1/search", 1)
		})
	}
}

// TestCompatAccountLedgerKeepsOneRunningBalance: balance_after is the
// account's balance after the entry, over all its lines: down the list,
// each entry's balance_after less its amount is the next (older) one's,
// and the newest is the balance /credits reports.
func TestCompatAccountLedgerKeepsOneRunningBalance(t *testing.T) {
	t.Parallel()
	w := buildCompatScenario(t, "account-balance-after")
	s, key := w.s, w.m.key
	got := read(t, s, accountLedgerPath+"?limit=100", key)
	checkAccountLedger(t, got, w, accountEntries(w, nil), 100, 0)
	entries := list(t, got["entries"], "entries")
	wantDec(t, entries[0], "balance_after", dec("57066")) // /credits' balance, by hand
	for i := 0; i+1 < len(entries); i++ {
		after, amount := dec(fmt.Sprint(entries[i]["balance_after"])), dec(fmt.Sprint(entries[i]["amount"]))
		wantDec(t, entries[i+1], "balance_after", after.Sub(amount))
	}
	wantDec(t, entries[len(entries)-1], "balance_after", dec(fmt.Sprint(entries[len(entries)-1]["amount"])))
	t.Run("on every page and with every filter", func(t *testing.T) {
		for _, query := range []string{"?limit=3&offset=2", "?limit=4&offset=15", "?type=credit", "?type=debit&limit=4&offset=3",
			"?type=adjustment", "?from=2026-03-10&to=2026-03-14", "?type=debit&from=2026-03-15T12:00:00Z"} {
			t.Run(query, func(t *testing.T) {
				got := read(t, s, accountLedgerPath+query, key)
				keep, limit, offset := ledgerQueryModel(t, query)
				checkAccountLedger(t, got, w, accountEntries(w, keep), limit, offset)
			})
		}
	})
}

// ledgerQueryModel reads the test's own ledger query into the model's
// filter, limit and offset.
func ledgerQueryModel(t *testing.T, query string) (func(ledgerWant) bool, int, int) {
	t.Helper()
	v, err := url.ParseQuery(strings.TrimPrefix(query, "?"))
	if err != nil {
		t.Fatal(err)
	}
	limit, offset := 50, 0
	if v.Has("limit") {
		limit, _ = strconv.Atoi(v.Get("limit"))
	}
	if v.Has("offset") {
		offset, _ = strconv.Atoi(v.Get("offset"))
	}
	bound := func(name string, end bool) *time.Time {
		text := v.Get(name)
		if text == "" {
			return nil
		}
		if day, err := time.Parse(time.DateOnly, text); err == nil {
			if end {
				day = day.Add(24*time.Hour - time.Microsecond)
			}
			return &day
		}
		at, err := time.Parse(time.RFC3339Nano, text)
		if err != nil {
			t.Fatal(err)
		}
		return &at
	}
	from, to := bound("from", false), bound("to", true)
	return func(e ledgerWant) bool {
		return (v.Get("type") == "" || e.typ == v.Get("type")) && (from == nil || !e.createdAt.Before(*from)) && (to == nil || !e.createdAt.After(*to))
	}, limit, offset
}

// TestCompatAccountLedgerDatesEntriesWhenTheyHappened: the ledger and
// /usage use one time, when what an entry records happened. A debit is
// dated when its usage occurred, a reversal when the usage it reverses
// occurred (it nets there, as in /usage), every other entry when it was
// recorded; from and to select by that time and the list is newest first
// by it.
func TestCompatAccountLedgerDatesEntriesWhenTheyHappened(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(compatEpoch)
	m := newTenant(t, s, "account-dates", "USD")
	m.grant("g", "", "100", nil) // recorded at 12:00 on 15 March
	m.use(
		usageEv{id: "a", at: at(3, 10, 9, 0), amount: "10", endpoint: "/a"},
		usageEv{id: "b", at: at(3, 12, 9, 0), amount: "5", endpoint: "/b"},
	)
	s.Clock.Advance(time.Hour)
	reverse(t, s, m.key, "a") // recorded at 13:00 on 15 March

	type entry struct {
		typ, amount, after string
		at                 time.Time
	}
	check := func(t *testing.T, query string, total int, want ...entry) {
		t.Helper()
		got := read(t, s, accountLedgerPath+query, m.key)
		wantInt(t, got, "total", int64(total))
		entries := list(t, got["entries"], "entries")
		if len(entries) != len(want) {
			t.Fatalf("%d entries, want %d: %v", len(entries), len(want), entries)
		}
		for i, e := range want {
			wantString(t, entries[i], "type", e.typ)
			wantNumber(t, entries[i], "amount", e.amount)
			wantNumber(t, entries[i], "balance_after", e.after)
			wantTime(t, entries[i], "created_at", e.at)
		}
	}
	// Oldest first, the running balance: a −10, its reversal +10 (at a's
	// time, recorded after it), b −5, the grant +100 recorded on the 15th.
	grant := entry{"credit", "100", "95", at(3, 15, 12, 0)}
	debitB := entry{"debit", "-5", "-5", at(3, 12, 9, 0)}
	reversalA := entry{"adjustment", "10", "0", at(3, 10, 9, 0)}
	debitA := entry{"debit", "-10", "-10", at(3, 10, 9, 0)}
	t.Run("all", func(t *testing.T) { check(t, "", 4, grant, debitB, reversalA, debitA) })
	t.Run("the day of a", func(t *testing.T) { check(t, q("from", "2026-03-10", "to", "2026-03-10"), 2, reversalA, debitA) })
	t.Run("the day of the reversal", func(t *testing.T) { check(t, q("from", "2026-03-15", "to", "2026-03-15"), 1, grant) })
	t.Run("debits from the 11th", func(t *testing.T) { check(t, q("type", "debit", "from", "2026-03-11T00:00"), 1, debitB) })
	t.Run("adjustments", func(t *testing.T) { check(t, q("type", "adjustment"), 1, reversalA) })
	t.Run("a partial day", func(t *testing.T) {
		check(t, q("from", "2026-03-10T08:00:00Z", "to", "2026-03-12T09:00:00Z"), 3, debitB, reversalA, debitA)
	})

	t.Run("the ledger's usage and reversals add up to /usage's credits", func(t *testing.T) {
		for _, r := range [][2]string{{"2026-03-10", "2026-03-10"}, {"2026-03-01", "2026-03-15"}, {"2026-03-12", "2026-03-31"}} {
			usage := read(t, s, accountUsagePath+q("from", r[0], "to", r[1]), m.key)
			ledger := read(t, s, accountLedgerPath+q("from", r[0], "to", r[1]), m.key)
			sum := decimal.Zero
			for _, e := range list(t, ledger["entries"], "entries") {
				if e["type"] != "credit" {
					sum = sum.Add(dec(fmt.Sprint(e["amount"])))
				}
			}
			wantDec(t, usage, "credits_consumed", sum.Neg())
		}
	})
}

// TestCompatAccountIgnoresUnknownQueryParameters: a client's own
// parameters (a cache buster, tracking) change nothing in the answer.
func TestCompatAccountIgnoresUnknownQueryParameters(t *testing.T) {
	t.Parallel()
	w := buildCompatScenario(t, "account-extra-params")
	for _, path := range []string{accountUsagePath, accountUsagePath + q("from", "2026-03-01", "period", "daily"), accountCreditsPath,
		accountLedgerPath, accountLedgerPath + q("type", "debit", "limit", "3"), accountSummaryPath} {
		t.Run(path, func(t *testing.T) {
			wantSameAnswer(t, w, path, path+sep(path)+"_=123&utm_source=x")
		})
	}
}

// TestCompatAccountAvailableIsSpendableNow: available is what the account
// can use now, as lantern's remaining_credits: a grant not yet in effect is
// in the balance (and the ledger) but not available until its effective_at.
func TestCompatAccountAvailableIsSpendableNow(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(compatEpoch)
	m := newTenant(t, s, "account-available", "USD")
	m.grant("now", "", "100", nil)
	m.grant("next-year", "", "50", map[string]any{"effective_at": "2027-01-01T00:00:00Z"})
	m.grant("half-past", "keys", "7", map[string]any{"effective_at": "2026-03-15T12:30:00Z"})
	m.use(usageEv{id: "u", amount: "10"})
	m.reserve(usageEv{id: "hold", amount: "5"})
	s.Sync()
	check := func(t *testing.T, balance, available string) {
		t.Helper()
		for what, got := range map[string]map[string]any{"credits": read(t, s, accountCreditsPath, m.key),
			"summary": obj(t, read(t, s, accountSummaryPath, m.key)["credit_balance"], "credit_balance")} {
			t.Run(what, func(t *testing.T) {
				wantNumber(t, got, "balance", balance)
				wantNumber(t, got, "reserved", "5")
				wantNumber(t, got, "available", available)
			})
		}
	}
	// By hand: 157 granted − 10 used; 100 − 10 − 5 held can be used now.
	check(t, "147", "85")
	s.Clock.Set(time.Date(2026, 3, 15, 12, 30, 0, 0, time.UTC))
	check(t, "147", "92")
}
