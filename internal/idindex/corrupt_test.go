package idindex

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// corruptionFixture is a small segment of several blocks and where its
// sections start.
type corruptionFixture struct {
	entries []Entry
	raw     []byte
	foot    footer
}

func newCorruptionFixture(t *testing.T) corruptionFixture {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	entries := randomEntries(rng, 200, func(rng *rand.Rand) int { return rng.IntN(30) })
	path := filepath.Join(t.TempDir(), "segment")
	writeEntries(t, path, entries)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	foot, err := decodeFooter(raw[len(raw)-footerBytes:])
	if err != nil {
		t.Fatal(err)
	}
	if foot.indexCount < 3 {
		t.Fatalf("fixture has %d blocks, want several", foot.indexCount)
	}
	return corruptionFixture{entries: entries, raw: raw, foot: foot}
}

func writeBytes(t *testing.T, raw []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "segment")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTruncatedSegmentIsRefused(t *testing.T) {
	t.Parallel()
	fx := newCorruptionFixture(t)
	size := len(fx.raw)
	footerStart := size - footerBytes
	tests := []struct {
		name  string
		bytes int
	}{
		{"empty_file", 0},
		{"one_byte", 1},
		{"header_only", headerBytes},
		{"inside_the_records", int(fx.foot.indexOffset) / 2},
		{"at_the_index", int(fx.foot.indexOffset)},
		{"inside_the_index", int(fx.foot.indexOffset) + indexEntryBytes + 3},
		{"at_the_bloom_filter", int(fx.foot.bloomOffset)},
		{"inside_the_bloom_filter", int(fx.foot.bloomOffset+uint64(footerStart)) / 2},
		{"at_the_footer", footerStart},
		{"inside_the_footer", footerStart + footerBytes/2},
		{"one_byte_short", size - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeBytes(t, fx.raw[:tt.bytes])
			if s, err := OpenSegment(path); !errors.Is(err, ErrCorrupt) {
				if err == nil {
					s.Close()
				}
				t.Fatalf("OpenSegment error = %v, want ErrCorrupt", err)
			}
			if _, err := VerifySegment(path); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("VerifySegment error = %v, want ErrCorrupt", err)
			}
		})
	}
	t.Run("bytes_appended", func(t *testing.T) {
		t.Parallel()
		path := writeBytes(t, append(bytes.Clone(fx.raw), 0))
		if _, err := OpenSegment(path); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("OpenSegment error = %v, want ErrCorrupt", err)
		}
	})
}

func TestBitFlipIsDetected(t *testing.T) {
	t.Parallel()
	fx := newCorruptionFixture(t)
	footerStart := uint64(len(fx.raw) - footerBytes)
	index, err := readSegment(bytes.NewReader(fx.raw), int64(len(fx.raw)))
	if err != nil {
		t.Fatal(err)
	}
	lastBlock := int(fx.foot.indexCount) - 1
	lastStart, _ := index.index.span(lastBlock)
	tests := []struct {
		name   string
		offset uint64
		// inRecords: the open succeeds (it does not read records); the
		// lookups of the block fail and VerifySegment fails.
		inRecords bool
	}{
		{"header_magic", 0, false},
		{"header_version", 8, false},
		{"header_reserved", 12, false},
		{"first_record_key", headerBytes, true},
		{"first_record_length", headerBytes + KeyBytes, true},
		{"last_record_value", fx.foot.indexOffset - 1, true},
		{"last_block_first_key", lastStart + 3, true},
		{"index_key", fx.foot.indexOffset + 5, false},
		{"index_offset", fx.foot.indexOffset + indexEntryBytes + KeyBytes, false},
		{"index_checksum", fx.foot.indexOffset + KeyBytes + 8, false},
		{"bloom_filter", fx.foot.bloomOffset + 17, false},
		{"bloom_filter_last_byte", footerStart - 1, false},
		{"footer_magic", footerStart, false},
		{"footer_hash_count", footerStart + 12, false},
		{"footer_count", footerStart + 16, false},
		{"footer_index_offset", footerStart + 24, false},
		{"footer_bloom_bits", footerStart + 48, false},
		{"footer_body_checksum", footerStart + 60, false},
		{"footer_checksum", footerStart + footerSumOffset + 1, false},
		{"footer_last_byte", footerStart + footerBytes - 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := bytes.Clone(fx.raw)
			raw[tt.offset] ^= 0x10
			path := writeBytes(t, raw)
			if _, err := VerifySegment(path); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("VerifySegment error = %v, want ErrCorrupt", err)
			}
			s, err := OpenSegment(path)
			if !tt.inRecords {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("OpenSegment error = %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenSegment: %v (records are not read at open)", err)
			}
			defer s.Close()
			failed := 0
			for _, e := range fx.entries {
				v, ok, err := s.Get(e.Key)
				switch {
				case errors.Is(err, ErrCorrupt):
					failed++
				case err != nil || !ok || string(v) != string(e.Value):
					t.Fatalf("Get(%x) = %q, %v, %v: a wrong answer, want %q or ErrCorrupt", e.Key, v, ok, err, e.Value)
				}
			}
			if failed == 0 {
				t.Fatalf("no lookup met the damaged block")
			}
			if _, err := Merge(filepath.Join(t.TempDir(), "merged"), s); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Merge of the damaged segment: %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestEveryBitFlipIsCaught flips one bit in every byte of a segment in
// turn: the open fails, or every lookup gives the right answer or an
// error; a full verify always fails. With the race detector, which slows
// lookups tenfold, it flips every fifth byte.
func TestEveryBitFlipIsCaught(t *testing.T) {
	t.Parallel()
	fx := newCorruptionFixture(t)
	rng := rand.New(rand.NewPCG(8, 8))
	var absent []Key
	for range 50 {
		absent = append(absent, randomKey(rng))
	}
	for _, e := range fx.entries[:50] {
		absent = append(absent, neighbours(e.Key)...)
	}
	stride := 1
	if raceEnabled {
		stride = 5
	}
	raw := bytes.Clone(fx.raw)
	for offset := 0; offset < len(raw); offset += stride {
		flip := byte(1) << (offset % 8)
		raw[offset] ^= flip
		s, err := readSegment(bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("flip at %d: open error %v, want ErrCorrupt", offset, err)
			}
			raw[offset] ^= flip
			continue
		}
		if uint64(offset) >= fx.foot.indexOffset {
			t.Fatalf("flip at %d, outside the records, passed the open", offset)
		}
		for _, e := range fx.entries {
			if v, ok, err := s.Get(e.Key); err == nil && (!ok || string(v) != string(e.Value)) {
				t.Fatalf("flip at %d: Get(%x) = %q, %v: a wrong answer", offset, e.Key, v, ok)
			}
		}
		for _, k := range absent {
			if _, ok, err := s.Get(k); err == nil && ok {
				t.Fatalf("flip at %d: Get(absent %x) found it", offset, k)
			}
		}
		if _, err := s.verify(); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at %d: verify error = %v, want ErrCorrupt", offset, err)
		}
		raw[offset] ^= flip
	}
}
