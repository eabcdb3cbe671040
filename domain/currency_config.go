package domain

import (
	"bytes"
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/shopspring/decimal"
)

// CurrencyConfig is the typed part of a tenant's currency_config, its
// money-display configuration. The lasso seed documents these members:
// monthly_fee_<currency> (the plan's monthly fee in that currency, one
// member per lowercase ISO 4217 code), monthly_credits (the credits the fee
// buys each month) and auto_<currency> (booleans). The tenant's other
// members are its own: kept as given, never read.
type CurrencyConfig struct {
	// MonthlyFees are the fees by lowercase currency code.
	MonthlyFees map[string]decimal.Decimal
	// MonthlyCredits is nil when the config does not give it.
	MonthlyCredits *decimal.Decimal
	// Auto are the auto_<currency> flags by lowercase currency code.
	Auto map[string]bool
}

const (
	monthlyFeePrefix   = "monthly_fee_"
	monthlyCreditsName = "monthly_credits"
	autoPrefix         = "auto_"
)

// currencyCodeLower is a currency code as the typed members name it.
var currencyCodeLower = regexp.MustCompile(`^[a-z]{3}$`)

// MonthlyFee is the monthly fee in currency (any case) and whether the
// config gives one.
func (c CurrencyConfig) MonthlyFee(currency string) (decimal.Decimal, bool) {
	fee, ok := c.MonthlyFees[strings.ToLower(currency)]
	return fee, ok
}

// ParseCurrencyConfig reads a currency_config JSON object and checks its
// typed members: each monthly_fee_<code> (code three lowercase letters) a
// number at least 0, monthly_credits a number above 0, both with the
// bounds of an amount (ValidateAmount), and each auto_<code> a boolean. An auto_
// member of another form is the tenant's own. The error joins a
// *FieldError located at currency_config.<member> for every bad member.
func ParseCurrencyConfig(raw json.RawMessage) (CurrencyConfig, error) {
	config := CurrencyConfig{MonthlyFees: map[string]decimal.Decimal{}, Auto: map[string]bool{}}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil || members == nil {
		return config, &FieldError{Location: "currency_config", Message: "must be a JSON object"}
	}
	var v validator
	// Sorted, so the same bad config always yields the same problem list.
	for _, name := range slices.Sorted(maps.Keys(members)) {
		value, location := bytes.TrimSpace(members[name]), "currency_config."+name
		switch code, isFee := strings.CutPrefix(name, monthlyFeePrefix); {
		case isFee:
			if !currencyCodeLower.MatchString(code) {
				v.add(location, "must be monthly_fee_ and a three-letter currency code in lower case, such as monthly_fee_eur", name)
				continue
			}
			if fee, ok := configNumber(&v, location, value, ValidateNonNegative); ok {
				config.MonthlyFees[code] = fee
			}
		case name == monthlyCreditsName:
			if credits, ok := configNumber(&v, location, value, ValidatePositive); ok {
				config.MonthlyCredits = &credits
			}
		case strings.HasPrefix(name, autoPrefix) && currencyCodeLower.MatchString(strings.TrimPrefix(name, autoPrefix)):
			switch string(value) {
			case "true", "false":
				config.Auto[strings.TrimPrefix(name, autoPrefix)] = string(value) == "true"
			default:
				v.add(location, "must be true or false", string(value))
			}
		}
	}
	return config, v.err()
}

// configNumber reads a typed member's number, which check bounds.
func configNumber(v *validator, location string, value []byte, check func(decimal.Decimal) error) (decimal.Decimal, bool) {
	// A JSON number starts with a digit or a minus; NewFromString would
	// also take a quoted one apart.
	if len(value) == 0 || (value[0] != '-' && (value[0] < '0' || value[0] > '9')) {
		v.add(location, "must be a number", string(value))
		return decimal.Zero, false
	}
	d, err := decimal.NewFromString(string(value))
	if err != nil {
		v.add(location, "must be a number", string(value))
		return decimal.Zero, false
	}
	problems := len(v.errs)
	v.amount(location, d, check)
	return d, len(v.errs) == problems
}
