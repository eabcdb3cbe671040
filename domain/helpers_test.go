package domain

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// t0 is the fixed "now" of most tests.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// d parses a decimal literal; a typo in a test panics at once.
func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func dp(s string) *decimal.Decimal {
	v := d(s)
	return &v
}

func tp(t time.Time) *time.Time { return &t }

// apply applies each event to l and checks the line's invariants after every
// single one, failing loudly with the event that broke them.
func apply(t testing.TB, l *Line, events ...Event) {
	t.Helper()
	for i, e := range events {
		l.Apply(e)
		if err := l.CheckInvariants(); err != nil {
			t.Fatalf("invariants broken after applying event %d of %d (%T %+v): %v", i+1, len(events), e, e, err)
		}
	}
}

// must returns a function that fails the test when a decision returned an
// error, for must(t)(DecideX(...)).
func must(t testing.TB) func([]Event, error) []Event {
	t.Helper()
	return func(events []Event, err error) []Event {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected decision error: %v", err)
		}
		return events
	}
}

// granted is a purchase grant effective at t0; opts adjust it.
func granted(id, amount string, opts ...func(*CreditsGranted)) CreditsGranted {
	g := CreditsGranted{GrantID: id, Amount: d(amount), Source: SourcePurchase, EffectiveAt: t0}
	for _, o := range opts {
		o(&g)
	}
	return g
}

func priority(p int) func(*CreditsGranted) { return func(g *CreditsGranted) { g.Priority = p } }

func expiresAt(at time.Time) func(*CreditsGranted) {
	return func(g *CreditsGranted) { g.ExpiresAt = tp(at) }
}

func effectiveAt(at time.Time) func(*CreditsGranted) {
	return func(g *CreditsGranted) { g.EffectiveAt = at }
}

// lineWith returns a fresh line with events applied (invariants checked).
func lineWith(t testing.TB, events ...Event) *Line {
	t.Helper()
	l := NewLine(DefaultCreditType)
	// Decided at t0, as a writer would observe the line before deciding.
	l.Observe(t0)
	apply(t, l, events...)
	return l
}

func wantDec(t testing.TB, what string, got decimal.Decimal, want string) {
	t.Helper()
	if !got.Equal(d(want)) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

// wantTotals checks the line's headline numbers.
func wantTotals(t testing.TB, l *Line, balance, available string) {
	t.Helper()
	wantDec(t, "balance", l.Balance(), balance)
	wantDec(t, "available", l.Available(), available)
	wantDec(t, "balance formula granted+adjusted-used-expired", l.Granted.Add(l.Adjusted).Sub(l.Used).Sub(l.Expired), balance)
	wantDec(t, "available formula balance-reserved", l.Balance().Sub(l.Reserved), available)
}

func burn(id, amount string) Burn { return Burn{GrantID: id, Amount: d(amount)} }

func wantBurns(t testing.TB, got []Burn, want ...Burn) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = got[i].GrantID == want[i].GrantID && got[i].Amount.Equal(want[i].Amount)
	}
	if !ok {
		t.Errorf("burned = %s, want %s", fmtBurns(got), fmtBurns(want))
	}
}

func fmtBurns(bs []Burn) string {
	s := "["
	for i, b := range bs {
		if i > 0 {
			s += " "
		}
		s += b.GrantID + ":" + b.Amount.String()
	}
	return s + "]"
}

// remaining returns what is left of grant id, and false when the line no
// longer holds it.
func remaining(l *Line, id string) (decimal.Decimal, bool) {
	for _, g := range l.Grants {
		if g.GrantID == id {
			return g.Remaining, true
		}
	}
	return decimal.Zero, false
}

func wantRemaining(t testing.TB, l *Line, id, want string) {
	t.Helper()
	got, ok := remaining(l, id)
	if !ok {
		if d(want).IsZero() {
			return
		}
		t.Errorf("grant %s is gone, want %s remaining", id, want)
		return
	}
	if !got.Equal(d(want)) {
		t.Errorf("grant %s remaining = %s, want %s", id, got, want)
	}
}

func grantIDs(l *Line) []string {
	ids := make([]string, 0, len(l.Grants))
	for _, g := range l.Grants {
		ids = append(ids, g.GrantID)
	}
	return ids
}

// locations returns the Location of every field error in err, in order.
func locations(err error) []string {
	var out []string
	for _, fe := range FieldErrors(err) {
		out = append(out, fe.Location)
	}
	return out
}

