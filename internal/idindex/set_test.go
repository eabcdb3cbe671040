package idindex

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

func TestPlanMerge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		sizes []int64 // newest first
		n     int
		ok    bool
	}{
		{"no_segments", nil, 0, false},
		{"one_segment", []int64{5}, 0, false},
		{"two_equal_segments_merge", []int64{5, 5}, 2, true},
		{"older_twice_as_big_stays", []int64{5, 10}, 0, false},
		{"doubling_sizes_stay", []int64{1, 2, 4, 8, 16}, 0, false},
		{"older_not_bigger_than_the_newer_together", []int64{1, 2, 3}, 3, true},
		{"up_to_the_oldest_such_segment", []int64{1, 3, 3, 1, 100}, 4, true},
		{"a_big_new_segment_takes_all_it_outgrew", []int64{1000, 1, 3, 7, 15, 2000}, 5, true},
		{"a_small_segment_older_than_a_big_one_merges", []int64{100, 1}, 2, true},
		{"at_most_the_bound", slices.Repeat([]int64{1}, MergeSegmentsMax+2), MergeSegmentsMax, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if n, ok := planMerge(tt.sizes); n != tt.n || ok != tt.ok {
				t.Fatalf("planMerge(%v) = %d, %v, want %d, %v", tt.sizes, n, ok, tt.n, tt.ok)
			}
		})
	}
}

// TestPlanMergeKeepsFewSegments snapshots segments of random sizes, merges
// as Plan proposes after each, and checks the bounds planMerge documents:
// one merge restores the shape, at most log2(total/newest)+1 segments, no
// entry rewritten more than log2(total/smallest)+1 times.
func TestPlanMergeKeepsFewSegments(t *testing.T) {
	t.Parallel()
	type segment struct {
		size int64
		// rewrites is the most times any entry in it was rewritten.
		rewrites int
	}
	for seed := range uint64(20) {
		t.Run(fmt.Sprintf("seed_%d", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 10))
			var segments []segment // newest first
			var total, smallest int64 = 0, math.MaxInt64
			for range 5000 {
				// Mostly similar snapshots, some 100 times bigger.
				size := 1000 + rng.Int64N(1000)
				if rng.IntN(20) == 0 {
					size *= 100
				}
				total += size
				smallest = min(smallest, size)
				segments = slices.Insert(segments, 0, segment{size: size})
				for merges := 0; ; merges++ {
					sizes := make([]int64, len(segments))
					for i, s := range segments {
						sizes[i] = s.size
					}
					n, ok := planMerge(sizes)
					if !ok {
						break
					}
					if merges > 0 {
						t.Fatalf("a second merge proposed after one snapshot: sizes %v", sizes)
					}
					merged := segment{}
					for _, s := range segments[:n] {
						merged.size += s.size
						merged.rewrites = max(merged.rewrites, s.rewrites+1)
					}
					segments = slices.Replace(segments, 0, n, merged)
				}
				if limit := math.Log2(float64(total)/float64(segments[0].size)) + 1; float64(len(segments)) > limit {
					t.Fatalf("%d segments, over log2(total/newest)+1 = %.1f", len(segments), limit)
				}
				for _, s := range segments {
					if limit := math.Log2(float64(total)/float64(smallest)) + 1; float64(s.rewrites) > limit {
						t.Fatalf("entries rewritten %d times, over log2(total/smallest)+1 = %.1f", s.rewrites, limit)
					}
				}
			}
		})
	}
}

func TestSetReplace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// replace picks the run to replace from the set's segments, newest first.
		replace func(segments []*Segment, outsider *Segment) []*Segment
		want    error
	}{
		{"the_newest_run", func(s []*Segment, _ *Segment) []*Segment { return s[:2] }, nil},
		{"a_run_in_the_middle", func(s []*Segment, _ *Segment) []*Segment { return s[1:3] }, nil},
		{"all_of_them", func(s []*Segment, _ *Segment) []*Segment { return s }, nil},
		{"not_a_run", func(s []*Segment, _ *Segment) []*Segment { return []*Segment{s[0], s[2]} }, ErrNotInSet},
		{"oldest_first", func(s []*Segment, _ *Segment) []*Segment { return []*Segment{s[1], s[0]} }, ErrNotInSet},
		{"a_segment_not_in_the_set", func(s []*Segment, o *Segment) []*Segment { return []*Segment{s[0], o} }, ErrNotInSet},
		{"nothing", func([]*Segment, *Segment) []*Segment { return nil }, ErrNotInSet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var segments []*Segment
			for i := range 4 {
				s, _ := openTemp(t, []Entry{{Key: Key{byte(i)}, Value: []byte{byte(i)}}, {Key: Key{9}, Value: []byte{byte(i)}}})
				segments = append(segments, s)
			}
			outsider, _ := openTemp(t, []Entry{{Key: Key{8}}})
			set := NewSet(segments...)
			defer set.Close()
			run := tt.replace(segments, outsider)
			var merged *Segment
			if len(run) > 0 && tt.want == nil {
				merged = mergeTemp(t, run...)
			} else {
				merged, _ = openTemp(t, nil)
			}
			before := answers(t, set)
			err := set.Replace(run, merged)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Replace error = %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				if got := set.Segments(); !slices.Equal(got, segments) {
					t.Fatalf("a refused Replace changed the set")
				}
				return
			}
			if after := answers(t, set); !slices.Equal(after, before) {
				t.Fatalf("answers after Replace = %q, before %q", after, before)
			}
			for _, s := range run {
				if _, _, err := s.Get(Key{9}); !errors.Is(err, ErrClosed) {
					t.Fatalf("a replaced segment answers: %v, want ErrClosed", err)
				}
			}
			if got, want := len(set.Segments()), len(segments)-len(run)+1; got != want {
				t.Fatalf("%d segments after Replace, want %d", got, want)
			}
		})
	}
}

