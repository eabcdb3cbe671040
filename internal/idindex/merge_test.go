package idindex

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestMergeNewerWins(t *testing.T) {
	t.Parallel()
	a, b, c, d := Key{1}, Key{2}, Key{3}, Key{4}
	e := func(k Key, v string) Entry { return Entry{Key: k, Value: []byte(v)} }
	tests := []struct {
		name string
		// segments are newest first, as Merge takes them.
		segments [][]Entry
		want     []Entry
	}{
		{"key_in_both_takes_the_newer_value", [][]Entry{{e(a, "new")}, {e(a, "old")}}, []Entry{e(a, "new")}},
		{"key_only_in_the_older_is_kept", [][]Entry{{e(b, "new")}, {e(a, "old")}}, []Entry{e(a, "old"), e(b, "new")}},
		{"newer_empty_value_wins_over_older_value", [][]Entry{{e(a, "")}, {e(a, "old")}}, []Entry{e(a, "")}},
		{"three_segments_newest_wins", [][]Entry{{e(b, "3")}, {e(a, "2"), e(b, "2")}, {e(a, "1"), e(b, "1"), e(c, "1")}},
			[]Entry{e(a, "2"), e(b, "3"), e(c, "1")}},
		{"empty_segments_add_nothing", [][]Entry{{}, {e(d, "x")}, {}}, []Entry{e(d, "x")}},
		{"no_segments_make_an_empty_one", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var segments []*Segment
			for _, entries := range tt.segments {
				s, _ := openTemp(t, entries)
				segments = append(segments, s)
			}
			merged := mergeTemp(t, segments...)
			if got := allEntries(t, merged); !equalEntries(got, tt.want) {
				t.Fatalf("merged = %q, want %q", got, tt.want)
			}
		})
	}
}

func mergeTemp(t testing.TB, segments ...*Segment) *Segment {
	t.Helper()
	path := filepath.Join(t.TempDir(), "merged")
	meta, err := Merge(path, segments...)
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	if verified, err := VerifySegment(path); err != nil || verified != meta {
		t.Fatalf("VerifySegment = %+v, %v, want %+v", verified, err, meta)
	}
	s, err := OpenSegment(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestMergeEqualsModel merges many overlapping segments and compares with
// a map the same writes were applied to, oldest first.
func TestMergeEqualsModel(t *testing.T) {
	t.Parallel()
	for seed := range uint64(4) {
		t.Run(fmt.Sprintf("seed_%d", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 9))
			universe := make([]Key, 3000)
			for i := range universe {
				universe[i] = randomKey(rng)
			}
			model := map[Key][]byte{}
			segmentCount := 2 + rng.IntN(14)
			segments := make([]*Segment, segmentCount)
			for i := segmentCount - 1; i >= 0; i-- { // oldest first
				writes := map[Key][]byte{}
				for range rng.IntN(800) {
					writes[universe[rng.IntN(len(universe))]] = randomValue(rng, rng.IntN(30))
				}
				maps.Copy(model, writes)
				segments[i], _ = openTemp(t, sortedEntries(writes))
			}
			set := NewSet(segments...)
			for _, k := range universe {
				v, ok, err := set.Get(k)
				want, present := model[k]
				if err != nil || ok != present || string(v) != string(want) {
					t.Fatalf("set Get(%x) = %q, %v, %v, want %q, %v", k, v, ok, err, want, present)
				}
			}
			merged := mergeTemp(t, segments...)
			if got := allEntries(t, merged); !equalEntries(got, sortedEntries(model)) {
				t.Fatalf("merged segment differs from the model (%d entries, want %d)", len(got), len(model))
			}
			for _, k := range universe {
				v, ok, err := merged.Get(k)
				want, present := model[k]
				if err != nil || ok != present || string(v) != string(want) {
					t.Fatalf("merged Get(%x) = %q, %v, %v, want %q, %v", k, v, ok, err, want, present)
				}
			}
		})
	}
}

func TestMergeRefuses(t *testing.T) {
	t.Parallel()
	one, _ := openTemp(t, []Entry{{Key: Key{1}}})
	closed, _ := openTemp(t, []Entry{{Key: Key{2}}})
	closed.Close()
	tests := []struct {
		name     string
		segments []*Segment
		want     error
	}{
		{"more_than_the_bound", slices.Repeat([]*Segment{one}, MergeSegmentsMax+1), ErrTooManySegments},
		{"a_closed_segment", []*Segment{one, closed}, ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if _, err := Merge(filepath.Join(dir, "merged"), tt.segments...); !errors.Is(err, tt.want) {
				t.Fatalf("Merge error = %v, want %v", err, tt.want)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Fatalf("left behind: %v", left)
			}
		})
	}
}
