package idindex

import (
	"fmt"
	"hash/crc32"
	"io"
)

// blockScanner reads records in key order from a reader positioned at the
// start of a records section, one whole block at a time. It checks each
// block's CRC-32C and first key against the index, the records per block,
// and that keys strictly increase, so whoever reads through it (Merge,
// VerifySegment, the writer's Bloom pass) never passes damaged records on.
type blockScanner struct {
	r         io.Reader
	index     *blockIndex
	nextBlock int
	buf       []byte
	rest      []byte // unread records of the current block
	records   int    // records read from the current block
	started   bool
	key       Key
	// value aliases the scanner's buffer until the next call to scan.
	value []byte
	err   error
}

func newBlockScanner(r io.Reader, index *blockIndex) *blockScanner {
	return &blockScanner{r: r, index: index, buf: make([]byte, blockBytesMax)}
}

// scan moves to the next record; it returns false at the end or on an
// error, which err then holds.
func (s *blockScanner) scan() bool {
	if s.err != nil {
		return false
	}
	if len(s.rest) == 0 {
		if s.nextBlock == len(s.index.offsets) {
			return false
		}
		if !s.load() {
			return false
		}
	}
	i := s.nextBlock - 1
	k, v, rest, err := parseRecord(s.rest)
	switch {
	case err != nil:
		s.err = fmt.Errorf("block %d: %w", i, err)
	case s.records == 0 && k != s.index.firstKeys[i]:
		s.err = fmt.Errorf("block %d: %w: first key differs from the index", i, ErrCorrupt)
	case s.records == blockRecordsMax:
		s.err = fmt.Errorf("block %d: %w: more than %d records", i, ErrCorrupt, blockRecordsMax)
	case s.started && k.Compare(s.key) <= 0:
		s.err = fmt.Errorf("block %d: %w: keys not increasing", i, ErrCorrupt)
	}
	if s.err != nil {
		return false
	}
	s.records++
	s.started = true
	s.key, s.value, s.rest = k, v, rest
	return true
}

func (s *blockScanner) load() bool {
	i := s.nextBlock
	start, end := s.index.span(i)
	block := s.buf[:end-start]
	if _, err := io.ReadFull(s.r, block); err != nil {
		s.err = fmt.Errorf("block %d: %w", i, readError(err))
		return false
	}
	if crc32.Checksum(block, castagnoli) != s.index.sums[i] {
		s.err = fmt.Errorf("block %d: %w: checksum mismatch", i, ErrCorrupt)
		return false
	}
	s.rest, s.records = block, 0
	s.nextBlock++
	return true
}