func answers(t *testing.T, set *Set) []string {
	t.Helper()
	var got []string
	for i := range 10 {
		v, ok, err := set.Get(Key{byte(i)})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%v:%q", ok, v))
	}
	return got
}

func TestSetAfterClose(t *testing.T) {
	t.Parallel()
	s, _ := openTemp(t, []Entry{{Key: Key{1}}})
	set := NewSet(s)
	if err := set.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := set.Get(Key{1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}
	if _, _, err := s.Get(Key{1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("segment Get after the set's Close: %v, want ErrClosed", err)
	}
	other, _ := openTemp(t, nil)
	if err := set.AddNewest(other); !errors.Is(err, ErrClosed) {
		t.Fatalf("AddNewest after Close: %v, want ErrClosed", err)
	}
	if _, ok := set.Plan(); ok {
		t.Fatalf("Plan after Close proposed a merge")
	}
	if err := set.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestSetGetsDuringMerges runs lookups while one goroutine plans, merges
// and replaces until nothing is left to merge and another adds segments:
// every lookup must give the answer of the set it started with.
func TestSetGetsDuringMerges(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(11, 11))
	universe := make([]Key, 2000)
	for i := range universe {
		universe[i] = randomKey(rng)
	}
	model := map[Key][]byte{}
	segments := make([]*Segment, 24)
	for i := len(segments) - 1; i >= 0; i-- { // oldest first
		writes := map[Key][]byte{}
		for range 50 + rng.IntN(300) {
			writes[universe[rng.IntN(len(universe))]] = randomValue(rng, rng.IntN(20))
		}
		for k, v := range writes {
			model[k] = v
		}
		segments[i] = writeAndOpen(t, sortedEntries(writes))
	}
	// Segments the adder adds hold keys outside the universe.
	var additions []*Segment
	for range 5 {
		additions = append(additions, writeAndOpen(t, randomEntries(rng, 100, func(*rand.Rand) int { return 4 })))
	}
	set := NewSet(segments...)
	defer set.Close()

	var done atomic.Bool
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 12))
			for lookups := 0; !done.Load() || lookups < 2000; lookups++ {
				k := universe[rng.IntN(len(universe))]
				v, ok, err := set.Get(k)
				want, present := model[k]
				if err != nil || ok != present || string(v) != string(want) {
					t.Errorf("Get(%x) = %q, %v, %v, want %q, %v", k, v, ok, err, want, present)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for _, s := range additions {
			if err := set.AddNewest(s); err != nil {
				t.Error(err)
			}
		}
	})
	dir := t.TempDir()
	for merges := 0; ; merges++ {
		run, ok := set.Plan()
		if !ok {
			break
		}
		path := filepath.Join(dir, fmt.Sprintf("merged-%d", merges))
		if _, err := Merge(path, run...); err != nil {
			t.Fatal(err)
		}
		merged, err := OpenSegment(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := set.Replace(run, merged); err != nil {
			t.Fatal(err)
		}
	}
	done.Store(true)
	wg.Wait()
	if n := len(set.Segments()); n > 8 {
		t.Errorf("%d segments left after merging, want a handful", n)
	}
	if set.MemoryBytes() <= 0 {
		t.Errorf("MemoryBytes = %d", set.MemoryBytes())
	}
}

// writeAndOpen writes and opens a segment the test does not close: a Set
// owns it.
func writeAndOpen(t *testing.T, entries []Entry) *Segment {
	t.Helper()
	path := filepath.Join(t.TempDir(), "segment")
	writeEntries(t, path, entries)
	s, err := OpenSegment(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
