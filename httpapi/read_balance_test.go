package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/stack"
)

// TestReadBalance checks GET /v1/balance line by line and in total after
// every kind of movement on two credit types, filtered by credit type, as
// of past instants, and its refusals of bad parameters.
func TestReadBalance(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(readEpoch)
	m := newTenant(t, s, "acme", "EUR")
	type instant struct {
		name  string
		at    time.Time
		lines map[string]lineModel
		// autoReload: an answer as of an instant shows the line's current
		// auto-reload setting, not the one of that instant (reported as a
		// bug), so before the setting changed only its presence is checked.
		autoReload int
	}
	var instants []instant
	// step advances the clock a minute, so every write has its own instant.
	step := func() { s.Clock.Advance(time.Minute) }
	arCheck := autoReloadPresent
	// mark records the model as it stands at the clock plus offset.
	mark := func(name string, offset time.Duration) {
		instants = append(instants, instant{name, m.now().Add(offset), m.snapshot(), arCheck})
	}
	mark("before any credit line existed", 0)

	expiresAt := readEpoch.Add(2 * time.Hour)
	step()
	m.grant("g1", "", "1000", nil)
	mark("exactly at the first grant", 0)
	step()
	m.grant("g2", "default", "200", map[string]any{"expires_at": expiresAt.Format(time.RFC3339), "source": "promotional", "description": "spring promo"})
	step()
	m.grant("g3", "gpu", "500", nil)
	mark("after the grants on both lines", 30*time.Second)
	step()
	// Late usage: it happened an hour before the clock. The expiring grant
	// g2 burns first, so 50 of it is left.
	m.use(usageEv{id: "u1", amount: "150", module: "search", at: readEpoch.Add(-time.Hour)})
	step()
	m.use(usageEv{id: "u2", creditType: "gpu", amount: "40.5", module: "render"})
	mark("after usage on both lines", 30*time.Second)
	step()
	m.reserve(usageEv{id: "r1", amount: "100", module: "batch"})
	mark("while a hold is open on the default line", 30*time.Second)
	step()
	m.reserve(usageEv{id: "r2", creditType: "gpu", amount: "60", module: "render"})
	mark("while holds are open on both lines", 30*time.Second)
	step()
	m.capture("r2", "25.25")
	mark("exactly at a partial capture", 0)
	step()
	m.reserve(usageEv{id: "r3", creditType: "gpu", amount: "5"})
	mark("while a second hold is open on gpu", 30*time.Second)
	step()
	m.release("r3")
	mark("after that hold was released", 30*time.Second)
	// As of an instant, last_updated is the last credit movement or open
	// hold, not a release after it (reported as a bug).
	released := instants[len(instants)-1]
	gpuReleased := released.lines["gpu"]
	gpuReleased.lastUpdated = unknownTime
	released.lines["gpu"] = gpuReleased
	step()
	m.autoReload("gpu", true, "50", "100")
	arCheck = autoReloadChecked
	mark("after auto-reload was configured", 30*time.Second)
	// As of an instant, last_updated is the last credit movement or hold,
	// not the auto-reload change after it (reported as a bug): the numbers
	// are checked, last_updated is not.
	afterConfig := instants[len(instants)-1]
	gpu := afterConfig.lines["gpu"]
	gpu.lastUpdated = unknownTime
	afterConfig.lines["gpu"] = gpu
	step()
	// −30 comes from g1: the hold r1 pinned the 50 left of g2, which
	// neither a correction nor g2's expiry can take.
	m.adjust("a1", "default", "-30", "correction", "T-1")
	step()
	m.adjust("a2", "gpu", "10", "goodwill", "")
	mark("after adjustments on both lines", 30*time.Second)
	mark("a microsecond before the grant expired", expiresAt.Sub(m.now())-time.Microsecond)
	// g2's expiry passes with nothing to expire: all that is left of it is
	// pinned by the open hold r1.
	s.Clock.Set(expiresAt.Add(time.Minute))
	s.Sync()
	final := m.snapshot()

	// The scenario by hand, so the model itself is checked.
	if got := final["default"]; !got.balance().Equal(dec("1020")) || !got.reserved.Equal(dec("100")) || !got.expired.Equal(dec("0")) {
		t.Fatalf("model of default: %+v", got)
	}
	if got := final["gpu"]; !got.balance().Equal(dec("444.25")) || !got.used.Equal(dec("65.75")) {
		t.Fatalf("model of gpu: %+v", got)
	}

	t.Run("the balance shows every line and their sum after grants, usage, holds, a capture, adjustments and an expiry a hold outlives", func(t *testing.T) {
		got := read(t, s, "/v1/balance", m.key)
		checkBalance(t, got, m.id, "EUR", final)
		if _, present := got["as_of"]; present {
			t.Errorf("as_of = %v without the parameter", got["as_of"])
		}
		// By hand: 1700 granted − 20 adjusted − 215.75 used − 0 expired.
		total := obj(t, got["total"], "total")
		wantDec(t, total, "balance", dec("1464.25"))
		wantDec(t, total, "available", dec("1364.25"))
	})

	t.Run("a credit_type filter shows only that line and sums only it", func(t *testing.T) {
		got := read(t, s, "/v1/balance?credit_type=gpu", m.key)
		checkBalance(t, got, m.id, "EUR", map[string]lineModel{"gpu": final["gpu"]})
		got = read(t, s, "/v1/balance?credit_type=default", m.key)
		checkBalance(t, got, m.id, "EUR", map[string]lineModel{"default": final["default"]})
	})

	t.Run("a credit_type with no line shows no lines and a zero total", func(t *testing.T) {
		got := read(t, s, "/v1/balance?credit_type=tokens", m.key)
		checkBalance(t, got, m.id, "EUR", map[string]lineModel{})
	})

	t.Run("as_of shows each line as it stood at that instant", func(t *testing.T) {
		for _, in := range instants {
			t.Run("the balance as of a moment "+in.name+" is as it stood then", func(t *testing.T) {
				at := in.at.Format(time.RFC3339Nano)
				got := read(t, s, "/v1/balance"+q("as_of", at), m.key)
				// Settings are not kept historically: an as_of answer has
				// no auto_reload rather than today's.
				checkBalanceAR(t, got, m.id, "EUR", in.lines, autoReloadAbsent)
				wantTime(t, got, "as_of", in.at)
			})
		}
	})

	t.Run("as_of combines with credit_type", func(t *testing.T) {
		in := instants[5] // holds open on both lines
		got := read(t, s, "/v1/balance"+q("as_of", in.at.Format(time.RFC3339Nano), "credit_type", "gpu"), m.key)
		checkBalanceAR(t, got, m.id, "EUR", map[string]lineModel{"gpu": in.lines["gpu"]}, autoReloadAbsent)
	})

	t.Run("as_of in another time zone means the same instant", func(t *testing.T) {
		in := instants[3] // after usage on both lines
		at := in.at.In(time.FixedZone("CET", 3600)).Format(time.RFC3339Nano)
		if !strings.Contains(at, "+01:00") {
			t.Fatalf("as_of %s is not in +01:00", at)
		}
		checkBalanceAR(t, read(t, s, "/v1/balance"+q("as_of", at), m.key), m.id, "EUR", in.lines, autoReloadAbsent)
	})

	t.Run("as_of a date means the end of that UTC day", func(t *testing.T) {
		got := read(t, s, "/v1/balance?as_of=2026-03-15", m.key)
		checkBalanceAR(t, got, m.id, "EUR", final, autoReloadAbsent)
		wantTime(t, got, "as_of", time.Date(2026, 3, 15, 23, 59, 59, 999999000, time.UTC))
		got = read(t, s, "/v1/balance?as_of=2026-03-14", m.key)
		checkBalance(t, got, m.id, "EUR", map[string]lineModel{})
	})

	t.Run("a malformed credit_type is a 400 naming query.credit_type", func(t *testing.T) {
		badRead(t, s, "/v1/balance"+q("credit_type", "not a type"), m.key, "query.credit_type")
		badRead(t, s, "/v1/balance"+q("credit_type", strings.Repeat("x", 65)), m.key, "query.credit_type")
	})

	t.Run("a malformed as_of is a 400 naming query.as_of", func(t *testing.T) {
		badRead(t, s, "/v1/balance?as_of=yesterday", m.key, "query.as_of")
		badRead(t, s, "/v1/balance?as_of=2026-13-01", m.key, "query.as_of")
		badRead(t, s, "/v1/balance"+q("as_of", "2026-03-15T12:00:00"), m.key, "query.as_of")
	})

	t.Run("two bad parameters are both named", func(t *testing.T) {
		fetch(t, s, http.MethodGet, "/v1/balance"+q("credit_type", "a b", "as_of", "soon"), m.key, nil).
			problem(t, http.StatusBadRequest, "query.credit_type", "query.as_of")
	})

	t.Run("an unknown parameter is a 400 naming it", func(t *testing.T) {
		badRead(t, s, "/v1/balance?colour=red", m.key, "query.colour")
		badRead(t, s, "/v1/balance?credit_type=gpu&asof=2026-03-15", m.key, "query.asof")
	})

	t.Run("the balance needs an API key", func(t *testing.T) {
		fetch(t, s, http.MethodGet, "/v1/balance", "", nil).problem(t, http.StatusUnauthorized)
		fetch(t, s, http.MethodGet, "/v1/balance", "cdk_not_a_key", nil).problem(t, http.StatusUnauthorized)
	})
}

