package httpapi_test

import (
	"strings"
	"testing"
)

func TestProbe(t *testing.T) {
	e := newEnv(t)
	_, key := e.tenant(t, "a")
	show := func(name string, r response) {
		b := string(r.Body)
		if len(b) > 400 {
			b = b[:400]
		}
		t.Logf("%s: %d %v %s", name, r.Status, r.Header, b)
	}
	show("longkey", e.call(t, "POST", "/v1/tenants", adminToken, map[string]any{"name": "x"}, "Idempotency-Key", strings.Repeat("k", 200)))
	show("big", e.call(t, "POST", "/v1/usage", key, raw(`{"events":[{"id":"`+strings.Repeat("a", 4<<20)+`"}]}`)))
	show("bigsmall", e.call(t, "POST", "/v1/grants", key, raw(`{"description":"`+strings.Repeat("a", 70<<10)+`"}`)))
	show("reqid", e.call(t, "GET", "/nope", "", nil, "X-Request-Id", "has space"))
	show("empty-body-grant", e.call(t, "POST", "/v1/grants", key, nil))
	show("admin-on-tenant-route", e.call(t, "POST", "/v1/grants", adminToken, map[string]any{"amount": 1}))
	show("basic", e.call(t, "POST", "/v1/tenants", "", map[string]any{"name": "x"}, "Authorization", "Basic abc"))
}
