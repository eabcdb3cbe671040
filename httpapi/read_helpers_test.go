package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/internal/stack"
)

// Helpers of the read-side tests (read_*_test.go). They run against a whole
// in-process creditd (internal/stack) and keep, next to it, a model of what
// the test wrote: the expected credit lines, ledger and usage records, from
// which every expected number is computed.

// readEpoch is the fixed "now" every read test starts at.
var readEpoch = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// dec parses a decimal literal of the test.
func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// fetch sends a request to the stack on behalf of t (not the stack's own
// test, so a subtest fails alone). body is nil, raw, or marshalled to JSON;
// headers come in name, value pairs.
func fetch(t *testing.T, s *stack.Stack, method, path, token string, body any, headers ...string) response {
	t.Helper()
	return send(t, s.Server, method, path, token, body, headers...)
}

// read GETs path with key and wants a 200 JSON object.
func read(t *testing.T, s *stack.Stack, path, key string, headers ...string) map[string]any {
	t.Helper()
	r := fetch(t, s, http.MethodGet, path, key, nil, headers...)
	if r.Status != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", path, r.Status, r.Body)
	}
	return r.want(t, http.StatusOK)
}

// badRead GETs path and wants a 400 problem naming location.
func badRead(t *testing.T, s *stack.Stack, path, key, location string) {
	t.Helper()
	fetch(t, s, http.MethodGet, path, key, nil).problem(t, http.StatusBadRequest, location)
}

// wantDec checks that m[name] is a JSON number equal to want.
func wantDec(t *testing.T, m map[string]any, name string, want decimal.Decimal) {
	t.Helper()
	n, ok := m[name].(json.Number)
	if !ok {
		t.Errorf("%s = %#v, want the number %s", name, m[name], want)
		return
	}
	got, err := decimal.NewFromString(n.String())
	if err != nil || !got.Equal(want) {
		t.Errorf("%s = %s, want %s", name, n, want)
	}
}

// wantInt checks that m[name] is the JSON integer want.
func wantInt(t *testing.T, m map[string]any, name string, want int64) {
	t.Helper()
	if n, ok := m[name].(json.Number); !ok || n.String() != fmt.Sprint(want) {
		t.Errorf("%s = %#v, want %d", name, m[name], want)
	}
}

// wantTime checks that m[name] is an RFC 3339 time equal to want, or null
// when want is zero.
func wantTime(t *testing.T, m map[string]any, name string, want time.Time) {
	t.Helper()
	v, present := m[name]
	if !present {
		t.Errorf("%s is missing", name)
		return
	}
	if want.IsZero() {
		if v != nil {
			t.Errorf("%s = %v, want null", name, v)
		}
		return
	}
	text, _ := v.(string)
	got, err := time.Parse(time.RFC3339Nano, text)
	if err != nil || !got.Equal(want) {
		t.Errorf("%s = %#v, want %s", name, v, want.Format(time.RFC3339Nano))
	}
}

func obj(t *testing.T, v any, what string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s = %#v, want an object", what, v)
	}
	return m
}

func list(t *testing.T, v any, what string) []map[string]any {
	t.Helper()
	items, ok := v.([]any)
	if !ok {
		t.Fatalf("%s = %#v, want an array", what, v)
	}
	out := make([]map[string]any, len(items))
	for i, it := range items {
		out[i] = obj(t, it, fmt.Sprintf("%s[%d]", what, i))
	}
	return out
}

// num reads a non-negative integer member.
func num(t *testing.T, m map[string]any, name string) uint64 { t.Helper(); return uintOf(t, m, name) }

