package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/internal/stack"
)

// Helpers of the compatibility-profile tests (compat_*_test.go): the shape
// of each answer held against a golden skeleton under testdata/compat, an
// independent model of the grants' burn-down, and one scenario that every
// profile test builds through the native write API.

// update rewrites the golden skeletons from the live answers:
//
//	go test ./httpapi/ -run TestCompat -update
//
// A member the old golden types "number" stays "number" when the live value
// happens to be whole: the goldens carry the seeds' types, and a float field
// of a seed may hold a whole value in one scenario.
var update = flag.Bool("update", false, "rewrite testdata/compat/**.golden.json from the live compat answers")

const compatGoldenDir = "testdata/compat"

// compatEpoch is the fixed "now" the compat scenarios start at.
var compatEpoch = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// ---- shapes ----

// freeKeyMaps are members whose keys are data (module names, user ids,
// endpoints, metadata keys, a tenant's own configuration): their skeleton
// is "object", whatever keys they hold.
var freeKeyMaps = map[string]bool{"by_module": true, "by_user": true, "requests_by_endpoint": true, "metadata": true, "currency_config": true}

func integralNumber(n json.Number) bool { return !strings.ContainsAny(n.String(), ".eE") }

// shapeOf is the skeleton of a decoded JSON value (numbers as json.Number):
// every member mapped to its JSON type, arrays described by their first
// element, free-key maps as "object".
func shapeOf(v any, member string) any {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if integralNumber(x) {
			return "integer"
		}
		return "number"
	case []any:
		if len(x) == 0 {
			return []any{}
		}
		// The elements are not the member: lasso's by_module is a list of
		// {module_key, total}, its daily[].by_module a free-key map.
		return []any{shapeOf(x[0], "")}
	case map[string]any:
		if freeKeyMaps[member] {
			return "object"
		}
		out := map[string]any{}
		for k, e := range x {
			out[k] = shapeOf(e, k)
		}
		return out
	}
	panic(fmt.Sprintf("shapeOf: unexpected %T", v))
}

// keepNumbers keeps the old golden's "number" where the new skeleton says
// "integer" (a whole value of a float field).
func keepNumbers(newShape, old any) any {
	switch n := newShape.(type) {
	case string:
		if n == "integer" && old == "number" {
			return "number"
		}
		return n
	case []any:
		o, ok := old.([]any)
		if len(n) == 1 && ok && len(o) == 1 {
			return []any{keepNumbers(n[0], o[0])}
		}
		return n
	case map[string]any:
		o, _ := old.(map[string]any)
		out := map[string]any{}
		for k, v := range n {
			out[k] = keepNumbers(v, o[k])
		}
		return out
	}
	return newShape
}

// conform lists where live does not have the golden's shape. A golden
// "number" takes any JSON number, "integer" only a whole one; a golden
// object wants exactly its members; a golden array's element describes
// every element of the live array.
func conform(path string, golden, live any) []string {
	switch g := golden.(type) {
	case string:
		got := "?"
		switch x := live.(type) {
		case nil:
			got = "null"
		case bool:
			got = "boolean"
		case string:
			got = "string"
		case json.Number:
			got = "number"
			if integralNumber(x) {
				got = "integer"
			}
		case []any:
			got = "array"
		case map[string]any:
			got = "object"
		}
		if got == g || (g == "number" && got == "integer") {
			return nil
		}
		return []string{fmt.Sprintf("%s is %s (%v), the golden says %s", path, got, live, g)}
	case []any:
		items, ok := live.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s is %T, the golden says array", path, live)}
		}
		if len(g) == 0 {
			return nil
		}
		if len(items) == 0 {
			return []string{fmt.Sprintf("%s is empty: the scenario must fill it to check its elements", path)}
		}
		var out []string
		for i, it := range items {
			out = append(out, conform(fmt.Sprintf("%s[%d]", path, i), g[0], it)...)
		}
		return out
	case map[string]any:
		m, ok := live.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s is %T (%v), the golden says an object with %v", path, live, live, sortedKeys(g))}
		}
		var out []string
		for _, k := range sortedKeys(g) {
			v, present := m[k]
			if !present {
				out = append(out, fmt.Sprintf("%s.%s is missing", path, k))
				continue
			}
			out = append(out, conform(path+"."+k, g[k], v)...)
		}
		for _, k := range sortedKeys(m) {
			if _, known := g[k]; !known {
				out = append(out, fmt.Sprintf("%s.%s is not in the golden (value %v)", path, k, m[k]))
			}
		}
		return out
	}
	return []string{fmt.Sprintf("%s: the golden holds %T", path, golden)}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func decodeAny(t *testing.T, data []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return v
}

