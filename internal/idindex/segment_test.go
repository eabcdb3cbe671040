package idindex

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	fixed := func(n int) func(*rand.Rand) int { return func(*rand.Rand) int { return n } }
	tests := []struct {
		name        string
		entries     int
		valueLength func(*rand.Rand) int
	}{
		{"no_entries", 0, fixed(20)},
		{"one_entry", 1, fixed(20)},
		{"one_full_block", blockRecordsMax, fixed(20)},
		{"one_record_past_a_block", blockRecordsMax + 1, fixed(20)},
		{"empty_values", 500, fixed(0)},
		{"values_at_the_bound", 100, fixed(ValueBytesMax)},
		{"values_of_every_size", 3000, func(rng *rand.Rand) int {
			switch rng.IntN(10) {
			case 0:
				return 0
			case 1:
				return ValueBytesMax
			case 2:
				return rng.IntN(ValueBytesMax + 1)
			}
			return rng.IntN(200)
		}},
		{"many_small_values", 20000, fixed(20)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			entries := randomEntries(rng, tt.entries, tt.valueLength)
			path := filepath.Join(t.TempDir(), "segment")
			meta := writeEntries(t, path, entries)

			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(raw)
			want := Meta{Count: int64(len(entries)), Bytes: int64(len(raw)), SHA256: hex.EncodeToString(sum[:])}
			if meta != want {
				t.Fatalf("WriteSegment meta = %+v, want %+v", meta, want)
			}
			verified, err := VerifySegment(path)
			if err != nil || verified != want {
				t.Fatalf("VerifySegment = %+v, %v, want %+v", verified, err, want)
			}

			s, err := OpenSegment(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Count() != int64(len(entries)) || s.Bytes() != int64(len(raw)) || s.Path() != path {
				t.Fatalf("Count, Bytes, Path = %d, %d, %s", s.Count(), s.Bytes(), s.Path())
			}
			for _, e := range entries {
				v, ok, err := s.Get(e.Key)
				if err != nil || !ok || string(v) != string(e.Value) || v == nil {
					t.Fatalf("Get(%x) = %q, %v, %v, want %q", e.Key, v, ok, err, e.Value)
				}
			}
			absent := []Key{{}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
			for j, e := range entries {
				if j%7 == 0 {
					absent = append(absent, neighbours(e.Key)...)
				}
			}
			for range 2000 {
				absent = append(absent, randomKey(rng))
			}
			for _, k := range absent {
				if _, found := slices.BinarySearchFunc(entries, k, func(e Entry, k Key) int { return e.Key.Compare(k) }); found {
					continue
				}
				if v, ok, err := s.Get(k); ok || err != nil {
					t.Fatalf("Get(absent %x) = %q, %v, %v", k, v, ok, err)
				}
			}
			if got := allEntries(t, s); !equalEntries(got, entries) {
				t.Fatalf("records differ from the entries written")
			}
		})
	}
}

func TestMemoryBytesPerKey(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(2, 2))
	const n = 64 * 1000
	s, meta := openTemp(t, randomEntries(rng, n, func(*rand.Rand) int { return 20 }))
	// 10 bits of Bloom filter and 28/64 bytes of index per key.
	if got, want := float64(s.MemoryBytes())/n, 1.25+28.0/64; got < want-0.01 || got > want+0.01 {
		t.Errorf("RAM per key = %.3f bytes, want %.3f", got, want)
	}
	// A record (37) plus what is in RAM.
	if got, want := float64(meta.Bytes)/n, 37+1.25+28.0/64; got < want-0.01 || got > want+0.01 {
		t.Errorf("disk per key = %.3f bytes, want %.3f", got, want)
	}
}

func TestBloomFalsePositiveRate(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 3))
	const keys, probes = 100_000, 1_000_000
	filter := newBloom(keys)
	for range keys {
		filter.add(randomKey(rng))
	}
	positives := 0
	for range probes {
		if filter.mayContain(randomKey(rng)) {
			positives++
		}
	}
	// (1-e^(-0.7))^7 ≈ 0.82%.
	if rate := float64(positives) / probes; rate < 0.006 || rate > 0.011 {
		t.Errorf("false positive rate = %.4f, want about 0.0082", rate)
	}
}

func TestWriteSegmentRefusesBadInput(t *testing.T) {
	t.Parallel()
	a, b, c := Key{1}, Key{2}, Key{3}
	tests := []struct {
		name    string
		entries []Entry
		want    error
	}{
		{"unsorted_keys", []Entry{{Key: a}, {Key: c}, {Key: b}}, ErrUnsorted},
		{"duplicate_key", []Entry{{Key: a}, {Key: b}, {Key: b}}, ErrDuplicateKey},
		{"duplicate_key_with_another_value", []Entry{{Key: a, Value: []byte("x")}, {Key: a, Value: []byte("y")}}, ErrDuplicateKey},
		{"value_past_the_bound", []Entry{{Key: a}, {Key: b, Value: make([]byte, ValueBytesMax+1)}}, ErrValueTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			_, err := WriteSegment(filepath.Join(dir, "segment"), slices.Values(tt.entries))
			if !errors.Is(err, tt.want) {
				t.Fatalf("WriteSegment error = %v, want %v", err, tt.want)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Fatalf("left behind: %v", left)
			}
		})
	}
}

func TestWriteSegmentReplacesAWholeFile(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(4, 4))
	dir := t.TempDir()
	path := filepath.Join(dir, "segment")
	first := randomEntries(rng, 1000, func(*rand.Rand) int { return 10 })
	second := randomEntries(rng, 10, func(*rand.Rand) int { return 10 })
	writeEntries(t, path, first)
	writeEntries(t, path, second)
	s, err := OpenSegment(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := allEntries(t, s); !equalEntries(got, second) {
		t.Fatalf("segment holds %d entries, want the second write's %d", len(got), len(second))
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Fatalf("directory holds %v, want the segment alone", left)
	}
}

func TestConcurrentGets(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 5))
	entries := randomEntries(rng, 20000, func(rng *rand.Rand) int { return rng.IntN(40) })
	s, _ := openTemp(t, entries)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 6))
			for range 5000 {
				e := entries[rng.IntN(len(entries))]
				if v, ok, err := s.Get(e.Key); err != nil || !ok || string(v) != string(e.Value) {
					t.Errorf("Get(%x) = %q, %v, %v, want %q", e.Key, v, ok, err, e.Value)
					return
				}
				if _, ok, err := s.Get(randomKey(rng)); ok || err != nil {
					t.Errorf("Get(random) = %v, %v", ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestGetAfterCloseReturnsErrClosed(t *testing.T) {
	t.Parallel()
	entries := []Entry{{Key: Key{1}, Value: []byte("v")}}
	s, _ := openTemp(t, entries)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(Key{1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
