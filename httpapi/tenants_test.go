package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestTenantAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	created := e.call(t, "POST", "/v1/tenants", adminToken, map[string]any{"name": "acme", "email": "ops@acme.test"}).want(t, http.StatusCreated)
	tenantID := int64(uintOf(t, created, "tenant_id"))
	firstKey, _ := created["api_key"].(string)
	firstKeyID, _ := created["key_id"].(string)
	e.position(t, created)

	t.Run("creating_a_tenant_answers_201_with_its_id_and_a_working_key", func(t *testing.T) {
		if tenantID < 1 {
			t.Errorf("tenant_id = %d, want ≥ 1", tenantID)
		}
		if !strings.HasPrefix(firstKey, "cdk_") || firstKeyID == "" {
			t.Errorf("api_key %q, key_id %q", firstKey, firstKeyID)
		}
		wantString(t, created, "name", "acme")
		wantString(t, created, "email", "ops@acme.test")
		wantString(t, created, "currency", "USD")
		wantString(t, created, "status", "accepted")
		wantString(t, created, "created_at", "2026-03-01T12:00:00Z")
		e.position(t, e.grant(t, firstKey, "g-first", 1))
	})

	t.Run("tenant_administration_without_the_admin_token_is_a_401", func(t *testing.T) {
		routes := []struct{ name, method, path string }{
			{"create_tenant", "POST", "/v1/tenants"},
			{"issue_key", "POST", fmt.Sprintf("/v1/tenants/%d/api-keys", tenantID)},
			{"revoke_key", "DELETE", fmt.Sprintf("/v1/tenants/%d/api-keys/%s", tenantID, firstKeyID)},
		}
		tokens := []struct{ name, header string }{
			{"no_token", ""},
			{"a_wrong_token", "Bearer admin-secreT"},
			{"a_tenant_api_key", "Bearer " + firstKey},
			{"the_admin_token_as_basic_auth", "Basic " + adminToken},
		}
		for _, tok := range tokens {
			for _, route := range routes {
				t.Run(route.name+"_with_"+tok.name+"_is_refused", func(t *testing.T) {
					var headers []string
					if tok.header != "" {
						headers = []string{"Authorization", tok.header}
					}
					r := e.call(t, route.method, route.path, "", map[string]any{"name": "intruder"}, headers...)
					p := r.problem(t, http.StatusUnauthorized)
					if p.Type != "urn:creditd:problem:unauthorized" {
						t.Errorf("type %q", p.Type)
					}
					if got := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
						t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", got)
					}
				})
			}
		}
		// The refused revocation left the first key working.
		e.grant(t, firstKey, "g-after-refusals", 1)
	})

	t.Run("repeating_a_create_with_its_idempotency_key_answers_the_same_tenant_without_a_key", func(t *testing.T) {
		body := map[string]any{"name": "globex", "currency": "EUR"}
		first := e.call(t, "POST", "/v1/tenants", adminToken, body, "Idempotency-Key", "create-globex").want(t, http.StatusCreated)
		position := e.position(t, first)
		if first["api_key"] == nil {
			t.Fatalf("first create has no api_key: %v", first)
		}
		again := e.call(t, "POST", "/v1/tenants", adminToken, body, "Idempotency-Key", "create-globex").want(t, http.StatusOK)
		wantString(t, again, "status", "duplicate")
		if uintOf(t, again, "tenant_id") != uintOf(t, first, "tenant_id") {
			t.Errorf("tenant_id %v, want %v", again["tenant_id"], first["tenant_id"])
		}
		if p := uintOf(t, again, "position"); p != position {
			t.Errorf("position %d, want the original %d", p, position)
		}
		if _, ok := again["api_key"]; ok {
			t.Errorf("a repeat shows an api_key: %v", again)
		}
		wantString(t, again, "name", "globex")
		wantString(t, again, "currency", "EUR")
	})

	t.Run("the_same_idempotency_key_with_another_name_is_a_409", func(t *testing.T) {
		e.call(t, "POST", "/v1/tenants", adminToken, map[string]any{"name": "initech"}, "Idempotency-Key", "create-initech").want(t, http.StatusCreated)
		r := e.call(t, "POST", "/v1/tenants", adminToken, map[string]any{"name": "initrode"}, "Idempotency-Key", "create-initech")
		if p := r.problem(t, http.StatusConflict); p.Type != "urn:creditd:problem:idempotency-conflict" {
			t.Errorf("type %q", p.Type)
		}
	})

	t.Run("invalid_tenant_fields_are_a_400_naming_each", func(t *testing.T) {
		r := e.call(t, "POST", "/v1/tenants", adminToken, map[string]any{"name": "", "currency": "usd"})
		r.problem(t, http.StatusBadRequest, "body.name", "body.currency")
	})

	t.Run("a_second_key_works_until_it_is_revoked", func(t *testing.T) {
		issued := e.call(t, "POST", fmt.Sprintf("/v1/tenants/%d/api-keys", tenantID), adminToken, nil).want(t, http.StatusCreated)
		e.position(t, issued)
		secondKey, _ := issued["api_key"].(string)
		secondKeyID, _ := issued["key_id"].(string)
		if secondKey == "" || secondKey == firstKey || secondKeyID == "" || secondKeyID == firstKeyID {
			t.Fatalf("issued %v", issued)
		}
		if uintOf(t, issued, "tenant_id") != uint64(tenantID) {
			t.Errorf("tenant_id %v, want %d", issued["tenant_id"], tenantID)
		}
		e.position(t, e.grant(t, secondKey, "g-second-key", 1))

		revoked := e.call(t, "DELETE", fmt.Sprintf("/v1/tenants/%d/api-keys/%s", tenantID, secondKeyID), adminToken, nil).want(t, http.StatusOK)
		e.position(t, revoked)
		if revoked["revoked"] != true {
			t.Errorf("revoked = %v", revoked["revoked"])
		}
		wantString(t, revoked, "key_id", secondKeyID)

		r := e.call(t, "POST", "/v1/grants", secondKey, map[string]any{"grant_id": "g-revoked", "amount": 1})
		r.problem(t, http.StatusUnauthorized)
		if r.Header.Get("WWW-Authenticate") == "" {
			t.Error("401 without WWW-Authenticate")
		}
		// The first key is untouched.
		e.grant(t, firstKey, "g-first-still-works", 1)
		if l := e.line(t, tenantID, "default"); l.Granted.String() != "4" {
			t.Errorf("granted %s, want 4 (the revoked key's grant refused)", l.Granted)
		}
	})

	t.Run("a_tenant_cannot_revoke_through_another_tenants_id", func(t *testing.T) {
		otherID, otherKey := e.tenant(t, "hooli")
		r := e.call(t, "DELETE", fmt.Sprintf("/v1/tenants/%d/api-keys/%s", otherID, firstKeyID), adminToken, nil)
		if p := r.problem(t, http.StatusNotFound); p.Type != "urn:creditd:problem:api-key-not-found" {
			t.Errorf("type %q", p.Type)
		}
		e.grant(t, firstKey, "g-not-revoked", 1)
		e.grant(t, otherKey, "g-other", 1)
	})

	t.Run("an_unknown_tenant_or_key_is_a_404", func(t *testing.T) {
		r := e.call(t, "POST", "/v1/tenants/9999/api-keys", adminToken, nil)
		if p := r.problem(t, http.StatusNotFound); p.Type != "urn:creditd:problem:tenant-not-found" {
			t.Errorf("type %q", p.Type)
		}
		r = e.call(t, "DELETE", fmt.Sprintf("/v1/tenants/%d/api-keys/key_nope", tenantID), adminToken, nil)
		if p := r.problem(t, http.StatusNotFound); p.Type != "urn:creditd:problem:api-key-not-found" {
			t.Errorf("type %q", p.Type)
		}
	})

	t.Run("a_bad_tenant_id_in_the_path_is_a_400_naming_path_tenant_id", func(t *testing.T) {
		for _, id := range []string{"abc", "0", "-1", "1.5", "99999999999999999999"} {
			for _, route := range []struct{ name, method, path string }{
				{"issue_key", "POST", "/v1/tenants/" + id + "/api-keys"},
				{"revoke_key", "DELETE", "/v1/tenants/" + id + "/api-keys/" + firstKeyID},
			} {
				t.Run(route.name+"_for_tenant_"+id, func(t *testing.T) {
					p := e.call(t, route.method, route.path, adminToken, nil).problem(t, http.StatusBadRequest, "path.tenant_id")
					if len(p.Errors) != 1 || p.Errors[0].Location != "path.tenant_id" || p.Errors[0].Value != id {
						t.Errorf("errors %+v, want one at path.tenant_id with value %q", p.Errors, id)
					}
				})
			}
		}
	})
}
