package idindex

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// Layout constants of format version 1; doc.go describes the format.
const (
	formatVersion = 1
	headerMagic   = "CDIDXSEG"
	footerMagic   = "CDIDXEND"
	// headerBytes: magic, version, and four reserved zero bytes.
	headerBytes = 16
	// footerBytes: magic, version, Bloom hash count, five uint64 fields
	// (count, index offset, index entries, Bloom offset, Bloom bits), the
	// body checksum and the footer checksum.
	footerBytes = 8 + 4 + 4 + 5*8 + 32 + 32
	// footerSumOffset is where the footer checksum starts; the checksum
	// covers the footer bytes before it.
	footerSumOffset = footerBytes - 32
	// indexEntryBytes: a block's first key, its offset (uint64) and the
	// CRC-32C of its bytes (uint32).
	indexEntryBytes = KeyBytes + 8 + 4

	// blockRecordsMax is N, the records per sparse-index entry. At 64 the
	// index costs 28/64 ≈ 0.44 bytes of RAM per key, a third of the Bloom
	// filter, while a hit reads and scans one block of about 2.4 KiB for
	// the ~20-byte values the index holds: within one or two pages, and
	// hits are the rare path (a retried write). 128 would save 0.22 B/key
	// of RAM and double every hit's read and scan.
	blockRecordsMax = 64
	// blockBytesTarget ends a block early when its values are large, so a
	// lookup reads at most blockBytesMax whatever the value sizes.
	blockBytesTarget = 4096
	// recordBytesMax: key, a length of at most two bytes (ValueBytesMax <
	// 1<<14), the value.
	recordBytesMax = KeyBytes + 2 + ValueBytesMax
	// blockBytesMax: a block closes once it holds blockBytesTarget bytes,
	// so before its last record it held less.
	blockBytesMax = blockBytesTarget - 1 + recordBytesMax

	// bloomBitsPerKey and bloomHashes give a false-positive rate of
	// (1-e^(-7/10))^7 ≈ 0.82% per segment, for 1.25 bytes of RAM per key.
	bloomBitsPerKey = 10
	bloomHashes     = 7
	// bloomHashesMax bounds what a reader accepts from a footer.
	bloomHashesMax = 32
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func init() {
	// recordBytesMax assumes a length fits two uvarint bytes.
	if uvarintBytes(ValueBytesMax) != 2 {
		panic("idindex: ValueBytesMax needs recordBytesMax updated")
	}
}

func uvarintBytes(n uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], n)
}

func encodeHeader() []byte {
	b := make([]byte, headerBytes)
	copy(b, headerMagic)
	binary.LittleEndian.PutUint32(b[8:], formatVersion)
	return b
}

