package commands

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/internal/idindex"
)

// The segment a window becomes holds every id once, in key order, with its
// outcome and its line merged into one value, and the depleted grants.
func TestWindowEntriesMergeOutcomesAndLinesInKeyOrder(t *testing.T) {
	t.Parallel()
	w := newWindow()
	type want struct {
		entry    indexEntry
		depleted *domain.GrantBalance
	}
	wanted := map[idKey]want{}
	for i := range 300 {
		tenant := int64(i % 7)
		switch i % 3 {
		case 0: // an outcome alone
			k := makeKey(tenant, kindUsage, fmt.Sprint("u-", i))
			o := outcome{position: uint64(i + 1), fingerprint: uint64(i) * 7919, status: outcomeStatus(i % 2)}
			w.seen[k] = o
			wanted[k] = want{entry: indexEntry{outcome: o, hasOutcome: true}}
		case 1: // an outcome and the line it was made on
			k := makeKey(tenant, kindReservation, fmt.Sprint("r-", i))
			o := outcome{position: uint64(i + 1), fingerprint: uint64(i)}
			w.seen[k] = o
			w.lineOf[k] = fmt.Sprint("line-", i%4)
			wanted[k] = want{entry: indexEntry{outcome: o, hasOutcome: true, creditType: w.lineOf[k], hasLine: true}}
		case 2: // a depleted grant
			g := domain.GrantBalance{GrantID: fmt.Sprint("g-", i), Original: decimal.NewFromInt(int64(i)), Remaining: decimal.Zero}
			k := depletedKey(tenant, "default", g.GrantID)
			w.depleted[k] = g
			wanted[k] = want{depleted: &g}
		}
	}
	// A line without an outcome of its own.
	lone := makeKey(3, kindGrant, "lone")
	w.lineOf[lone] = "credits"
	wanted[lone] = want{entry: indexEntry{creditType: "credits", hasLine: true}}

	entries, err := w.entries()
	if err != nil {
		t.Fatal(err)
	}
	var previous *idindex.Key
	seen := 0
	for e := range entries {
		seen++
		if previous != nil && bytes.Compare(previous[:], e.Key[:]) >= 0 {
			t.Fatalf("key %x after %x: not in order", e.Key, *previous)
		}
		previous = &e.Key
		expected, ok := wanted[idKey(e.Key)]
		if !ok {
			t.Fatalf("key %x is not in the window", e.Key)
		}
		if expected.depleted != nil {
			g, err := decodeDepleted(e.Value)
			if err != nil || g.GrantID != expected.depleted.GrantID || !g.Original.Equal(expected.depleted.Original) {
				t.Fatalf("depleted grant %x: got %+v (%v), want %+v", e.Key, g, err, *expected.depleted)
			}
			continue
		}
		got, err := decodeIndexEntry(e.Value)
		if err != nil || got != expected.entry {
			t.Fatalf("entry %x: got %+v (%v), want %+v", e.Key, got, err, expected.entry)
		}
	}
	if seen != len(wanted) {
		t.Fatalf("%d entries, want %d", seen, len(wanted))
	}
}

// compareKeys must order as bytes.Compare does: segments are searched in
// that order.
func TestCompareKeysOrdersAsBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		var a, b idKey
		for i := range a {
			// Few byte values, so that long equal prefixes come up.
			a[i], b[i] = byte(rng.IntN(3)), byte(rng.IntN(3))
		}
		if rng.IntN(4) == 0 {
			b = a
		}
		if got, want := compareKeys(a, b), bytes.Compare(a[:], b[:]); got != want {
			t.Fatalf("compareKeys(%x, %x) = %d, bytes.Compare %d", a, b, got, want)
		}
	}
}