// Each line's totals are bounded (domain.LineTotalMax, 10^12 credits, 10^18
// micro-credits), a tenant's number of lines is not: the balance's total
// over ten full lines passes 2^63 micro-credits, and must not wrap.
func TestBalanceTotalOverLinesDoesNotWrap(t *testing.T) {
	s := stack.Start(t)
	s.Clock.Set(readEpoch)
	_, key := s.Tenant("big")
	for i := range 10 {
		s.Must(http.StatusCreated, http.MethodPost, "/v1/grants", key, map[string]any{
			"grant_id": fmt.Sprintf("g%d", i), "amount": "999999999999", "credit_type": fmt.Sprintf("l%d", i)})
	}
	s.Must(http.StatusOK, http.MethodPost, "/v1/usage", key, map[string]any{"events": []any{
		map[string]any{"id": "u1", "amount": "999999999998.5", "credit_type": "l0"},
		map[string]any{"id": "u2", "amount": "999999999998.5", "credit_type": "l1"},
	}})
	s.Sync()
	total := obj(t, read(t, s, "/v1/balance", key)["total"], "total")
	wantDec(t, total, "granted", dec("9999999999990"))
	wantDec(t, total, "used", dec("1999999999997"))
	wantDec(t, total, "balance", dec("7999999999993"))
}
