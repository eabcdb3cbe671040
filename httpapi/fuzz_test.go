package httpapi_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/httpapi"
)

// FuzzDecodeUsageEvent: any bytes decode to a valid event or to an error
// naming what is wrong; never a panic, never an invalid event.
func FuzzDecodeUsageEvent(f *testing.F) {
	for _, seed := range []string{
		`{"id":"u1","amount":"2.5","module":"search","custom":{"region":"eu"}}`,
		`{"id":"u1","amount":1e3,"timestamp":"2026-01-02T03:04:05Z","success":false,"quantity":"3"}`,
		`{"id":"","amount":"abc"}`, `{"id":"u","amount":"1.1234567"}`, `{"id":"u","amount":"1e12"}`,
		`{"id":"u","amount":"1","bogus":true}`, `{"id":"u","amount":"1"} trailing`, `[]`, `null`, ``,
		`{"id":"u","amount":"1","custom":{"a b":"x"}}`, `{"id":"u","amount":"-0.000001"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := httpapi.DecodeUsageEvent(data)
		if err != nil {
			if !errors.Is(err, domain.ErrInvalidCommand) && len(domain.FieldErrors(err)) == 0 {
				t.Fatalf("error without a field or a reason: %v", err)
			}
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("decoded an invalid event: %v", err)
		}
		if err := domain.ValidateCreditType(ev.CreditType); err != nil {
			t.Fatalf("decoded a bad credit type: %v", err)
		}
		if _, err := json.Marshal(ev.Dimensions); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzAmount: an amount in any JSON form is accepted exactly or refused.
func FuzzAmount(f *testing.F) {
	for _, seed := range []string{`1`, `"1.5"`, `" 2 "`, `1e-6`, `"1e12"`, `-0`, `"x"`, `null`, `{}`, `[1]`, `""`, `0.0000001`, `123456789012345678901234567890`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var a httpapi.Amount
		if err := a.UnmarshalJSON(data); err != nil {
			return
		}
		if a.Set && domain.ValidateAmount(a.Value) == nil {
			if a.Value.Exponent() < -domain.AmountScaleMax && !a.Value.Equal(a.Value.Truncate(domain.AmountScaleMax)) {
				t.Fatalf("accepted %s with more than 6 places", a.Value)
			}
		}
	})
}
