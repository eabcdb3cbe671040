package web

import (
	"encoding/json"
	"net/http"

	"github.com/shopspring/decimal"
)

// Number writes a decimal as a JSON number whose text is the exact decimal.
// The OpenAPI document knows it by its type and describes it as one.
type Number decimal.Decimal

// MarshalJSON writes the decimal's exact text, unquoted.
func (n Number) MarshalJSON() ([]byte, error) { return []byte(decimal.Decimal(n).String()), nil }

// Price is a subscription's price per period, as the native subscription
// answers and the account profile's summary give it.
type Price struct {
	Amount   Number `json:"amount"`
	Currency string `json:"currency"`
}

// WriteJSON answers status with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
