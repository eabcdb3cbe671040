package domain

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// Bounds on command fields. Each is part of the API contract (docs/decisions.md).
const (
	IDLengthMax          = 128
	DimensionLengthMax   = 256
	TextLengthMax        = 1024
	CustomKeysMax        = 16
	CustomKeyLengthMax   = 64
	CustomValueLengthMax = 256
	MetadataKeysMax      = 32
	CreditTypeLengthMax  = 64
)

// FieldError is one problem with one field of a command. Location is relative
// to the command ("amount", "custom.region"); the HTTP layer prefixes it with
// where the command sat in the request.
type FieldError struct {
	Location string
	Message  string
	Value    any
}

func (e *FieldError) Error() string { return e.Location + ": " + e.Message }

// Unwrap lets errors.Is(err, ErrInvalidCommand) hold for every field error.
func (e *FieldError) Unwrap() error { return ErrInvalidCommand }

// FieldErrors returns the field errors joined in err, in order.
func FieldErrors(err error) []*FieldError {
	switch e := err.(type) {
	case nil:
		return nil
	case *FieldError:
		return []*FieldError{e}
	case interface{ Unwrap() []error }:
		var out []*FieldError
		for _, inner := range e.Unwrap() {
			out = append(out, FieldErrors(inner)...)
		}
		return out
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return []*FieldError{fe}
	}
	return nil
}

// validator gathers every problem of a command, so a 400 lists all at once.
type validator struct{ errs []error }

func (v *validator) add(location, message string, value any) {
	v.errs = append(v.errs, &FieldError{Location: location, Message: message, Value: value})
}

func (v *validator) err() error { return errors.Join(v.errs...) }

func (v *validator) text(location, s string, max int, required bool) {
	switch {
	case required && s == "":
		v.add(location, "is required", s)
	case len(s) > max:
		v.add(location, fmt.Sprintf("is longer than %d bytes", max), nil)
	case !utf8.ValidString(s):
		v.add(location, "is not valid UTF-8", nil)
	}
}

func (v *validator) id(location, s string, required bool) {
	v.text(location, s, IDLengthMax, required)
}

func (v *validator) amount(location string, d decimal.Decimal, check func(decimal.Decimal) error) {
	if err := check(d); err != nil {
		// The checks wrap a sentinel ("amount must not be negative: must
		// not be negative"); the location already names the field, so the
		// message is the detail alone, said once.
		message := err.Error()
		if sentinel := errors.Unwrap(err); sentinel != nil {
			message = strings.TrimPrefix(message, sentinel.Error()+": ")
		}
		v.add(location, message, d.String())
	}
}

func (v *validator) stringMap(location string, m map[string]string, keysMax, keyMax, valueMax int) {
	if len(m) == 0 {
		return
	}
	if len(m) > keysMax {
		v.add(location, fmt.Sprintf("has more than %d keys", keysMax), len(m))
		return
	}
	if stringMapValid(m, keyMax, valueMax) {
		return // the common case: no sorting, no locations built
	}
	// Sorted, so the same bad map always yields the same problem list.
	for _, k := range slices.Sorted(maps.Keys(m)) {
		val := m[k]
		if k == "" {
			v.add(location, "has an empty key", k)
		}
		v.text(location+"."+k, k, keyMax, false)
		v.text(location+"."+k, val, valueMax, false)
	}
}

func (v *validator) dimensions(d Dimensions) {
	v.text("module", d.Module, DimensionLengthMax, false)
	v.text("service", d.Service, DimensionLengthMax, false)
	v.text("user_id", d.UserID, DimensionLengthMax, false)
	v.text("workflow_id", d.WorkflowID, DimensionLengthMax, false)
	v.text("workflow_run_id", d.WorkflowRunID, DimensionLengthMax, false)
	v.text("endpoint", d.Endpoint, DimensionLengthMax, false)
	v.amount("quantity", d.Quantity, ValidateNonNegative)
	v.stringMap("custom", d.Custom, CustomKeysMax, CustomKeyLengthMax, CustomValueLengthMax)
	if len(d.Custom) == 0 {
		return // most usage has no custom dimensions: no sorting
	}
	valid := true
	for k := range d.Custom {
		valid = valid && validCustomKey(k)
	}
	if valid {
		return
	}
	for _, k := range slices.Sorted(maps.Keys(d.Custom)) {
		// Empty and over-long keys are reported by stringMap already.
		if k != "" && len(k) <= CustomKeyLengthMax && !validCustomKey(k) {
			v.add("custom."+k, "a custom key is 1 to 64 letters, digits or _-.: (so it can be filtered and grouped on)", k)
		}
	}
}

// stringMapValid reports whether stringMap would find nothing wrong with
// the keys and values of m (their count aside), without building a
// location per key as the report of a problem needs.
func stringMapValid(m map[string]string, keyMax, valueMax int) bool {
	for k, val := range m {
		if k == "" || len(k) > keyMax || len(val) > valueMax || !utf8.ValidString(k) || !utf8.ValidString(val) {
			return false
		}
	}
	return true
}

func validCustomKey(k string) bool {
	if k == "" || len(k) > CustomKeyLengthMax {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// ValidateCreditType checks a credit type name: 1 to 64 bytes of letters,
// digits and _ - . : (it appears in subjects, URLs and report keys).
func ValidateCreditType(s string) error {
	ok := s != "" && len(s) <= CreditTypeLengthMax
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			ok = false
		}
	}
	if !ok {
		return &FieldError{Location: "credit_type", Message: fmt.Sprintf("must be 1 to %d letters, digits or _-.:", CreditTypeLengthMax), Value: s}
	}
	return nil
}
