package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/stack"
)

func TestGrantAmendmentsAndSubscriptionsOverHTTP(t *testing.T) {
	t.Parallel()
	s := stack.Start(t)
	s.Clock.Set(time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC))
	_, key := s.Tenant("acme")
	total := func() map[string]any {
		s.Sync()
		return s.Must(http.StatusOK, http.MethodGet, "/v1/balance", key, nil)["total"].(map[string]any)
	}

	t.Run("a_voided_grant_leaves_the_balance_as_an_adjustment", func(t *testing.T) {
		s.Must(http.StatusCreated, http.MethodPost, "/v1/grants", key, map[string]any{"grant_id": "g1", "amount": "100", "credit_type": "gpu"})
		s.Must(http.StatusOK, http.MethodPost, "/v1/usage", key, map[string]any{"events": []any{map[string]any{"id": "u1", "amount": "30", "credit_type": "gpu"}}})
		v := s.Must(http.StatusOK, http.MethodPost, "/v1/grants/g1/void", key, map[string]any{"reason": "refunded"})
		if fmt.Sprint(v["voided"]) != "70" {
			t.Fatalf("void answered %v", v)
		}
		again := s.Must(http.StatusOK, http.MethodPost, "/v1/grants/g1/void", key, map[string]any{"reason": "refunded"})
		if again["status"] != "duplicate" || fmt.Sprint(again["position"]) != fmt.Sprint(v["position"]) {
			t.Fatalf("repeat void %v", again)
		}
		got := total()
		if fmt.Sprint(got["balance"]) != "0" || fmt.Sprint(got["adjusted"]) != "-70" {
			t.Fatalf("total after void %v", got)
		}
		ledger := s.Must(http.StatusOK, http.MethodGet, "/v1/ledger?type=adjustment", key, nil)["entries"].([]any)
		if len(ledger) != 1 || fmt.Sprint(ledger[0].(map[string]any)["amount"]) != "-70" {
			t.Fatalf("ledger %v", ledger)
		}
		s.Do(http.MethodPost, "/v1/grants/nope/void", key, map[string]any{"reason": "x"}).JSON(t)
		if r := s.Do(http.MethodPost, "/v1/grants/nope/void", key, map[string]any{"reason": "x"}); r.Status != http.StatusNotFound {
			t.Fatalf("unknown grant: %d %s", r.Status, r.Body)
		}
	})

	t.Run("an_expiry_change_is_swept_at_the_new_time", func(t *testing.T) {
		s.Must(http.StatusCreated, http.MethodPost, "/v1/grants", key, map[string]any{"grant_id": "g2", "amount": "40"})
		soon := s.Clock.Now().Add(time.Hour).Format(time.RFC3339)
		s.Must(http.StatusOK, http.MethodPatch, "/v1/grants/g2", key, map[string]any{"expires_at": soon})
		if r := s.Do(http.MethodPatch, "/v1/grants/g2", key, map[string]any{"expires_at": "2020-01-01T00:00:00Z"}); r.Status != http.StatusBadRequest {
			t.Fatalf("past expiry: %d", r.Status)
		}
		if r := s.Do(http.MethodPatch, "/v1/grants/g2", key, map[string]any{}); r.Status != http.StatusBadRequest {
			t.Fatalf("missing expiry: %d", r.Status)
		}
		s.Clock.Advance(2 * time.Hour)
		deadline := time.Now().Add(5 * time.Second)
		for fmt.Sprint(total()["expired"]) != "40" {
			if time.Now().After(deadline) {
				t.Fatalf("not expired: %v", total())
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("a_subscription_allocates_each_month_until_canceled", func(t *testing.T) {
		start := s.Clock.Now().Format(time.RFC3339)
		s.Must(http.StatusCreated, http.MethodPost, "/v1/subscriptions", key, map[string]any{"subscription_id": "pro", "credit_type": "plan",
			"credits_per_period": "1000", "starts_at": start, "price": map[string]any{"amount": "20", "currency": "EUR"}})
		if r := s.Do(http.MethodPost, "/v1/subscriptions", key, map[string]any{"subscription_id": "pro", "credit_type": "plan", "credits_per_period": "5"}); r.Status != http.StatusConflict {
			t.Fatalf("reused id: %d %s", r.Status, r.Body)
		}
		s.Clock.Advance(32 * 24 * time.Hour)
		deadline := time.Now().Add(5 * time.Second)
		for {
			s.Sync()
			m := s.Must(http.StatusOK, http.MethodGet, "/v1/balance?credit_type=plan", key, nil)["total"].(map[string]any)
			if fmt.Sprint(m["granted"]) == "2000" && fmt.Sprint(m["expired"]) == "1000" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("plan line %v, want the second allocation and the first expired", m)
			}
			time.Sleep(20 * time.Millisecond)
		}
		c := s.Must(http.StatusOK, http.MethodDelete, "/v1/subscriptions/pro", key, nil)
		if c["ends_at"] == nil {
			t.Fatalf("cancel %v", c)
		}
		if r := s.Do(http.MethodDelete, "/v1/subscriptions/nope", key, nil); r.Status != http.StatusNotFound {
			t.Fatalf("unknown subscription: %d %s", r.Status, r.Body)
		}
		s.Clock.Advance(62 * 24 * time.Hour)
		time.Sleep(200 * time.Millisecond)
		s.Sync()
		m := s.Must(http.StatusOK, http.MethodGet, "/v1/balance?credit_type=plan", key, nil)["total"].(map[string]any)
		if fmt.Sprint(m["granted"]) != "2000" {
			t.Fatalf("allocated after the cancellation: %v", m)
		}
	})
}
