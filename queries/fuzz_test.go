package queries

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzParseRange: dates and instants parse to a valid range or a named
// parameter error; never a panic, never a range over the limit.
func FuzzParseRange(f *testing.F) {
	for _, seed := range [][2]string{{"2026-01-01", "2026-01-31"}, {"2026-01-01T00:00:00Z", "2026-01-01T00:00:00+02:00"}, {"", ""},
		{"2026-02-30", "x"}, {"2020-01-01", "2026-01-01"}, {"9999-12-31", "0001-01-01"}} {
		f.Add(seed[0], seed[1])
	}
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, from, to string) {
		r, err := ParseRange(from, to, now, 30)
		if err != nil {
			if len(ParamErrors(err)) == 0 {
				t.Fatalf("error without a parameter: %v", err)
			}
			return
		}
		if r.From.After(r.To) || r.ToDay-r.FromDay+1 > RangeDaysMax {
			t.Fatalf("accepted %+v", r)
		}
	})
}

// FuzzFiltersAndGroupBy: any query string yields known dimensions only,
// whose SQL is built from the fixed column map (custom keys are bound).
func FuzzFiltersAndGroupBy(f *testing.F) {
	for _, seed := range []string{"group_by=module,custom.region&module=a&module=b", "custom.x'--=1", "success=maybe", "group_by=a,b,c,d,e",
		"group_by=module,module", "custom.=x", "from=1&bogus=2"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		params, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		dims, _ := ParseGroupBy(params.Get("group_by"))
		filters, _ := ParseFilters(params, "group_by", "from", "to", "granularity")
		for _, f := range filters {
			dims = append(dims, f.Dimension)
		}
		for _, d := range dims {
			expr, args := d.sql()
			if d.column == "" && (len(args) != 1 || strings.ContainsAny(expr, "'\\"+`"`) && !strings.HasPrefix(expr, "coalesce(json_extract(nullif(custom, ''), ?), '')")) {
				t.Fatalf("custom dimension %q builds %q", d.Name, expr)
			}
			if d.column != "" && dimensionColumns[d.Name] != d.column {
				t.Fatalf("dimension %q maps to column %q", d.Name, d.column)
			}
		}
	})
}
