package idindex

import (
	"encoding/binary"
	"io"
	"math/bits"
)

// bloom is a classic Bloom filter over keys that are already uniform hash
// prefixes: probe i is h1 + i·h2 (double hashing) with h1 and h2 the two
// little-endian halves of the key, mapped to a bit by multiply-shift
// rather than a division. A lookup of an absent key stops at the first
// clear bit: about two probes on average, since half the bits are set.
type bloom struct {
	words  []uint64
	bits   uint64
	hashes uint32
}

func newBloom(keys uint64) bloom {
	bitCount := max(keys, 1) * bloomBitsPerKey
	bitCount = (bitCount + 63) &^ 63
	return bloom{words: make([]uint64, bitCount/64), bits: bitCount, hashes: bloomHashes}
}

func (b *bloom) add(k Key) {
	h1, h2 := binary.LittleEndian.Uint64(k[:8]), binary.LittleEndian.Uint64(k[8:])
	for range b.hashes {
		bit, _ := bits.Mul64(h1, b.bits)
		b.words[bit>>6] |= 1 << (bit & 63)
		h1 += h2
	}
}

func (b *bloom) mayContain(k Key) bool {
	h1, h2 := binary.LittleEndian.Uint64(k[:8]), binary.LittleEndian.Uint64(k[8:])
	for range b.hashes {
		bit, _ := bits.Mul64(h1, b.bits)
		if b.words[bit>>6]&(1<<(bit&63)) == 0 {
			return false
		}
		h1 += h2
	}
	return true
}

// decodeBloom reads the filter's words from r.
func decodeBloom(r io.Reader, f *footer) (bloom, error) {
	b := bloom{words: make([]uint64, f.bloomBits/64), bits: f.bloomBits, hashes: f.hashes}
	var chunk [8 << 10]byte
	for i := 0; i < len(b.words); {
		n := min(len(chunk)/8, len(b.words)-i)
		if _, err := io.ReadFull(r, chunk[:n*8]); err != nil {
			return b, err
		}
		for j := range n {
			b.words[i+j] = binary.LittleEndian.Uint64(chunk[j*8:])
		}
		i += n
	}
	return b, nil
}