// checkShape holds a 200 answer against testdata/compat/<profile>/<endpoint>.golden.json
// (rewritten first with -update).
func checkShape(t *testing.T, profile, endpoint string, r response) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("%s %s: status %d: %s", profile, endpoint, r.Status, r.Body)
	}
	live := decodeAny(t, r.Body)
	path := filepath.Join(compatGoldenDir, profile, endpoint+".golden.json")
	if *update {
		var old any
		if data, err := os.ReadFile(path); err == nil {
			old = decodeAny(t, data)
		} else {
			t.Logf("%s is new: check it against the seed by hand; a whole value of a float field reads \"integer\"", path)
		}
		data, err := json.MarshalIndent(keepNumbers(shapeOf(live, ""), old), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s: %v (run with -update to create it)", path, err)
	}
	for _, msg := range conform("$", decodeAny(t, data), live) {
		t.Errorf("%s/%s: %s", profile, endpoint, msg)
	}
}

// ---- an independent model of the grants ----

// bookGrant is one grant as the model burns it.
type bookGrant struct {
	id, ct            string
	amount, remaining decimal.Decimal
	priority          int
	effective         time.Time
	expires           *time.Time
	expired           bool
	expiredAmount     decimal.Decimal
	order             int
	// held is the part of remaining open holds pinned: it neither pays
	// for other debits nor expires.
	held decimal.Decimal
}

// bookPin is the part of a hold pinned to one grant (nil: to no grant).
type bookPin struct {
	g      *bookGrant
	amount decimal.Decimal
}

func (g *bookGrant) activeAt(now time.Time) bool {
	return !g.expired && !now.Before(g.effective) && (g.expires == nil || now.Before(*g.expires))
}

// grantBook follows domain/README.md: debits burn the active grants by
// priority, then earliest expiry (none last), then the order granted; the
// rest falls to the unallocated balance. Positive adjustments are
// unallocated; negative ones take the unallocated balance first.
//
// A hold pins the credits it holds to the grants that would pay for it
// when it is made, in burn order; its capture spends those pins, and a
// grant's expiry takes only what no hold pinned.
type grantBook struct {
	grants      []*bookGrant
	unallocated map[string]decimal.Decimal
	pins        map[string][]bookPin
	// holdEnds is when each open hold's TTL ends.
	holdEnds map[string]time.Time
}

func newGrantBook() *grantBook {
	return &grantBook{unallocated: map[string]decimal.Decimal{}, pins: map[string][]bookPin{}, holdEnds: map[string]time.Time{}}
}

// pin pins a hold of amount made at now, held for ttl.
func (b *grantBook) pin(id, ct string, amount decimal.Decimal, now time.Time, ttl time.Duration) {
	b.holdEnds[id] = now.Add(ttl)
	left := amount
	for _, g := range b.burnOrder(ct, now) {
		free := g.remaining.Sub(g.held)
		if !left.IsPositive() || !free.IsPositive() {
			continue
		}
		n := decimal.Min(free, left)
		g.held = g.held.Add(n)
		b.pins[id] = append(b.pins[id], bookPin{g, n})
		left = left.Sub(n)
	}
	if left.IsPositive() {
		b.pins[id] = append(b.pins[id], bookPin{nil, left})
	}
}

