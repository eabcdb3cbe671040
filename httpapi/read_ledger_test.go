package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/internal/stack"
)

// TestReadLedger checks GET /v1/ledger: entry types and contents, order,
// the balance_after chain, every filter, limit and offset bounds, and
// cursor paging.
func TestReadLedger(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(readEpoch)
	m := newTenant(t, s, "ledger", "USD")
	day15, day16, day17 := readEpoch, readEpoch.Add(24*time.Hour), readEpoch.Add(48*time.Hour)
	at := func(day time.Time, minutes int) { s.Clock.Set(day.Add(time.Duration(minutes) * time.Minute)) }

	at(day15, 1)
	m.grant("g1", "", "100", map[string]any{"description": "starter", "reference": "PO-1", "metadata": map[string]string{"plan": "pro"}})
	at(day15, 2)
	m.grant("g2", "gpu", "50", nil)
	at(day15, 3)
	m.use(usageEv{id: "u1", amount: "10", module: "search", endpoint: "/q", user: "u-1", custom: map[string]string{"region": "eu"}})
	at(day15, 4)
	m.use(usageEv{id: "u2", amount: "5", description: "manual"})
	at(day16, 1)
	m.adjust("a1", "default", "7", "bonus", "CS-7")
	at(day16, 2)
	m.use(usageEv{id: "u3", creditType: "gpu", amount: "3", module: "render"})
	at(day16, 3)
	m.grant("g3", "", "20", map[string]any{"expires_at": day16.Add(time.Hour).Format(time.RFC3339)})
	at(day16, 4)
	m.use(usageEv{id: "u4", amount: "2", endpoint: "/x"}) // from g3, which expires first: 18 left
	m.expire("default", "g3", "18", day17)
	at(day17, 1)
	m.adjust("a2", "default", "-4", "fix", "")
	at(day17, 2)
	m.reserve(usageEv{id: "r1", amount: "6", module: "batch", service: "jobs"})
	at(day17, 3)
	m.capture("r1", "6")
	at(day17, 4)
	m.use(usageEv{id: "u5", amount: "0", module: "free"}) // no movement, no entry
	s.Sync()
	all := newestFirst(m.ledger, nil)
	if len(all) != 11 {
		t.Fatalf("the model has %d entries, want 11", len(all))
	}
	// By hand: the default line ends at 100 − 10 − 5 + 7 + 20 − 2 − 18 − 4 − 6.
	if all[0].after.String() != "82" || all[0].typ != "debit" || all[0].sourceID != "r1" {
		t.Fatalf("model's newest entry: %+v", all[0])
	}

	// A second tenant with many entries at one instant, for the default
	// limit and for paging through ties.
	bulk := newTenant(t, s, "bulk", "USD")
	bulk.grant("bulk-grant", "", "1000", nil)
	s.Clock.Advance(time.Minute)
	var batch []usageEv
	for i := range 60 {
		batch = append(batch, usageEv{id: fmt.Sprintf("b%02d", i), amount: "1.5", module: "m"})
	}
	bulk.use(batch...)
	s.Sync()
	bulkAll := newestFirst(bulk.ledger, nil)

	// page reads one page and checks its envelope.
	page := func(t *testing.T, key, query string, total, limit, offset int) ([]map[string]any, string) {
		t.Helper()
		got := read(t, s, "/v1/ledger"+query, key)
		wantInt(t, got, "total", int64(total))
		wantInt(t, got, "limit", int64(limit))
		wantInt(t, got, "offset", int64(offset))
		cursor, _ := got["next_cursor"].(string)
		return list(t, got["entries"], "entries"), cursor
	}
	wantEntries := func(t *testing.T, got []map[string]any, want []ledgerWant) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%d entries, want %d", len(got), len(want))
		}
		for i := range want {
			checkLedgerEntry(t, got[i], want[i])
		}
	}
	filter := func(keep func(ledgerWant) bool) []ledgerWant { return newestFirst(m.ledger, keep) }
	ofType := func(types ...string) func(ledgerWant) bool {
		return func(e ledgerWant) bool {
			for _, ty := range types {
				if e.typ == ty {
					return true
				}
			}
			return false
		}
	}
	between := func(from, to time.Time) func(ledgerWant) bool {
		return func(e ledgerWant) bool { return !e.createdAt.Before(from) && !e.createdAt.After(to) }
	}

	t.Run("every movement is listed newest first with its type, amount, source and balance after it", func(t *testing.T) {
		got, cursor := page(t, m.key, "", 11, 50, 0)
		if cursor != "" {
			t.Errorf("next_cursor %q on the only page", cursor)
		}
		wantEntries(t, got, all)
		types := map[string]int{}
		for _, e := range got {
			types[e["type"].(string)]++
		}
		if fmt.Sprint(types) != "map[adjustment:2 credit:3 debit:5 expiry:1]" {
			t.Errorf("types %v", types)
		}
	})

	t.Run("each entry's balance_after is the previous one's plus its amount on the same line", func(t *testing.T) {
		got, _ := page(t, m.key, "", 11, 50, 0)
		after := map[string]decimal.Decimal{}
		ids := map[string]bool{}
		var prevAt time.Time
		for i := len(got) - 1; i >= 0; i-- {
			e := got[i]
			id := e["id"].(json.Number).String()
			if ids[id] {
				t.Errorf("id %s twice", id)
			}
			ids[id] = true
			created, _ := time.Parse(time.RFC3339Nano, e["created_at"].(string))
			if created.Before(prevAt) {
				t.Errorf("entry %s at %s is older than the one before it in time (%s)", id, created, prevAt)
			}
			prevAt = created
			ct := e["credit_type"].(string)
			amount := dec(e["amount"].(json.Number).String())
			want := after[ct].Add(amount)
			wantDec(t, e, "balance_after", want)
			after[ct] = want
		}
		// And the chains end at the lines' balances.
		for ct, l := range m.lines {
			if !after[ct].Equal(l.balance()) {
				t.Errorf("%s chain ends at %s, balance %s", ct, after[ct], l.balance())
			}
		}
	})

	t.Run("a type filter keeps only that type", func(t *testing.T) {
		for _, ty := range []string{"credit", "debit", "adjustment", "expiry"} {
			want := filter(ofType(ty))
			got, _ := page(t, m.key, "?type="+ty, len(want), 50, 0)
			wantEntries(t, got, want)
		}
	})

	t.Run("a comma list or a repeated type keeps any of those types", func(t *testing.T) {
		want := filter(ofType("credit", "expiry"))
		got, _ := page(t, m.key, "?type=credit,expiry", len(want), 50, 0)
		wantEntries(t, got, want)
		want = filter(ofType("adjustment", "debit"))
		got, _ = page(t, m.key, "?type=adjustment&type=debit", len(want), 50, 0)
		wantEntries(t, got, want)
	})

	t.Run("a credit_type filter keeps only that line", func(t *testing.T) {
		want := filter(func(e ledgerWant) bool { return e.creditType == "gpu" })
		got, _ := page(t, m.key, "?credit_type=gpu", 2, 50, 0)
		wantEntries(t, got, want)
		page(t, m.key, "?credit_type=tokens", 0, 50, 0)
	})

	t.Run("from and to as dates cover whole UTC days", func(t *testing.T) {
		endOf := func(d time.Time) time.Time { return d.Truncate(24 * time.Hour).Add(24*time.Hour - time.Microsecond) }
		for _, c := range []struct {
			query    string
			from, to time.Time
		}{
			{"?from=2026-03-16&to=2026-03-16", day16.Truncate(24 * time.Hour), endOf(day16)},
			{"?from=2026-03-17", day17.Truncate(24 * time.Hour), endOf(day17)},
			{"?to=2026-03-15", day15.Add(-24 * time.Hour), endOf(day15)},
			{"?from=2026-03-15&to=2026-03-16", day15.Truncate(24 * time.Hour), endOf(day16)},
		} {
			want := filter(between(c.from, c.to))
			got, _ := page(t, m.key, c.query, len(want), 50, 0)
			wantEntries(t, got, want)
		}
	})

	t.Run("from and to as RFC 3339 instants are inclusive", func(t *testing.T) {
		from, to := day16.Add(2*time.Minute), day16.Add(4*time.Minute) // u3 .. u4
		want := filter(between(from, to))
		if len(want) != 3 {
			t.Fatalf("%d expected entries", len(want))
		}
		got, _ := page(t, m.key, q("from", from.Format(time.RFC3339), "to", to.Format(time.RFC3339)), 3, 50, 0)
		wantEntries(t, got, want)
		// The same instants written in +02:00.
		zone := time.FixedZone("", 2*3600)
		got, _ = page(t, m.key, q("from", from.In(zone).Format(time.RFC3339), "to", to.In(zone).Format(time.RFC3339)), 3, 50, 0)
		wantEntries(t, got, want)
		// One microsecond later from drops u3.
		got, _ = page(t, m.key, q("from", from.Add(time.Microsecond).Format(time.RFC3339Nano), "to", to.Format(time.RFC3339)), 2, 50, 0)
		wantEntries(t, got, want[:2])
	})

	t.Run("instants inside days count the partial days at both ends and the whole days between", func(t *testing.T) {
		for _, c := range []struct{ from, to time.Time }{
			{day15.Add(3 * time.Minute), day17.Add(2 * time.Minute)},                  // u1 .. r1's hold
			{day15.Add(4*time.Minute + time.Second), day17.Add(time.Minute)},          // after u2 .. a2
			{day15.Add(-time.Hour), day16.Add(2 * time.Minute)},                       // g1 .. u3
			{day16.Add(3 * time.Minute), day16.Add(3 * time.Minute)},                  // g3 alone
			{day17.Add(-time.Microsecond), day17.Add(24 * time.Hour)},                 // the expiry onwards
			{day16.Add(-24 * time.Hour).Add(-time.Microsecond), day16.Add(time.Hour)}, // the whole of the 15th .. a1
		} {
			want := filter(between(c.from, c.to))
			got, _ := page(t, m.key, q("from", c.from.Format(time.RFC3339Nano), "to", c.to.Format(time.RFC3339Nano)), len(want), 50, 0)
			wantEntries(t, got, want)
			// The same with a type filter, and with one bound only.
			debits := filter(func(e ledgerWant) bool { return e.typ == "debit" && between(c.from, c.to)(e) })
			page(t, m.key, q("type", "debit", "from", c.from.Format(time.RFC3339Nano), "to", c.to.Format(time.RFC3339Nano)), len(debits), 50, 0)
			since := filter(func(e ledgerWant) bool { return !e.createdAt.Before(c.from) })
			got, _ = page(t, m.key, q("from", c.from.Format(time.RFC3339Nano)), len(since), 50, 0)
			wantEntries(t, got, since)
			until := filter(func(e ledgerWant) bool { return !e.createdAt.After(c.to) })
			got, _ = page(t, m.key, q("to", c.to.Format(time.RFC3339Nano)), len(until), 50, 0)
			wantEntries(t, got, until)
		}
	})

	t.Run("filters combine", func(t *testing.T) {
		want := filter(func(e ledgerWant) bool {
			return e.typ == "debit" && e.creditType == "default" && !e.createdAt.Before(day16.Truncate(24*time.Hour))
		})
		got, _ := page(t, m.key, "?type=debit&credit_type=default&from=2026-03-16", len(want), 50, 0)
		wantEntries(t, got, want)
	})

	t.Run("the default limit is 50 and limit 100 is allowed", func(t *testing.T) {
		if len(bulkAll) != 61 {
			t.Fatalf("bulk model has %d entries", len(bulkAll))
		}
		got, cursor := page(t, bulk.key, "", 61, 50, 0)
		wantEntries(t, got, bulkAll[:50])
		if cursor == "" {
			t.Error("no next_cursor on a full page")
		}
		got, cursor = page(t, bulk.key, "?limit=100", 61, 100, 0)
		wantEntries(t, got, bulkAll)
		if cursor != "" {
			t.Errorf("next_cursor %q on the last page", cursor)
		}
	})

	t.Run("a limit outside 1 to 100 is a 400 naming query.limit", func(t *testing.T) {
		for _, limit := range []string{"101", "0", "-1", "ten", "1.5"} {
			badRead(t, s, "/v1/ledger?limit="+limit, m.key, "query.limit")
		}
	})

	t.Run("offset pages from the newest entry", func(t *testing.T) {
		got, _ := page(t, m.key, "?limit=3&offset=3", 11, 3, 3)
		wantEntries(t, got, all[3:6])
		got, _ = page(t, m.key, "?offset=10", 11, 50, 10)
		wantEntries(t, got, all[10:])
		got, _ = page(t, m.key, "?limit=5&offset=9", 11, 5, 9)
		wantEntries(t, got, all[9:])
	})

	t.Run("an offset at or past the total gives no entries and the same total", func(t *testing.T) {
		got, cursor := page(t, m.key, "?offset=11", 11, 50, 11)
		if len(got) != 0 || cursor != "" {
			t.Errorf("offset=total: %d entries, cursor %q", len(got), cursor)
		}
		got, _ = page(t, m.key, "?offset=500&type=debit", 5, 50, 500)
		if len(got) != 0 {
			t.Errorf("offset past the total: %d entries", len(got))
		}
	})

	t.Run("a negative or non-integer offset is a 400 naming query.offset", func(t *testing.T) {
		badRead(t, s, "/v1/ledger?offset=-1", m.key, "query.offset")
		badRead(t, s, "/v1/ledger?offset=x", m.key, "query.offset")
	})

	// walk follows next_cursor from the first page and returns every entry.
	walk := func(t *testing.T, key, query string, limit, total int) []map[string]any {
		t.Helper()
		var out []map[string]any
		got, cursor := page(t, key, fmt.Sprintf("?limit=%d%s", limit, query), total, limit, 0)
		out = append(out, got...)
		for pages := 1; cursor != ""; pages++ {
			if pages > total+1 {
				t.Fatalf("more than %d pages", pages)
			}
			got, cursor = page(t, key, fmt.Sprintf("?limit=%d%s&cursor=%s", limit, query, cursor), total, limit, 0)
			if len(got) > limit {
				t.Fatalf("%d entries on a page of %d", len(got), limit)
			}
			if len(got) < limit && cursor != "" {
				t.Errorf("next_cursor on a short page")
			}
			out = append(out, got...)
		}
		return out
	}

	t.Run("the cursor walks every entry exactly once, newest first", func(t *testing.T) {
		got := walk(t, m.key, "", 3, 11)
		wantEntries(t, got, all)
	})

	t.Run("the cursor walks entries that share one instant exactly once", func(t *testing.T) {
		got := walk(t, bulk.key, "", 7, 61)
		wantEntries(t, got, bulkAll)
		// A limit that divides the total: the last full page still has a
		// cursor, and it leads to an empty page.
		got = walk(t, bulk.key, "", 61, 61)
		wantEntries(t, got, bulkAll)
	})

	t.Run("the cursor keeps the filters", func(t *testing.T) {
		want := filter(ofType("debit"))
		got := walk(t, m.key, "&type=debit", 2, len(want))
		wantEntries(t, got, want)
		want = filter(func(e ledgerWant) bool {
			return e.creditType == "default" && !e.createdAt.Before(day16.Truncate(24*time.Hour))
		})
		got = walk(t, m.key, "&credit_type=default&from=2026-03-16", 2, len(want))
		wantEntries(t, got, want)
	})

	t.Run("a cursor the API did not return is a 400 naming query.cursor", func(t *testing.T) {
		for _, c := range []string{"!!!", "Zm9v", "MTIz", "YS5i"} { // not base64, "foo", "123", "a.b"
			badRead(t, s, "/v1/ledger?cursor="+c, m.key, "query.cursor")
		}
	})

	t.Run("from after to is a 400", func(t *testing.T) {
		badRead(t, s, "/v1/ledger?from=2026-03-17&to=2026-03-16", m.key, "query.from")
		badRead(t, s, "/v1/ledger"+q("from", day16.Add(time.Second).Format(time.RFC3339), "to", day16.Format(time.RFC3339)), m.key, "query.from")
	})

	t.Run("a bad type, date or credit type is a 400 naming the parameter", func(t *testing.T) {
		badRead(t, s, "/v1/ledger?type=refund", m.key, "query.type")
		badRead(t, s, "/v1/ledger?type=debit,refund", m.key, "query.type")
		badRead(t, s, "/v1/ledger?from=16-03-2026", m.key, "query.from")
		badRead(t, s, "/v1/ledger?to=tomorrow", m.key, "query.to")
		badRead(t, s, "/v1/ledger?credit_type=a%20b", m.key, "query.credit_type")
	})

	t.Run("an unknown parameter is a 400 naming it", func(t *testing.T) {
		badRead(t, s, "/v1/ledger?page=2", m.key, "query.page")
		fetch(t, s, http.MethodGet, "/v1/ledger?sort=asc", m.key, nil).problem(t, http.StatusBadRequest, "query.sort")
	})
}
