package idindex

import (
	"cmp"
	"encoding/binary"
)

// KeyBytes is the length of a Key.
const KeyBytes = 16

// ValueBytesMax bounds an entry's value. The index holds small outcome
// records (a log position, a fingerprint, a status, a credit type); a value
// near this size is already a sign of misuse, and the bound keeps a block,
// and so a lookup's single read, under two pages.
const ValueBytesMax = 4096

// Key names one idempotent write: a prefix of a cryptographic hash of what
// the write is (tenant, kind, id). Keys are uniformly distributed, so the
// Bloom filter hashes nothing again and uses the key's bytes directly.
type Key [KeyBytes]byte

// Compare orders keys by their bytes, the order of a segment's records:
// negative when k sorts before other, zero when equal, positive after.
func (k Key) Compare(other Key) int {
	if c := cmp.Compare(binary.BigEndian.Uint64(k[:8]), binary.BigEndian.Uint64(other[:8])); c != 0 {
		return c
	}
	return cmp.Compare(binary.BigEndian.Uint64(k[8:]), binary.BigEndian.Uint64(other[8:]))
}

// Entry is one key and its value. A nil and an empty value are the same
// once written: both read back as a zero-length value.
type Entry struct {
	Key   Key
	Value []byte
}