// capture spends amount of hold id from its pins in order and unpins the
// rest (the scenarios capture before any pinned grant expires).
func (b *grantBook) capture(id, ct string, amount decimal.Decimal) {
	ct = ctOr(ct)
	left := amount
	for _, p := range b.pins[id] {
		n := decimal.Min(p.amount, left)
		left = left.Sub(n)
		if p.g == nil {
			b.unallocated[ct] = b.unallocated[ct].Sub(n)
			continue
		}
		p.g.held = p.g.held.Sub(p.amount)
		p.g.remaining = p.g.remaining.Sub(n)
	}
	delete(b.pins, id)
	delete(b.holdEnds, id)
}

func (b *grantBook) add(id, ct string, amount decimal.Decimal, priority int, effective time.Time, expires *time.Time) {
	b.grants = append(b.grants, &bookGrant{id: id, ct: ctOr(ct), amount: amount, remaining: amount, priority: priority,
		effective: effective, expires: expires, order: len(b.grants)})
}

func (b *grantBook) burnOrder(ct string, now time.Time) []*bookGrant {
	var out []*bookGrant
	for _, g := range b.grants {
		if g.ct == ctOr(ct) && g.activeAt(now) {
			out = append(out, g)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, c := out[i], out[j]
		if a.priority != c.priority {
			return a.priority < c.priority
		}
		switch {
		case a.expires != nil && c.expires != nil && !a.expires.Equal(*c.expires):
			return a.expires.Before(*c.expires)
		case a.expires != nil && c.expires == nil:
			return true
		case a.expires == nil && c.expires != nil:
			return false
		}
		return a.order < c.order
	})
	return out
}

// take burns amount from the active grants and returns what they could not cover.
func (b *grantBook) take(ct string, amount decimal.Decimal, now time.Time) decimal.Decimal {
	for _, g := range b.burnOrder(ct, now) {
		if !amount.IsPositive() {
			break
		}
		n := decimal.Min(g.remaining.Sub(g.held), amount)
		g.remaining = g.remaining.Sub(n)
		amount = amount.Sub(n)
	}
	return amount
}

func (b *grantBook) debit(ct string, amount decimal.Decimal, now time.Time) {
	ct = ctOr(ct)
	b.unallocated[ct] = b.unallocated[ct].Sub(b.take(ct, amount, now))
}

func (b *grantBook) adjust(ct string, amount decimal.Decimal, now time.Time) {
	ct = ctOr(ct)
	if !amount.IsNegative() {
		b.unallocated[ct] = b.unallocated[ct].Add(amount)
		return
	}
	need := amount.Neg()
	if u := b.unallocated[ct]; u.IsPositive() {
		n := decimal.Min(u, need)
		b.unallocated[ct] = u.Sub(n)
		need = need.Sub(n)
	}
	b.unallocated[ct] = b.unallocated[ct].Sub(b.take(ct, need, now))
}

// expireDue releases the holds past their TTL, then expires the grants due
// at now, and returns the grants that lost credits, each with what it lost
// now: the unpinned remainder at its expiry, and what a hold's end gives
// back to a grant already expired.
func (b *grantBook) expireDue(now time.Time) []*bookGrant {
	lost := map[*bookGrant]decimal.Decimal{}
	for _, id := range slices.Sorted(maps.Keys(b.holdEnds)) {
		if now.Before(b.holdEnds[id]) {
			continue
		}
		for _, p := range b.pins[id] {
			if p.g == nil {
				continue
			}
			p.g.held = p.g.held.Sub(p.amount)
			if p.g.expired {
				p.g.remaining = p.g.remaining.Sub(p.amount)
				lost[p.g] = lost[p.g].Add(p.amount)
			}
		}
		delete(b.pins, id)
		delete(b.holdEnds, id)
	}
	for _, g := range b.grants {
		if !g.expired && g.expires != nil && !now.Before(*g.expires) {
			g.expired = true
			lost[g] = lost[g].Add(g.remaining.Sub(g.held))
			g.remaining = g.held
		}
	}
	var out []*bookGrant
	for _, g := range b.grants {
		if n, ok := lost[g]; ok && n.IsPositive() {
			g.expiredAmount = n
			out = append(out, g)
		}
	}
	return out
}