// q builds a query string from name, value pairs (names may repeat).
func q(pairs ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		v.Add(pairs[i], pairs[i+1])
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// ---- the model of one tenant's writes ----

// lineModel is what the test expects of one credit line.
type lineModel struct {
	granted, adjusted, used, expired, reserved decimal.Decimal
	arEnabled                                  bool
	arThreshold, arAmount                      decimal.Decimal
	lastUpdated                                time.Time
}

func (l lineModel) balance() decimal.Decimal {
	return l.granted.Add(l.adjusted).Sub(l.used).Sub(l.expired)
}

// ledgerWant is one expected ledger entry.
type ledgerWant struct {
	creditType, typ  string
	amount, after    decimal.Decimal
	sourceID         string
	description, ref string
	metadata         map[string]string
	createdAt        time.Time
	// occurredAt is when the usage of a debit occurred (a capture: when
	// captured); zero on other entries.
	occurredAt time.Time
	position   uint64
}

// usageRec is one expected row of usage (a debit or a capture).
type usageRec struct {
	at                                                         time.Time
	creditType, module, service, user, workflow, run, endpoint string
	success                                                    bool
	custom                                                     map[string]string
	credits, quantity                                          decimal.Decimal
}

// dim is the record's value of a dimension, as the API groups by it.
func (u usageRec) dim(name string) string {
	switch name {
	case "credit_type":
		return u.creditType
	case "module":
		return u.module
	case "service":
		return u.service
	case "user_id":
		return u.user
	case "workflow_id":
		return u.workflow
	case "workflow_run_id":
		return u.run
	case "endpoint":
		return u.endpoint
	case "success":
		return fmt.Sprint(u.success)
	}
	if key, ok := strings.CutPrefix(name, "custom."); ok {
		return u.custom[key]
	}
	panic("unknown dimension " + name)
}

func (u usageRec) day() time.Time { return u.at.UTC().Truncate(24 * time.Hour) }

// usageEv is a usage event the test records.
type usageEv struct {
	id, creditType, amount, quantity                            string
	at                                                          time.Time // zero: now
	module, service, user, workflow, run, endpoint, description string
	failed                                                      bool
	custom                                                      map[string]string
}

func (e usageEv) body() map[string]any {
	m := map[string]any{"id": e.id, "amount": e.amount}
	set := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set("credit_type", e.creditType)
	set("quantity", e.quantity)
	set("module", e.module)
	set("service", e.service)
	set("user_id", e.user)
	set("workflow_id", e.workflow)
	set("workflow_run_id", e.run)
	set("endpoint", e.endpoint)
	set("description", e.description)
	if !e.at.IsZero() {
		m["timestamp"] = e.at.Format(time.RFC3339Nano)
	}
	if e.failed {
		m["success"] = false
	}
	if len(e.custom) > 0 {
		m["custom"] = e.custom
	}
	return m
}

func (e usageEv) dimensionsMetadata() map[string]string {
	m := map[string]string{}
	for k, v := range map[string]string{"module": e.module, "service": e.service, "user_id": e.user,
		"workflow_id": e.workflow, "workflow_run_id": e.run, "endpoint": e.endpoint} {
		if v != "" {
			m[k] = v
		}
	}
	for k, v := range e.custom {
		m["custom."+k] = v
	}
	return m
}

// ledgerDescription is the description the ledger gives the event's debit.
func (e usageEv) ledgerDescription() string {
	switch {
	case e.description != "":
		return e.description
	case e.module != "" && e.endpoint != "":
		return "usage: " + e.module + " " + e.endpoint
	case e.module != "":
		return "usage: " + e.module
	case e.endpoint != "":
		return "usage: " + e.endpoint
	}
	return "usage"
}

func ctOr(ct string) string {
	if ct == "" {
		return "default"
	}
	return ct
}

// tenantModel drives one tenant's writes through the API and keeps what
// they must do to the read models.
type tenantModel struct {
	t        *testing.T
	s        *stack.Stack
	id       int64
	key      string
	name     string
	email    string
	currency string
	created  time.Time

	lines    map[string]*lineModel
	ledger   []ledgerWant
	usage    []usageRec
	rejected int
	holds    map[string]usageEv // open reservations: their dimensions
	holdAmt  map[string]decimal.Decimal
	lastPos  uint64
	// lastUsageAt is the latest occurred_at of counted usage.
	lastUsageAt time.Time
}

// newTenant creates a tenant with an explicit currency.
func newTenant(t *testing.T, s *stack.Stack, name, currency string) *tenantModel {
	t.Helper()
	body := fetch(t, s, http.MethodPost, "/v1/tenants", stack.AdminToken,
		map[string]any{"name": name, "email": name + "@example.test", "currency": currency}).want(t, http.StatusCreated)
	m := &tenantModel{t: t, s: s, id: int64(num(t, body, "tenant_id")), key: body["api_key"].(string), name: name,
		email: name + "@example.test", currency: currency, created: s.Clock.Now().UTC(),
		lines: map[string]*lineModel{}, holds: map[string]usageEv{}, holdAmt: map[string]decimal.Decimal{}}
	m.lastPos = num(t, body, "position")
	return m
}

func (m *tenantModel) line(ct string) *lineModel {
	ct = ctOr(ct)
	l, ok := m.lines[ct]
	if !ok {
		l = &lineModel{}
		m.lines[ct] = l
	}
	return l
}

func (m *tenantModel) now() time.Time { return m.s.Clock.Now().UTC() }

func (m *tenantModel) position(body map[string]any) uint64 {
	m.t.Helper()
	p := num(m.t, body, "position")
	if p <= m.lastPos {
		m.t.Fatalf("position %d not past %d: %v", p, m.lastPos, body)
	}
	m.lastPos = p
	return p
}

func (m *tenantModel) addLedger(ct, typ string, amount decimal.Decimal, source, description, ref string, metadata map[string]string, position uint64) {
	l := m.line(ct)
	m.ledger = append(m.ledger, ledgerWant{creditType: ctOr(ct), typ: typ, amount: amount, after: l.balance(), sourceID: source,
		description: description, ref: ref, metadata: metadata, createdAt: m.now(), position: position})
}

// grant grants amount on ct; extra adds body fields (expires_at, description,
// reference, metadata...).
func (m *tenantModel) grant(id, ct, amount string, extra map[string]any) uint64 {
	m.t.Helper()
	body := map[string]any{"grant_id": id, "amount": amount}
	if ct != "" {
		body["credit_type"] = ct
	}
	for k, v := range extra {
		body[k] = v
	}
	p := m.position(fetch(m.t, m.s, http.MethodPost, "/v1/grants", m.key, body).want(m.t, http.StatusCreated))
	l := m.line(ct)
	l.granted = l.granted.Add(dec(amount))
	l.lastUpdated = m.now()
	description, _ := extra["description"].(string)
	if description == "" {
		source, _ := extra["source"].(string)
		if source == "" {
			source = "purchase"
		}
		description = source + " grant"
	}
	ref, _ := extra["reference"].(string)
	meta, _ := extra["metadata"].(map[string]string)
	m.addLedger(ct, "credit", dec(amount), id, description, ref, meta, p)
	return p
}

// use records usage events in one batch; all must be accepted.
func (m *tenantModel) use(events ...usageEv) uint64 {
	m.t.Helper()
	bodies := make([]map[string]any, len(events))
	for i, e := range events {
		bodies[i] = e.body()
	}
	resp := fetch(m.t, m.s, http.MethodPost, "/v1/usage", m.key, map[string]any{"events": bodies}).want(m.t, http.StatusOK)
	p := m.position(resp)
	positions := make([]uint64, len(events))
	for i, res := range results(m.t, resp) {
		if res["status"] != "accepted" {
			m.t.Fatalf("usage %s: %v", events[i].id, res)
		}
		positions[i] = num(m.t, res, "position")
	}
	for i, e := range events {
		at := e.at
		if at.IsZero() {
			at = m.now()
		}
		l := m.line(e.creditType)
		l.used = l.used.Add(dec(e.amount))
		l.lastUpdated = m.now()
		quantity := decimal.Zero
		if e.quantity != "" {
			quantity = dec(e.quantity)
		}
		m.usage = append(m.usage, usageRec{at: at.UTC(), creditType: ctOr(e.creditType), module: e.module, service: e.service, user: e.user,
			workflow: e.workflow, run: e.run, endpoint: e.endpoint, success: !e.failed, custom: e.custom, credits: dec(e.amount), quantity: quantity})
		if at.After(m.lastUsageAt) {
			m.lastUsageAt = at.UTC()
		}
		if !dec(e.amount).IsZero() {
			m.addLedger(e.creditType, "debit", dec(e.amount).Neg(), e.id, e.ledgerDescription(), "", e.dimensionsMetadata(), positions[i])
			m.ledger[len(m.ledger)-1].occurredAt = at.UTC()
		}
	}
	return p
}

// useRejected records one usage event the write side must reject with
// reason; it moves nothing but counts as a rejected debit.
func (m *tenantModel) useRejected(e usageEv, reason string) uint64 {
	m.t.Helper()
	resp := fetch(m.t, m.s, http.MethodPost, "/v1/usage", m.key, map[string]any{"events": []any{e.body()}}).want(m.t, http.StatusOK)
	p := m.position(resp)
	res := results(m.t, resp)[0]
	if res["status"] != "rejected" || res["reason"] != reason {
		m.t.Fatalf("usage %s: %v, want rejected %s", e.id, res, reason)
	}
	m.rejected++
	m.line(e.creditType).lastUpdated = m.now()
	return p
}

// reserve holds amount on e.creditType with e's dimensions for a week.
func (m *tenantModel) reserve(e usageEv) uint64 {
	m.t.Helper()
	body := e.body()
	delete(body, "id")
	delete(body, "timestamp")
	delete(body, "description")
	body["reservation_id"] = e.id
	body["ttl_seconds"] = 7 * 24 * 3600
	p := m.position(fetch(m.t, m.s, http.MethodPost, "/v1/reservations", m.key, body).want(m.t, http.StatusCreated))
	l := m.line(e.creditType)
	l.reserved = l.reserved.Add(dec(e.amount))
	l.lastUpdated = m.now()
	m.holds[e.id] = e
	m.holdAmt[e.id] = dec(e.amount)
	return p
}

// capture captures amount of hold id; the rest is released.
func (m *tenantModel) capture(id, amount string) uint64 {
	m.t.Helper()
	e := m.holds[id]
	p := m.position(fetch(m.t, m.s, http.MethodPost, "/v1/reservations/"+id+"/capture", m.key, map[string]any{"amount": amount}).want(m.t, http.StatusOK))
	l := m.line(e.creditType)
	l.reserved = l.reserved.Sub(m.holdAmt[id])
	l.used = l.used.Add(dec(amount))
	l.lastUpdated = m.now()
	quantity := decimal.Zero
	if e.quantity != "" {
		quantity = dec(e.quantity)
	}
	m.usage = append(m.usage, usageRec{at: m.now(), creditType: ctOr(e.creditType), module: e.module, service: e.service, user: e.user,
		workflow: e.workflow, run: e.run, endpoint: e.endpoint, success: !e.failed, custom: e.custom, credits: dec(amount), quantity: quantity})
	if m.now().After(m.lastUsageAt) {
		m.lastUsageAt = m.now()
	}
	if !dec(amount).IsZero() {
		desc := e
		desc.description = ""
		m.addLedger(e.creditType, "debit", dec(amount).Neg(), id, desc.ledgerDescription(), "", e.dimensionsMetadata(), p)
		m.ledger[len(m.ledger)-1].occurredAt = m.now()
	}
	delete(m.holds, id)
	delete(m.holdAmt, id)
	return p
}

// release releases hold id.
func (m *tenantModel) release(id string) uint64 {
	m.t.Helper()
	e := m.holds[id]
	p := m.position(fetch(m.t, m.s, http.MethodPost, "/v1/reservations/"+id+"/release", m.key, nil).want(m.t, http.StatusOK))
	l := m.line(e.creditType)
	l.reserved = l.reserved.Sub(m.holdAmt[id])
	l.lastUpdated = m.now()
	delete(m.holds, id)
	delete(m.holdAmt, id)
	return p
}

// adjust adds a signed amount to ct.
func (m *tenantModel) adjust(id, ct, amount, reason, ref string) uint64 {
	m.t.Helper()
	body := map[string]any{"adjustment_id": id, "amount": amount, "reason": reason}
	if ct != "" {
		body["credit_type"] = ct
	}
	if ref != "" {
		body["reference"] = ref
	}
	p := m.position(fetch(m.t, m.s, http.MethodPost, "/v1/adjustments", m.key, body).want(m.t, http.StatusCreated))
	l := m.line(ct)
	l.adjusted = l.adjusted.Add(dec(amount))
	l.lastUpdated = m.now()
	m.addLedger(ct, "adjustment", dec(amount), id, reason, ref, nil, p)
	return p
}

// autoReload configures ct's auto-reload.
func (m *tenantModel) autoReload(ct string, enabled bool, threshold, amount string) uint64 {
	m.t.Helper()
	p := m.position(fetch(m.t, m.s, http.MethodPut, "/v1/auto-reload", m.key,
		map[string]any{"credit_type": ct, "enabled": enabled, "threshold": threshold, "amount": amount}).want(m.t, http.StatusOK))
	l := m.line(ct)
	l.arEnabled, l.arThreshold, l.arAmount = enabled, dec(threshold), dec(amount)
	l.lastUpdated = m.now()
	return p
}

// expire moves the clock to at (past grantID's expiry) and waits until the
// sweeper has expired amount of it, then until the read models have it.
func (m *tenantModel) expire(ct, grantID, amount string, at time.Time) {
	m.t.Helper()
	l := m.line(ct)
	want := l.expired.Add(dec(amount))
	m.s.Clock.Set(at)
	deadline := time.Now().Add(10 * time.Second)
	for {
		line, _, err := m.s.Engine.Line(context.Background(), m.id, ctOr(ct))
		if err != nil {
			m.t.Fatalf("line: %v", err)
		}
		if line.Expired.Equal(want) {
			break
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("the sweeper did not expire %s of %s: expired %s", amount, grantID, line.Expired)
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.expired = want
	l.lastUpdated = at.UTC()
	m.addLedger(ct, "expiry", dec(amount).Neg(), grantID, "grant expired", "", nil, 0)
	m.s.Sync()
	last, err := m.s.NATS.Store.LastPosition(context.Background())
	if err != nil {
		m.t.Fatal(err)
	}
	m.ledger[len(m.ledger)-1].position = last
	m.lastPos = last
}

// snapshot copies the lines, for balances as of an instant.
func (m *tenantModel) snapshot() map[string]lineModel {
	out := map[string]lineModel{}
	for ct, l := range m.lines {
		out[ct] = *l
	}
	return out
}

// ---- checks of read answers against the model ----

// Auto-reload checks of checkLine.
const (
	autoReloadAbsent  = iota // the total has none
	autoReloadChecked        // a line's setting, compared with the model
	autoReloadPresent        // a line's setting, only its presence checked
)

// checkLine checks one balance line (or the total, with ct "").
func checkLine(t *testing.T, got map[string]any, ct string, want lineModel, currency string, autoReload int) {
	t.Helper()
	if ct != "" {
		wantString(t, got, "credit_type", ct)
	} else if _, present := got["credit_type"]; present {
		t.Errorf("total has credit_type %v", got["credit_type"])
	}
	wantDec(t, got, "granted", want.granted)
	wantDec(t, got, "adjusted", want.adjusted)
	wantDec(t, got, "used", want.used)
	wantDec(t, got, "expired", want.expired)
	wantDec(t, got, "balance", want.balance())
	wantDec(t, got, "reserved", want.reserved)
	wantDec(t, got, "available", want.balance().Sub(want.reserved))
	wantString(t, got, "currency", currency)
	if !want.lastUpdated.Equal(unknownTime) {
		wantTime(t, got, "last_updated", want.lastUpdated)
	}
	ar, present := got["auto_reload"]
	switch autoReload {
	case autoReloadAbsent:
		if present {
			t.Errorf("auto_reload = %v on the total", ar)
		}
		return
	case autoReloadPresent:
		obj(t, ar, "auto_reload")
		return
	}
	a := obj(t, ar, "auto_reload")
	if a["enabled"] != want.arEnabled {
		t.Errorf("%s auto_reload.enabled = %v, want %v", ct, a["enabled"], want.arEnabled)
	}
	wantDec(t, a, "threshold", want.arThreshold)
	wantDec(t, a, "amount", want.arAmount)
}

// sumLines is the expected total of lines.
func sumLines(lines map[string]lineModel) lineModel {
	var total lineModel
	for _, l := range lines {
		total.granted = total.granted.Add(l.granted)
		total.adjusted = total.adjusted.Add(l.adjusted)
		total.used = total.used.Add(l.used)
		total.expired = total.expired.Add(l.expired)
		total.reserved = total.reserved.Add(l.reserved)
		if l.lastUpdated.Equal(unknownTime) || total.lastUpdated.Equal(unknownTime) {
			total.lastUpdated = unknownTime
		} else if l.lastUpdated.After(total.lastUpdated) {
			total.lastUpdated = l.lastUpdated
		}
	}
	return total
}

// unknownTime as a model's lastUpdated skips the last_updated check.
var unknownTime = time.Unix(1, 0)

// checkBalance checks a balance answer: exactly lines, in credit type
// order, and their sum.
func checkBalance(t *testing.T, got map[string]any, tenantID int64, currency string, lines map[string]lineModel) {
	t.Helper()
	checkBalanceAR(t, got, tenantID, currency, lines, autoReloadChecked)
}

// checkBalanceAR is checkBalance with a choice of auto-reload check.
func checkBalanceAR(t *testing.T, got map[string]any, tenantID int64, currency string, lines map[string]lineModel, autoReload int) {
	t.Helper()
	wantInt(t, got, "tenant_id", tenantID)
	wantString(t, got, "currency", currency)
	gotLines := list(t, got["lines"], "lines")
	names := make([]string, 0, len(lines))
	for ct := range lines {
		names = append(names, ct)
	}
	sort.Strings(names)
	if len(gotLines) != len(names) {
		t.Fatalf("%d lines, want %d (%v): %v", len(gotLines), len(names), names, got["lines"])
	}
	for i, ct := range names {
		checkLine(t, gotLines[i], ct, lines[ct], currency, autoReload)
	}
	checkLine(t, obj(t, got["total"], "total"), "", sumLines(lines), currency, autoReloadAbsent)
}

// usageAgg is a sum over usage records.
type usageAgg struct {
	credits, quantity            decimal.Decimal
	requests, successful, failed int64
}

func (a *usageAgg) add(u usageRec) {
	a.credits = a.credits.Add(u.credits)
	a.quantity = a.quantity.Add(u.quantity)
	a.requests++
	if u.success {
		a.successful++
	} else {
		a.failed++
	}
}

func checkTotals(t *testing.T, got map[string]any, want usageAgg, what string) {
	t.Helper()
	n := func(name string) string { return what + "." + name }
	if c, ok := got["credits"].(json.Number); !ok || !dec(c.String()).Equal(want.credits) {
		t.Errorf("%s = %v, want %s", n("credits"), got["credits"], want.credits)
	}
	if c, ok := got["quantity"].(json.Number); !ok || !dec(c.String()).Equal(want.quantity) {
		t.Errorf("%s = %v, want %s", n("quantity"), got["quantity"], want.quantity)
	}
	for name, v := range map[string]int64{"requests": want.requests, "successful": want.successful, "failed": want.failed} {
		if c, ok := got[name].(json.Number); !ok || c.String() != fmt.Sprint(v) {
			t.Errorf("%s = %v, want %d", n(name), got[name], v)
		}
	}
}

// usageQuery is an expected usage query: whole UTC days from..to.
type usageQuery struct {
	from, to    time.Time // days
	granularity string
	groupBy     []string
	filters     map[string][]string
}

func period(day time.Time, granularity string) string {
	switch granularity {
	case "day":
		return day.Format(time.DateOnly)
	case "month":
		return day.Format("2006-01")
	case "year":
		return day.Format("2006")
	}
	return ""
}

// expectUsage computes a usage report from records.
func expectUsage(recs []usageRec, uq usageQuery) (usageAgg, map[string]*usageAgg) {
	var totals usageAgg
	rows := map[string]*usageAgg{}
	for _, r := range recs {
		d := r.day()
		if d.Before(uq.from) || d.After(uq.to) {
			continue
		}
		keep := true
		for name, values := range uq.filters {
			found := false
			for _, v := range values {
				if r.dim(name) == v {
					found = true
				}
			}
			keep = keep && found
		}
		if !keep {
			continue
		}
		totals.add(r)
		key := []string{period(d, uq.granularity)}
		for _, g := range uq.groupBy {
			key = append(key, r.dim(g))
		}
		k := strings.Join(key, "|")
		if rows[k] == nil {
			rows[k] = &usageAgg{}
		}
		rows[k].add(r)
	}
	return totals, rows
}

// checkUsage reads path and checks it against uq over recs: totals, the
// exact set of rows, and their order (period ascending, then credits
// descending).
func checkUsage(t *testing.T, s *stack.Stack, key, path string, recs []usageRec, uq usageQuery) map[string]any {
	t.Helper()
	got := read(t, s, path, key)
	granularity := uq.granularity
	if granularity == "" {
		granularity = "none"
	}
	wantString(t, got, "granularity", granularity)
	gotGroup, _ := got["group_by"].([]any)
	if fmt.Sprint(gotGroup) != fmt.Sprint(anyStrings(uq.groupBy)) {
		t.Errorf("group_by = %v, want %v", got["group_by"], uq.groupBy)
	}
	wantTime(t, got, "from", uq.from)
	wantTime(t, got, "to", uq.to.Add(24*time.Hour-time.Microsecond))
	totals, rows := expectUsage(recs, uq)
	checkTotals(t, obj(t, got["totals"], "totals"), totals, "totals")
	gotRows := list(t, got["rows"], "rows")
	if len(gotRows) != len(rows) {
		t.Errorf("%d rows, want %d: %s", len(gotRows), len(rows), rowKeys(rows))
	}
	seen := map[string]bool{}
	var prevPeriod string
	var prevCredits decimal.Decimal
	for i, row := range gotRows {
		p, _ := row["period"].(string)
		key := []string{p}
		if len(uq.groupBy) > 0 {
			g := obj(t, row["group"], "group")
			if len(g) != len(uq.groupBy) {
				t.Errorf("row %d group %v, want the keys %v", i, g, uq.groupBy)
			}
			for _, d := range uq.groupBy {
				v, ok := g[d].(string)
				if !ok {
					t.Errorf("row %d group lacks %s: %v", i, d, g)
				}
				key = append(key, v)
			}
		} else if _, present := row["group"]; present {
			t.Errorf("row %d has a group without group_by: %v", i, row)
		}
		if uq.granularity == "" || uq.granularity == "none" {
			if _, present := row["period"]; present {
				t.Errorf("row %d has a period without granularity: %v", i, row)
			}
		}
		k := strings.Join(key, "|")
		if seen[k] {
			t.Errorf("row %s appears twice", k)
		}
		seen[k] = true
		want, ok := rows[k]
		if !ok {
			t.Errorf("unexpected row %s: %v", k, row)
			continue
		}
		checkTotals(t, row, *want, "row "+k)
		credits := dec(row["credits"].(json.Number).String())
		if i > 0 {
			if p < prevPeriod {
				t.Errorf("row %d period %s after %s", i, p, prevPeriod)
			}
			if p == prevPeriod && credits.GreaterThan(prevCredits) {
				t.Errorf("row %d credits %s after %s in period %q", i, credits, prevCredits, p)
			}
		}
		prevPeriod, prevCredits = p, credits
	}
	for k := range rows {
		if !seen[k] {
			t.Errorf("missing row %s", k)
		}
	}
	return got
}

func anyStrings(in []string) []any {
	out := []any{}
	for _, s := range in {
		out = append(out, s)
	}
	return out
}

func rowKeys(rows map[string]*usageAgg) []string {
	var keys []string
	for k := range rows {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkLedgerEntry checks one ledger entry against its expectation.
func checkLedgerEntry(t *testing.T, got map[string]any, want ledgerWant) {
	t.Helper()
	what := fmt.Sprintf("entry %v (%s %s %s)", got["id"], want.typ, want.sourceID, want.amount)
	wantString(t, got, "credit_type", want.creditType)
	wantString(t, got, "type", want.typ)
	wantDec(t, got, "amount", want.amount)
	wantDec(t, got, "balance_after", want.after)
	wantString(t, got, "source_id", want.sourceID)
	wantString(t, got, "description", want.description)
	wantString(t, got, "reference", want.ref)
	wantTime(t, got, "created_at", want.createdAt)
	if want.position != 0 {
		wantInt(t, got, "position", int64(want.position))
	}
	meta := obj(t, got["metadata"], what+" metadata")
	wantMeta := map[string]any{}
	for k, v := range want.metadata {
		wantMeta[k] = v
	}
	if fmt.Sprint(meta) != fmt.Sprint(wantMeta) {
		t.Errorf("%s metadata = %v, want %v", what, meta, wantMeta)
	}
}

// newestFirst returns the expected entries matching keep, newest first.
func newestFirst(entries []ledgerWant, keep func(ledgerWant) bool) []ledgerWant {
	var out []ledgerWant
	for i := len(entries) - 1; i >= 0; i-- {
		if keep == nil || keep(entries[i]) {
			out = append(out, entries[i])
		}
	}
	return out
}
