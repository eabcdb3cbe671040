package idindex

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
)

// Benchmarks use segments of a million entries with 20-byte values, about
// what a partition's snapshot moves out of memory.
const (
	benchEntries     = 1_000_000
	benchValueBytes  = 20
	benchProbeLookup = 1 << 14
)

// benchEntriesOf makes n sorted entries with random keys and values of
// benchValueBytes, faster than a map would. The values lie in memory in
// key order, so a write measures the writer, not cache misses on values
// strewn over the heap (about 200 ns a value on the machine measured).
func benchEntriesOf(rng *rand.Rand, n int) []Entry {
	entries := make([]Entry, n)
	for i := range entries {
		entries[i] = Entry{Key: randomKey(rng)}
	}
	slices.SortFunc(entries, func(a, b Entry) int { return a.Key.Compare(b.Key) })
	entries = slices.CompactFunc(entries, func(a, b Entry) bool { return a.Key == b.Key })
	values := randomValue(rng, len(entries)*benchValueBytes)
	for i := range entries {
		entries[i].Value = values[i*benchValueBytes : (i+1)*benchValueBytes]
	}
	return entries
}

func benchSegment(b *testing.B, entries []Entry) *Segment {
	b.Helper()
	s, _ := openTemp(b, entries)
	return s
}

func reportPerKey(b *testing.B, s *Segment) {
	b.ReportMetric(float64(s.MemoryBytes())/float64(s.Count()), "ram-B/key")
	b.ReportMetric(float64(s.Bytes())/float64(s.Count()), "disk-B/key")
}

func BenchmarkGetMiss(b *testing.B) {
	rng := rand.New(rand.NewPCG(20, 20))
	s := benchSegment(b, benchEntriesOf(rng, benchEntries))
	probes := make([]Key, benchProbeLookup)
	for i := range probes {
		probes[i] = randomKey(rng)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok, err := s.Get(probes[i%len(probes)]); ok || err != nil {
			b.Fatal(ok, err)
		}
		i++
	}
	reportPerKey(b, s)
}

func BenchmarkGetHit(b *testing.B) {
	rng := rand.New(rand.NewPCG(21, 21))
	entries := benchEntriesOf(rng, benchEntries)
	s := benchSegment(b, entries)
	probes := make([]Key, benchProbeLookup)
	for i := range probes {
		probes[i] = entries[rng.IntN(len(entries))].Key
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok, err := s.Get(probes[i%len(probes)]); !ok || err != nil {
			b.Fatal(ok, err)
		}
		i++
	}
	reportPerKey(b, s)
}

// BenchmarkSetGetMiss is an absent key in a set of 16 segments: what a new
// id costs once the memory window has been moved out 16 times over.
func BenchmarkSetGetMiss(b *testing.B) {
	rng := rand.New(rand.NewPCG(22, 22))
	var segments []*Segment
	for range 16 {
		segments = append(segments, writeAndOpenBench(b, benchEntriesOf(rng, benchEntries/16)))
	}
	set := NewSet(segments...)
	b.Cleanup(func() { set.Close() })
	probes := make([]Key, benchProbeLookup)
	for i := range probes {
		probes[i] = randomKey(rng)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, err := set.Get(probes[i%len(probes)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(set.MemoryBytes())/benchEntries, "ram-B/key")
}

func writeAndOpenBench(b *testing.B, entries []Entry) *Segment {
	b.Helper()
	path := filepath.Join(b.TempDir(), "segment")
	writeEntries(b, path, entries)
	s, err := OpenSegment(path)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkWriteSegment(b *testing.B) {
	rng := rand.New(rand.NewPCG(23, 23))
	entries := benchEntriesOf(rng, benchEntries)
	path := filepath.Join(b.TempDir(), "segment")
	b.ReportAllocs()
	var meta Meta
	for b.Loop() {
		meta = writeEntries(b, path, entries)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(meta.Count), "ns/key")
	b.ReportMetric(float64(meta.Bytes)/float64(meta.Count), "disk-B/key")
}

// BenchmarkMerge merges four segments of a quarter million entries into
// one of a million, a tenth of the keys in two segments.
func BenchmarkMerge(b *testing.B) {
	rng := rand.New(rand.NewPCG(24, 24))
	all := benchEntriesOf(rng, benchEntries)
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	quarter := len(all) / 4
	var segments []*Segment
	for i := range 4 {
		part := slices.Clone(all[i*quarter : (i+1)*quarter])
		if i > 0 {
			part = append(part, all[(i-1)*quarter:(i-1)*quarter+quarter/10]...)
		}
		slices.SortFunc(part, func(a, b Entry) int { return a.Key.Compare(b.Key) })
		segments = append(segments, benchSegment(b, part))
	}
	path := filepath.Join(b.TempDir(), "merged")
	b.ReportAllocs()
	var meta Meta
	for b.Loop() {
		var err error
		if meta, err = Merge(path, segments...); err != nil {
			b.Fatal(err)
		}
	}
	merged, err := OpenSegment(path)
	if err != nil {
		b.Fatal(err)
	}
	defer merged.Close()
	if merged.Count() != int64(quarter*4) {
		b.Fatalf("merged %d entries, want %d", merged.Count(), quarter*4)
	}
	reportPerKey(b, merged)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(meta.Count), "ns/key")
}