// activeTotals is one line's active grants: original total, burned, left.
type activeTotals struct{ total, used, remaining decimal.Decimal }

func (b *grantBook) active(now time.Time) map[string]*activeTotals {
	out := map[string]*activeTotals{}
	for _, g := range b.grants {
		if !g.activeAt(now) {
			continue
		}
		a := out[g.ct]
		if a == nil {
			a = &activeTotals{}
			out[g.ct] = a
		}
		a.total = a.total.Add(g.amount)
		a.used = a.used.Add(g.amount.Sub(g.remaining))
		a.remaining = a.remaining.Add(g.remaining)
	}
	return out
}

// ---- the scenario ----

// subModel is a subscription as the test started it.
type subModel struct {
	id, ct         string
	credits, price decimal.Decimal
	currency       string
	starts         time.Time
	rollover       bool
	cancelAt       *time.Time
}

// periodStart is the start of period n (the scenario's start day exists in every month).
func (s subModel) periodStart(n int) time.Time { return s.starts.AddDate(0, n, 0) }

// currentPeriod is the period holding now.
func (s subModel) currentPeriod(now time.Time) (time.Time, time.Time) {
	n := 0
	for !s.periodStart(n + 1).After(now) {
		n++
	}
	return s.periodStart(n), s.periodStart(n + 1)
}

// compatWorld is a tenant driven through the native write API, with the
// models that give every expected number.
type compatWorld struct {
	t    *testing.T
	s    *stack.Stack
	m    *tenantModel
	book *grantBook
	subs []*subModel
	// currencyConfig is what PUT /v1/settings stored, as sent.
	currencyConfig map[string]any
}

func newCompatWorld(t *testing.T, s *stack.Stack, name, currency string) *compatWorld {
	t.Helper()
	return &compatWorld{t: t, s: s, m: newTenant(t, s, name, currency), book: newGrantBook()}
}

func (w *compatWorld) now() time.Time { return w.m.now() }

// settings sets the display currency and currency_config.
func (w *compatWorld) settings(currency string, config map[string]any) {
	w.t.Helper()
	body := fetch(w.t, w.s, http.MethodPut, "/v1/settings", w.m.key, map[string]any{"currency": currency, "currency_config": config}).want(w.t, http.StatusOK)
	w.m.position(body)
	w.m.currency, w.currencyConfig = currency, config
}

func timeField(t *testing.T, extra map[string]any, name string) *time.Time {
	t.Helper()
	text, _ := extra[name].(string)
	if text == "" {
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, text)
	if err != nil {
		t.Fatalf("%s %q: %v", name, text, err)
	}
	return &v
}

// grant grants through the API; extra holds body fields (expires_at,
// effective_at, priority, cost_per_credit, metadata...).
func (w *compatWorld) grant(id, ct, amount string, extra map[string]any) {
	w.t.Helper()
	effective := w.now()
	if at := timeField(w.t, extra, "effective_at"); at != nil {
		effective = *at
	}
	priority, _ := extra["priority"].(int)
	w.book.add(id, ct, dec(amount), priority, effective, timeField(w.t, extra, "expires_at"))
	w.m.grant(id, ct, amount, extra)
}

