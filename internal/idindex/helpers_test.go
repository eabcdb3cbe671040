package idindex

import (
	"bufio"
	"encoding/binary"
	"io"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
)

func randomKey(rng *rand.Rand) Key {
	var k Key
	binary.LittleEndian.PutUint64(k[:8], rng.Uint64())
	binary.LittleEndian.PutUint64(k[8:], rng.Uint64())
	return k
}

func randomValue(rng *rand.Rand, length int) []byte {
	v := make([]byte, length)
	for i := range v {
		v[i] = byte(rng.Uint32())
	}
	return v
}

// randomEntries makes n entries with unique random keys, sorted, and
// values of the lengths valueLength picks.
func randomEntries(rng *rand.Rand, n int, valueLength func(*rand.Rand) int) []Entry {
	model := make(map[Key][]byte, n)
	for len(model) < n {
		model[randomKey(rng)] = randomValue(rng, valueLength(rng))
	}
	return sortedEntries(model)
}

func sortedEntries(model map[Key][]byte) []Entry {
	entries := make([]Entry, 0, len(model))
	for _, k := range slices.SortedFunc(maps.Keys(model), Key.Compare) {
		entries = append(entries, Entry{Key: k, Value: model[k]})
	}
	return entries
}

func writeEntries(t testing.TB, path string, entries []Entry) Meta {
	t.Helper()
	meta, err := WriteSegment(path, slices.Values(entries))
	if err != nil {
		t.Fatalf("WriteSegment: %v", err)
	}
	return meta
}

func openTemp(t testing.TB, entries []Entry) (*Segment, Meta) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "segment")
	meta := writeEntries(t, path, entries)
	s, err := OpenSegment(path)
	if err != nil {
		t.Fatalf("OpenSegment: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, meta
}

// allEntries reads every record of s in order, through the block checks.
func allEntries(t testing.TB, s *Segment) []Entry {
	t.Helper()
	records := io.NewSectionReader(s.file, headerBytes, int64(s.index.recordsEnd)-headerBytes)
	scanner := newBlockScanner(bufio.NewReader(records), &s.index)
	var entries []Entry
	for scanner.scan() {
		entries = append(entries, Entry{Key: scanner.key, Value: slices.Clone(scanner.value)})
	}
	if scanner.err != nil {
		t.Fatalf("scan: %v", scanner.err)
	}
	return entries
}

func equalEntries(a, b []Entry) bool {
	return slices.EqualFunc(a, b, func(x, y Entry) bool { return x.Key == y.Key && string(x.Value) == string(y.Value) })
}

// neighbours are keys next to k: absent from a segment of random keys.
func neighbours(k Key) []Key {
	up, down := k, k
	up[KeyBytes-1]++
	down[KeyBytes-1]--
	return []Key{up, down}
}