// wantFieldErrors checks err is an invalid command naming exactly want.
func wantFieldErrors(t testing.TB, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want field errors at %v", want)
	}
	if !errors.Is(err, ErrInvalidCommand) {
		t.Errorf("errors.Is(%v, ErrInvalidCommand) = false", err)
	}
	if got := locations(err); !slices.Equal(got, want) {
		t.Errorf("field error locations = %q, want %q (err: %v)", got, want, err)
	}
}

// snapshot is every number of a line, to check that an event moved nothing.
type snapshot struct {
	Granted, Adjusted, Used, Expired, Reserved, Unallocated, Overdraft string
	Grants                                                             string
	Holds                                                              int
}

func snap(l *Line) snapshot {
	gs := ""
	for _, g := range l.Grants {
		gs += g.GrantID + "=" + g.Remaining.String() + ";"
	}
	return snapshot{
		Granted: l.Granted.String(), Adjusted: l.Adjusted.String(), Used: l.Used.String(),
		Expired: l.Expired.String(), Reserved: l.Reserved.String(), Unallocated: l.Unallocated.String(),
		Overdraft: l.OverdraftLimit.String(), Grants: gs, Holds: len(l.Reservations),
	}
}

var (
	decimalType = reflect.TypeFor[decimal.Decimal]()
	timeType    = reflect.TypeFor[time.Time]()
)

// sameValue compares a and b field by field like reflect.DeepEqual, except
// that decimals compare with Equal and times with Equal plus their location
// name. It returns a description of the first difference.
func sameValue(a, b any) error { return sameReflect("", reflect.ValueOf(a), reflect.ValueOf(b)) }

func sameReflect(path string, a, b reflect.Value) error {
	if a.IsValid() != b.IsValid() {
		return fmt.Errorf("%s: one side is invalid", path)
	}
	if !a.IsValid() {
		return nil
	}
	if a.Type() != b.Type() {
		return fmt.Errorf("%s: type %s != %s", path, a.Type(), b.Type())
	}
	switch a.Type() {
	case decimalType:
		x, y := a.Interface().(decimal.Decimal), b.Interface().(decimal.Decimal)
		if !x.Equal(y) {
			return fmt.Errorf("%s: %s != %s", path, x, y)
		}
		return nil
	case timeType:
		x, y := a.Interface().(time.Time), b.Interface().(time.Time)
		if !x.Equal(y) || x.Location().String() != y.Location().String() {
			return fmt.Errorf("%s: %s != %s", path, x, y)
		}
		return nil
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() != b.IsNil() {
			return fmt.Errorf("%s: nil %v != nil %v", path, a.IsNil(), b.IsNil())
		}
		if a.IsNil() {
			return nil
		}
		return sameReflect(path, a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			f := a.Type().Field(i)
			if !f.IsExported() {
				return fmt.Errorf("%s: cannot compare unexported field %s", path, f.Name)
			}
			if err := sameReflect(path+"."+f.Name, a.Field(i), b.Field(i)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return fmt.Errorf("%s: slice nil=%v len=%d != nil=%v len=%d", path, a.IsNil(), a.Len(), b.IsNil(), b.Len())
		}
		for i := range a.Len() {
			if err := sameReflect(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return fmt.Errorf("%s: map nil=%v len=%d != nil=%v len=%d", path, a.IsNil(), a.Len(), b.IsNil(), b.Len())
		}
		for _, k := range a.MapKeys() {
			bv := b.MapIndex(k)
			if !bv.IsValid() {
				return fmt.Errorf("%s: key %v missing", path, k)
			}
			if err := sameReflect(fmt.Sprintf("%s[%v]", path, k), a.MapIndex(k), bv); err != nil {
				return err
			}
		}
		return nil
	}
	if !a.Equal(b) {
		return fmt.Errorf("%s: %v != %v", path, a, b)
	}
	return nil
}

// predictedTotals are the totals of before once e is applied, as the limit
// check counts them (moveTotals).
func predictedTotals(before *Line, e Event) [totalCount]decimal.Decimal {
	want := totalsOf(before)
	moveTotals(e, func(k total, amount decimal.Decimal, negate bool) bool {
		if negate {
			want[k] = want[k].Sub(amount)
		} else {
			want[k] = want[k].Add(amount)
		}
		return true
	})
	return want
}
