package idindex

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the seed corpus under testdata from the current writer")

// fuzzInputBytesMax bounds the inputs FuzzOpenSegment tries, to keep each
// run quick; the seeds are a few KiB.
const fuzzInputBytesMax = 64 << 10

// fuzzModel is every key a seed segment holds, each with its one value.
func fuzzModel() map[Key][]byte {
	rng := rand.New(rand.NewPCG(13, 13))
	model := map[Key][]byte{}
	for len(model) < 100 {
		model[randomKey(rng)] = randomValue(rng, rng.IntN(25))
	}
	return model
}

type seedSegment struct {
	name    string
	entries []Entry
}

// seedSegments are the fuzz seeds, and the golden files of the format: a
// change of the writer's bytes shows as a diff of testdata.
func seedSegments() []seedSegment {
	all := sortedEntries(fuzzModel())
	return []seedSegment{
		{"no_entries", nil},
		{"one_entry", all[:1]},
		{"five_entries", all[:5]},
		{"two_blocks", all},
	}
}

func segmentBytes(t testing.TB, entries []Entry) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "segment")
	writeEntries(t, path, entries)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func corpusFile(data []byte, reseal bool) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%s)\nbool(%t)\n", strconv.Quote(string(data)), reseal)
}

func TestSeedCorpusMatchesTheWriter(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("testdata", "fuzz", "FuzzOpenSegment")
	for _, seed := range seedSegments() {
		want := corpusFile(segmentBytes(t, seed.entries), false)
		path := filepath.Join(dir, seed.name)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (go test ./internal/idindex -run TestSeedCorpus -update writes it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the writer's bytes changed; if the format change is meant, bump formatVersion and run with -update", path)
		}
	}
}

// FuzzOpenSegment opens arbitrary bytes as a segment. It must never panic
// and never fail with anything but ErrCorrupt. Bytes sealed by the writer
// (reseal false: the fuzzer's mutations keep the writer's checksums) must
// never answer a key with anything but what was written. With reseal, the
// checksums are recomputed so the structural checks behind them are
// fuzzed too; a segment that then passes verify must answer exactly from
// its records.
func FuzzOpenSegment(f *testing.F) {
	model := fuzzModel()
	for _, seed := range seedSegments() {
		f.Add(segmentBytes(f, seed.entries), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, reseal bool) {
		if len(data) > fuzzInputBytesMax {
			return
		}
		if reseal {
			data = resealed(data)
		}
		s, err := readSegment(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open error %v, want ErrCorrupt", err)
			}
			return
		}
		probes := []Key{{}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
		for k := range model {
			probes = append(probes, k)
		}
		for offset := 0; offset+KeyBytes <= len(data) && offset < 64*KeyBytes; offset += KeyBytes {
			probes = append(probes, Key(data[offset:offset+KeyBytes]))
		}
		found := map[Key][]byte{}
		for _, k := range probes {
			v, ok, err := s.Get(k)
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Get(%x) error %v, want ErrCorrupt", k, err)
			}
			if ok {
				found[k] = v
			}
		}
		if !reseal {
			for k, v := range found {
				if want, written := model[k]; !written || !bytes.Equal(v, want) {
					t.Fatalf("Get(%x) = %q, ok; written: %v, %q", k, v, written, want)
				}
			}
		}
		if _, err := s.verify(); err != nil {
			return
		}
		entries := allEntries(t, s)
		stored := map[Key][]byte{}
		for _, e := range entries {
			stored[e.Key] = e.Value
			if v, ok, err := s.Get(e.Key); err != nil || !ok || !bytes.Equal(v, e.Value) {
				t.Fatalf("verified segment: Get(%x) = %q, %v, %v, want %q", e.Key, v, ok, err, e.Value)
			}
		}
		for k, v := range found {
			if want, ok := stored[k]; !ok || !bytes.Equal(v, want) {
				t.Fatalf("verified segment: Get(%x) = %q, not its record", k, v)
			}
		}
	})
}

// resealed recomputes data's body and footer checksums, when its footer
// lays out sections that fit.
func resealed(data []byte) []byte {
	if len(data) < headerBytes+footerBytes {
		return data
	}
	footerStart := len(data) - footerBytes
	foot, err := decodeFooter(data[footerStart:])
	if err != nil || foot.checkLayout(int64(len(data))) != nil {
		return data
	}
	foot.bodySum = sha256.Sum256(data[:footerStart])
	raw := foot.encode()
	sum := sha256.New()
	sum.Write(data[:headerBytes])
	sum.Write(data[foot.indexOffset:footerStart])
	sum.Write(raw[:footerSumOffset])
	sum.Sum(foot.footerSum[:0])
	return append(data[:footerStart:footerStart], foot.encode()...)
}