// subscribe starts a monthly subscription; the periods already started are
// allocated at once.
func (w *compatWorld) subscribe(sub subModel) {
	w.t.Helper()
	body := map[string]any{"subscription_id": sub.id, "credits_per_period": sub.credits.String(), "period": "monthly",
		"starts_at": sub.starts.Format(time.RFC3339), "rollover": sub.rollover,
		"price": map[string]any{"amount": sub.price.String(), "currency": sub.currency}}
	if sub.ct != "" {
		body["credit_type"] = sub.ct
	}
	got := fetch(w.t, w.s, http.MethodPost, "/v1/subscriptions", w.m.key, body).want(w.t, http.StatusCreated)
	p := w.m.position(got)
	now := w.now()
	l := w.m.line(sub.ct)
	for n := 0; !sub.periodStart(n).After(now); n++ {
		start, end := sub.periodStart(n), sub.periodStart(n+1)
		var expires *time.Time
		if !sub.rollover {
			expires = &end
		}
		grantID := fmt.Sprintf("subscription:%s:%d", sub.id, n)
		w.book.add(grantID, sub.ct, sub.credits, 0, start, expires)
		l.granted = l.granted.Add(sub.credits)
		w.m.addLedger(sub.ct, "credit", sub.credits, grantID, fmt.Sprintf("subscription %s, period %d", sub.id, n+1), "", nil, p)
	}
	l.lastUpdated = now
	s := sub
	w.subs = append(w.subs, &s)
}

// cancel cancels a subscription at the end of its current period.
func (w *compatWorld) cancel(id string) {
	w.t.Helper()
	for _, sub := range w.subs {
		if sub.id != id {
			continue
		}
		w.m.position(fetch(w.t, w.s, http.MethodDelete, "/v1/subscriptions/"+id, w.m.key, nil).want(w.t, http.StatusOK))
		_, end := sub.currentPeriod(w.now())
		sub.cancelAt = &end
		w.m.line(sub.ct).lastUpdated = w.now()
		return
	}
	w.t.Fatalf("no subscription %s", id)
}

func (w *compatWorld) use(events ...usageEv) {
	w.t.Helper()
	for _, e := range events {
		w.book.debit(e.creditType, dec(e.amount), w.now())
	}
	w.m.use(events...)
}

func (w *compatWorld) reserve(e usageEv) {
	w.t.Helper()
	w.book.pin(e.id, e.creditType, dec(e.amount), w.now(), 7*24*time.Hour) // tenantModel.reserve's TTL
	w.m.reserve(e)
}

func (w *compatWorld) capture(id, amount string) {
	w.t.Helper()
	w.book.capture(id, w.m.holds[id].creditType, dec(amount))
	w.m.capture(id, amount)
}

func (w *compatWorld) adjust(id, ct, amount, reason, ref string) {
	w.t.Helper()
	w.book.adjust(ct, dec(amount), w.now())
	w.m.adjust(id, ct, amount, reason, ref)
}

