package queries

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Dimensions of the usage cube that filters and group_by may name, mapped
// to their column. SQL is only ever built from this fixed map; custom keys
// are passed as bound parameters.
var dimensionColumns = map[string]string{
	"credit_type":     "credit_type",
	"module":          "module",
	"service":         "service",
	"user_id":         "user_id",
	"workflow_id":     "workflow_id",
	"workflow_run_id": "workflow_run_id",
	"endpoint":        "endpoint",
	"success":         "success",
}

// Bounds of a usage query.
const (
	groupByMax       = 4
	filterValuesMax  = 100
	customPrefix     = "custom."
	customKeyLenMax  = 64
	filterParamsMax  = 16
	usageRowsMax     = 10_000
	usageRowsExceeds = usageRowsMax + 1
)

// Dimension is one cube dimension: a fixed column or a custom key.
type Dimension struct {
	Name      string // as the client wrote it: module, custom.region
	column    string // fixed column, or "" for a custom key
	customKey string
}

// sql returns the dimension's SQL expression and its bound argument, if any.
func (d Dimension) sql() (string, []any) {
	if d.column != "" {
		return d.column, nil
	}
	// custom is '' when a row has no custom keys; nullif keeps
	// json_extract from reading '' as malformed JSON.
	return "coalesce(json_extract(nullif(custom, ''), ?), '')", []any{`$."` + d.customKey + `"`}
}

// ParseDimension reads a dimension name.
func ParseDimension(name string) (Dimension, error) {
	if col, ok := dimensionColumns[name]; ok {
		return Dimension{Name: name, column: col}, nil
	}
	if key, ok := strings.CutPrefix(name, customPrefix); ok && ValidCustomKey(key) {
		return Dimension{Name: name, customKey: key}, nil
	}
	return Dimension{}, fmt.Errorf("unknown dimension %q: use one of %s or custom.<key>", name, strings.Join(dimensionNames(), ", "))
}

// ValidCustomKey reports whether a custom key can be filtered on: 1 to 64
// letters, digits or _ - . : (the same rule writes enforce).
func ValidCustomKey(key string) bool {
	if key == "" || len(key) > customKeyLenMax {
		return false
	}
	for _, c := range key {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func dimensionNames() []string {
	names := make([]string, 0, len(dimensionColumns))
	for n := range dimensionColumns {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Filter keeps cube rows whose dimension has one of Values.
type Filter struct {
	Dimension Dimension
	Values    []string
}

// ParseGroupBy reads a comma-separated group_by list.
func ParseGroupBy(text string) ([]Dimension, error) {
	if text == "" {
		return nil, nil
	}
	names := strings.Split(text, ",")
	if len(names) > groupByMax {
		return nil, &ParamError{Param: "group_by", Message: fmt.Sprintf("groups by at most %d dimensions", groupByMax), Value: text}
	}
	var dims []Dimension
	for _, n := range names {
		d, err := ParseDimension(strings.TrimSpace(n))
		if err != nil {
			return nil, &ParamError{Param: "group_by", Message: err.Error(), Value: n}
		}
		if slices.ContainsFunc(dims, func(x Dimension) bool { return x.Name == d.Name }) {
			return nil, &ParamError{Param: "group_by", Message: "names " + d.Name + " twice", Value: text}
		}
		dims = append(dims, d)
	}
	return dims, nil
}

// ParseFilters reads dimension filters from query parameters: every
// parameter not in reserved must be a dimension (module=search,
// custom.region=eu); repeating one means any of the values. An unknown
// parameter is an error, not silently ignored.
func ParseFilters(params url.Values, reserved ...string) ([]Filter, error) {
	var filters []Filter
	var errs []error
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if slices.Contains(reserved, name) {
			continue
		}
		d, err := ParseDimension(name)
		if err != nil {
			errs = append(errs, &ParamError{Param: name, Message: "is not a known parameter or dimension"})
			continue
		}
		values := params[name]
		if len(values) > filterValuesMax {
			errs = append(errs, &ParamError{Param: name, Message: fmt.Sprintf("takes at most %d values", filterValuesMax)})
			continue
		}
		if name == "success" {
			for i, v := range values {
				switch v {
				case "true":
					values[i] = "1"
				case "false":
					values[i] = "0"
				default:
					errs = append(errs, &ParamError{Param: name, Message: "must be true or false", Value: v})
				}
			}
		}
		filters = append(filters, Filter{Dimension: d, Values: values})
	}
	if len(filters) > filterParamsMax {
		errs = append(errs, &ParamError{Param: "filters", Message: fmt.Sprintf("at most %d dimension filters", filterParamsMax)})
	}
	return filters, joinParams(errs)
}

// filterSQL appends the WHERE terms and arguments of filters.
func filterSQL(filters []Filter, where []string, args []any) ([]string, []any) {
	for _, f := range filters {
		expr, exprArgs := f.Dimension.sql()
		where = append(where, expr+" IN ("+strings.TrimSuffix(strings.Repeat("?,", len(f.Values)), ",")+")")
		args = append(args, exprArgs...)
		for _, v := range f.Values {
			args = append(args, v)
		}
	}
	return where, args
}