func checkHeader(b []byte) error {
	if !bytes.Equal(b[:8], []byte(headerMagic)) {
		return fmt.Errorf("%w: bad header magic", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != formatVersion {
		return fmt.Errorf("%w: header version %d, want %d", ErrCorrupt, v, formatVersion)
	}
	if binary.LittleEndian.Uint32(b[12:]) != 0 {
		return fmt.Errorf("%w: reserved header bytes not zero", ErrCorrupt)
	}
	return nil
}

// footer is the fixed-size end of a segment: where every section starts
// and the checksums that make a segment self-contained.
type footer struct {
	hashes      uint32
	count       uint64
	indexOffset uint64 // end of the records, start of the sparse index
	indexCount  uint64
	bloomOffset uint64
	bloomBits   uint64
	// bodySum is the SHA-256 of every byte before the footer.
	bodySum [32]byte
	// footerSum is the SHA-256 of the header, index, Bloom filter and the
	// footer before it: what an open reads anyway, so checking it costs no
	// extra I/O.
	footerSum [32]byte
}

func (f *footer) encode() []byte {
	b := make([]byte, footerBytes)
	copy(b, footerMagic)
	binary.LittleEndian.PutUint32(b[8:], formatVersion)
	binary.LittleEndian.PutUint32(b[12:], f.hashes)
	binary.LittleEndian.PutUint64(b[16:], f.count)
	binary.LittleEndian.PutUint64(b[24:], f.indexOffset)
	binary.LittleEndian.PutUint64(b[32:], f.indexCount)
	binary.LittleEndian.PutUint64(b[40:], f.bloomOffset)
	binary.LittleEndian.PutUint64(b[48:], f.bloomBits)
	copy(b[56:], f.bodySum[:])
	copy(b[footerSumOffset:], f.footerSum[:])
	return b
}

func decodeFooter(b []byte) (footer, error) {
	var f footer
	if !bytes.Equal(b[:8], []byte(footerMagic)) {
		return f, fmt.Errorf("%w: bad footer magic (truncated or not a segment)", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != formatVersion {
		return f, fmt.Errorf("%w: footer version %d, want %d", ErrCorrupt, v, formatVersion)
	}
	f.hashes = binary.LittleEndian.Uint32(b[12:])
	f.count = binary.LittleEndian.Uint64(b[16:])
	f.indexOffset = binary.LittleEndian.Uint64(b[24:])
	f.indexCount = binary.LittleEndian.Uint64(b[32:])
	f.bloomOffset = binary.LittleEndian.Uint64(b[40:])
	f.bloomBits = binary.LittleEndian.Uint64(b[48:])
	copy(f.bodySum[:], b[56:])
	copy(f.footerSum[:], b[footerSumOffset:])
	return f, nil
}

// checkLayout checks that the footer's sections tile a file of size bytes,
// before anything is read or allocated from them.
func (f *footer) checkLayout(size int64) error {
	bad := func(what string) error { return fmt.Errorf("%w: footer: %s", ErrCorrupt, what) }
	footerStart := uint64(size) - footerBytes
	switch {
	case f.hashes < 1 || f.hashes > bloomHashesMax:
		return bad("Bloom hash count out of range")
	case f.bloomOffset > footerStart || f.bloomBits%64 != 0 || f.bloomBits == 0 || f.bloomBits/8 != footerStart-f.bloomOffset:
		return bad("Bloom filter does not end where the footer starts")
	case f.indexOffset < headerBytes || f.indexOffset > f.bloomOffset:
		return bad("index offset out of range")
	case f.indexCount > (f.bloomOffset-f.indexOffset)/indexEntryBytes || f.indexCount*indexEntryBytes != f.bloomOffset-f.indexOffset:
		return bad("index does not end where the Bloom filter starts")
	case (f.count == 0) != (f.indexCount == 0) || (f.indexCount == 0) != (f.indexOffset == headerBytes):
		return bad("empty and non-empty sections disagree")
	case f.count < f.indexCount || f.count > (f.indexOffset-headerBytes)/(KeyBytes+1):
		return bad("record count does not fit the records section")
	case f.count > f.indexCount*blockRecordsMax:
		return bad("more records than the index's blocks can hold")
	}
	return nil
}

// blockIndex is the sparse index: block i holds the records from
// offsets[i] up to offsets[i+1] (the last one up to recordsEnd), starts
// with the key firstKeys[i], and its bytes have the CRC-32C sums[i].
type blockIndex struct {
	firstKeys  []Key
	offsets    []uint64
	sums       []uint32
	recordsEnd uint64
}

func (x *blockIndex) span(i int) (start, end uint64) {
	end = x.recordsEnd
	if i+1 < len(x.offsets) {
		end = x.offsets[i+1]
	}
	return x.offsets[i], end
}

func (x *blockIndex) encode(appendTo []byte, i int) []byte {
	appendTo = append(appendTo, x.firstKeys[i][:]...)
	appendTo = binary.LittleEndian.AppendUint64(appendTo, x.offsets[i])
	return binary.LittleEndian.AppendUint32(appendTo, x.sums[i])
}

// decodeIndex reads and checks the index section from r: keys strictly
// increasing, blocks tiling the records section, none longer than a
// lookup's buffer.
func decodeIndex(r io.Reader, f *footer) (blockIndex, error) {
	n := int(f.indexCount)
	x := blockIndex{firstKeys: make([]Key, n), offsets: make([]uint64, n), sums: make([]uint32, n), recordsEnd: f.indexOffset}
	var e [indexEntryBytes]byte
	for i := range n {
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return x, err
		}
		copy(x.firstKeys[i][:], e[:])
		x.offsets[i] = binary.LittleEndian.Uint64(e[KeyBytes:])
		x.sums[i] = binary.LittleEndian.Uint32(e[KeyBytes+8:])
		if i > 0 && x.firstKeys[i-1].Compare(x.firstKeys[i]) >= 0 {
			return x, fmt.Errorf("%w: index keys not increasing at block %d", ErrCorrupt, i)
		}
	}
	if n > 0 && x.offsets[0] != headerBytes {
		return x, fmt.Errorf("%w: first block does not start after the header", ErrCorrupt)
	}
	for i := range n {
		start, end := x.span(i)
		if end <= start || end-start > blockBytesMax {
			return x, fmt.Errorf("%w: block %d spans [%d, %d)", ErrCorrupt, i, start, end)
		}
	}
	return x, nil
}

// parseRecord reads the record at the start of b: key, uvarint length,
// value. The value aliases b.
func parseRecord(b []byte) (key Key, value, rest []byte, err error) {
	if len(b) < KeyBytes+1 {
		return key, nil, nil, fmt.Errorf("%w: record cut short", ErrCorrupt)
	}
	copy(key[:], b)
	n, w := binary.Uvarint(b[KeyBytes:])
	switch {
	case w <= 0:
		return key, nil, nil, fmt.Errorf("%w: bad record length", ErrCorrupt)
	case n > ValueBytesMax:
		return key, nil, nil, fmt.Errorf("%w: record length %d over ValueBytesMax", ErrCorrupt, n)
	case w != uvarintBytes(n):
		return key, nil, nil, fmt.Errorf("%w: record length not minimally encoded", ErrCorrupt)
	}
	start := KeyBytes + w
	if uint64(len(b)-start) < n {
		return key, nil, nil, fmt.Errorf("%w: record value cut short", ErrCorrupt)
	}
	end := start + int(n)
	return key, b[start:end:end], b[end:], nil
}

func appendRecord(b []byte, e Entry) []byte {
	b = append(b, e.Key[:]...)
	b = binary.AppendUvarint(b, uint64(len(e.Value)))
	return append(b, e.Value...)
}