// advance moves the clock with s.Clock.Advance and, for every grant the
// model says is now due, waits until the sweeper has expired what the model
// says is left of it; then it waits for the read models.
func (w *compatWorld) advance(d time.Duration) {
	w.t.Helper()
	w.s.Clock.Advance(d)
	now := w.now()
	for _, g := range w.book.expireDue(now) {
		l := w.m.line(g.ct)
		want := l.expired.Add(g.expiredAmount)
		deadline := time.Now().Add(10 * time.Second)
		for {
			line, _, err := w.s.Engine.Line(context.Background(), w.m.id, g.ct)
			if err != nil {
				w.t.Fatalf("line: %v", err)
			}
			if line.Expired.Equal(want) {
				break
			}
			if time.Now().After(deadline) {
				w.t.Fatalf("the sweeper did not expire %s of %s: the line has expired %s, want %s", g.expiredAmount, g.id, line.Expired, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
		l.expired = want
		l.lastUpdated = now
		w.m.addLedger(g.ct, "expiry", g.expiredAmount.Neg(), g.id, "grant expired", "", nil, 0)
	}
	w.s.Sync()
}

// total sums the model's lines.
func (w *compatWorld) total() lineModel { return sumLines(w.m.snapshot()) }

// usedBetween sums the usage records that occurred in [from, to] and match keep.
func (w *compatWorld) usedBetween(from, to time.Time, keep func(usageRec) bool) decimal.Decimal {
	var sum decimal.Decimal
	for _, r := range w.m.usage {
		if !r.at.Before(from) && !r.at.After(to) && (keep == nil || keep(r)) {
			sum = sum.Add(r.credits)
		}
	}
	return sum
}

// usageOnDays sums the usage records of the UTC days from..to (days).
func (w *compatWorld) usageOnDays(from, to time.Time) (usageAgg, map[string]int64) {
	var agg usageAgg
	byEndpoint := map[string]int64{}
	for _, r := range w.m.usage {
		if d := r.day(); !d.Before(dayOf(from)) && !d.After(dayOf(to)) {
			agg.add(r)
			byEndpoint[r.endpoint]++
		}
	}
	return agg, byEndpoint
}

func dayOf(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

// Custom dimensions of the scenario's Lasso tables.
var (
	summerTable = map[string]string{"table_id": "tbl-summer", "table_name": "Summer catalog"}
	winterTable = map[string]string{"table_id": "tbl-winter", "table_name": "Winter catalog"}
)

// seedCurrencyConfig is the lasso seed's currency_config.
func seedCurrencyConfig() map[string]any {
	return map[string]any{"monthly_fee_czk": 25000, "monthly_fee_eur": 1000, "monthly_credits": 50000, "auto_eur": false}
}

func at(month, day, hour, minute int) time.Time {
	return time.Date(2026, time.Month(month), day, hour, minute, 0, 0, time.UTC)
}

// buildCompatScenario builds, on a fresh stack, the scenario every profile
// test reads. By hand, at the end (13:15 on 15 March 2026):
//
//	default line: g-soon 1000 (expires 13:00), g-main 2000, g-future 100
//	  (effective 1 April), subscription sub-pro 50000 for 18 Feb–18 Mar
//	  (canceled at its period end); usage u1..u6 436.5 and the capture of
//	  r-job 42.75 burn g-soon, whose 520.75 left expires; u7 19.5 and 4.5 of
//	  the -30 adjustment (after +25.5 unallocated) burn sub-pro; r-open,
//	  made after the expiry, holds 15.
//	MaxKeyAccountsUnlocked: g-keys 5000, u-keys 10 used.
//	legacy: g-legacy 40, expired whole at 12:30.
//
//	granted 58140, adjusted -4.5, used 508.75, expired 560.75,
//	balance 57066, reserved 15, available 57051.
func buildCompatScenario(t *testing.T, name string) *compatWorld {
	t.Helper()
	s := stack.Start(t)
	s.Clock.Set(compatEpoch)
	w := newCompatWorld(t, s, name, "USD")
	w.settings("EUR", seedCurrencyConfig())

	w.grant("g-soon", "", "1000", map[string]any{"expires_at": "2026-03-15T13:00:00Z", "source": "promotional", "description": "launch bonus"})
	w.grant("g-main", "", "2000", map[string]any{"cost_per_credit": "0.03", "currency": "USD", "reference": "inv-1001",
		"description": "annual pack", "metadata": map[string]string{"order": "PO-7"}})
	w.grant("g-future", "", "100", map[string]any{"effective_at": "2026-04-01T00:00:00Z"})
	w.grant("g-keys", "MaxKeyAccountsUnlocked", "5000", nil)
	w.grant("g-legacy", "legacy", "40", map[string]any{"expires_at": "2026-03-15T12:30:00Z"})
	// Far below what the default line keeps available: it never fires.
	w.m.autoReload("", true, "10.5", "500")
	w.subscribe(subModel{id: "sub-pro", credits: dec("50000"), price: dec("1000"), currency: "EUR",
		starts: time.Date(2026, 2, 18, 0, 0, 0, 0, time.UTC)})

	w.use(
		usageEv{id: "u1", at: at(3, 2, 10, 0), amount: "120.25", quantity: "20", module: "lasso", service: "ai_field", user: "u-anna",
			workflow: "wf-1", run: "run-1", endpoint: "/v1/enhance", custom: summerTable},
		usageEv{id: "u2", at: at(3, 10, 8, 30), amount: "80", quantity: "12", module: "lasso", service: "ai_field", user: "u-ben",
			workflow: "wf-1", run: "run-2", endpoint: "/v1/enhance", custom: winterTable},
		usageEv{id: "u3", at: at(3, 10, 23, 59).Add(59*time.Second + 500*time.Millisecond), amount: "45.5", quantity: "5", module: "lasso",
			service: "translate", user: "u-anna", workflow: "wf-2", run: "run-3", endpoint: "/v1/translate", custom: summerTable},
		usageEv{id: "u4", at: at(3, 14, 9, 15), amount: "33.3", module: "search", service: "api", user: "u-ben", workflow: "wf-2",
			endpoint: "/v1/search", failed: true, custom: map[string]string{"region": "eu"}},
		usageEv{id: "u5", at: at(2, 20, 12, 0), amount: "150", module: "search", service: "api", user: "u-carl", workflow: "wf-1",
			endpoint: "/v1/search", custom: map[string]string{"region": "us"}},
		usageEv{id: "u6", at: at(3, 15, 11, 0), amount: "7.45", quantity: "3", module: "lasso", service: "ai_field", user: "u-carl",
			endpoint: "/v1/enhance"},
	)
	// Another line's usage goes in its own batch: a batch over two lines
	// may commit in either order, and the ledger model wants one order.
	w.use(usageEv{id: "u-keys", creditType: "MaxKeyAccountsUnlocked", at: at(3, 12, 8, 0), amount: "10", module: "keys",
		service: "accounts", user: "u-anna", endpoint: "/v1/keys"})

	s.Clock.Advance(5 * time.Minute) // 12:05
	w.reserve(usageEv{id: "r-job", amount: "60", quantity: "8", module: "lasso", service: "ai_field", user: "u-ben",
		workflow: "wf-3", run: "run-9", endpoint: "/v1/enhance", custom: summerTable})
	s.Clock.Advance(5 * time.Minute) // 12:10
	w.capture("r-job", "42.75")
	s.Clock.Advance(5 * time.Minute) // 12:15
	w.adjust("adj-goodwill", "", "25.5", "goodwill", "TCK-1")

	w.advance(20 * time.Minute) // 12:35: g-legacy expires
	w.advance(40 * time.Minute) // 13:15: g-soon expires
	// Held after g-soon's expiry: held before, it would have pinned 15 of
	// g-soon and kept them from expiring.
	w.reserve(usageEv{id: "r-open", amount: "15", module: "search", service: "api", user: "u-dana", endpoint: "/v1/search"})
	w.use(usageEv{id: "u7", at: at(3, 15, 13, 5), amount: "19.5", module: "search", service: "api", user: "u-dana",
		workflow: "wf-3", endpoint: "/v1/search"})
	w.adjust("adj-fix", "", "-30", "correction", "")
	w.cancel("sub-pro")
	s.Sync()

	// The model against the hand computation above.
	total := w.total()
	for _, c := range []struct {
		name      string
		got, want decimal.Decimal
	}{{"granted", total.granted, dec("58140")}, {"adjusted", total.adjusted, dec("-4.5")}, {"used", total.used, dec("508.75")},
		{"expired", total.expired, dec("560.75")}, {"balance", total.balance(), dec("57066")}, {"reserved", total.reserved, dec("15")}} {
		if !c.got.Equal(c.want) {
			t.Fatalf("the scenario's model has %s %s, the hand computation %s", c.name, c.got, c.want)
		}
	}
	return w
}

// badKey is no tenant's API key.
const badKey = "cdk_not_a_key"

// wantNull checks that m[name] is present and null.
func wantNull(t *testing.T, m map[string]any, name string) {
	t.Helper()
	if v, present := m[name]; !present || v != nil {
		t.Errorf("%s = %#v (present %v), want null", name, v, present)
	}
}

// wantText checks that m[name] is a JSON number whose text is exactly want
// (whole values written as integers).
func wantText(t *testing.T, m map[string]any, name string, want decimal.Decimal) {
	t.Helper()
	wantNumber(t, m, name, want.String())
}
