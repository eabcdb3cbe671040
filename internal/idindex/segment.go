package idindex

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"
)

// openReadBufferBytes sizes the sequential reads of an open (index and
// Bloom filter) and of a merge or verify (records).
const openReadBufferBytes = 256 << 10

// Segment is an open, immutable segment file. Its Bloom filter and sparse
// index live in memory (MemoryBytes); records stay on disk and a lookup
// reads one block of them.
//
// Get may be called from many goroutines at once. Close must not race
// with Get on the same Segment: a Get that does anyway returns ErrClosed
// or a read error, never a wrong answer. Set arranges the ordering for
// segments it holds.
type Segment struct {
	path   string
	file   io.ReaderAt
	closer io.Closer
	size   int64
	foot   footer
	index  blockIndex
	filter bloom
	closed atomic.Bool
}

// OpenSegment opens the segment at path and loads its Bloom filter and
// sparse index. It checks the footer checksum, which covers the header,
// index, Bloom filter and footer, the bytes an open reads anyway; it does
// not read the records, whose blocks are checked by CRC-32C when a lookup
// or merge reads them. VerifySegment checks everything.
//
// It returns an error wrapping ErrCorrupt for a truncated or damaged file,
// or the file system's error.
func OpenSegment(path string) (*Segment, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("idindex: open segment: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("idindex: open segment: %w", err)
	}
	s, err := readSegment(f, info.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("idindex: open segment %s: %w", path, err)
	}
	s.path, s.closer = path, f
	return s, nil
}

// readSegment reads the footer, header, index and Bloom filter of the
// size bytes of r and checks them.
func readSegment(r io.ReaderAt, size int64) (*Segment, error) {
	if size < headerBytes+footerBytes {
		return nil, fmt.Errorf("%w: %d bytes, shorter than a header and a footer (truncated?)", ErrCorrupt, size)
	}
	footerRaw := make([]byte, footerBytes)
	if err := readFullAt(r, footerRaw, size-footerBytes); err != nil {
		return nil, err
	}
	foot, err := decodeFooter(footerRaw)
	if err != nil {
		return nil, err
	}
	if err := foot.checkLayout(size); err != nil {
		return nil, err
	}
	header := make([]byte, headerBytes)
	if err := readFullAt(r, header, 0); err != nil {
		return nil, err
	}
	if err := checkHeader(header); err != nil {
		return nil, err
	}
	sum := sha256.New()
	sum.Write(header)
	footerStart := size - footerBytes
	meta := &hashingReader{r: sequentialReader(r, int64(foot.indexOffset), footerStart-int64(foot.indexOffset), openReadBufferBytes), h: sum}
	index, err := decodeIndex(meta, &foot)
	if err != nil {
		return nil, readError(err)
	}
	filter, err := decodeBloom(meta, &foot)
	if err != nil {
		return nil, readError(err)
	}
	sum.Write(footerRaw[:footerSumOffset])
	if !bytes.Equal(sum.Sum(nil), foot.footerSum[:]) {
		return nil, fmt.Errorf("%w: footer checksum mismatch", ErrCorrupt)
	}
	return &Segment{file: r, size: size, foot: foot, index: index, filter: filter}, nil
}

// Get returns the value stored for key, and whether there is one. A key
// the Bloom filter rules out costs no read; otherwise Get reads one block
// (at most blockBytesMax bytes) and checks its CRC-32C before answering.
// The value is the caller's to keep.
//
// It returns an error wrapping ErrCorrupt for a damaged block, ErrClosed
// after Close, or the read's error.
func (s *Segment) Get(key Key) (value []byte, ok bool, err error) {
	if s.closed.Load() {
		return nil, false, ErrClosed
	}
	if !s.filter.mayContain(key) {
		return nil, false, nil
	}
	keys := s.index.firstKeys
	i := sort.Search(len(keys), func(i int) bool { return keys[i].Compare(key) > 0 }) - 1
	if i < 0 {
		return nil, false, nil
	}
	start, end := s.index.span(i)
	bufp := blockBuffers.Get().(*[]byte)
	defer blockBuffers.Put(bufp)
	block := (*bufp)[:end-start]
	if err := readFullAt(s.file, block, int64(start)); err != nil {
		if s.closed.Load() {
			return nil, false, ErrClosed
		}
		return nil, false, fmt.Errorf("idindex: %s: block %d: %w", s.path, i, err)
	}
	if crc32.Checksum(block, castagnoli) != s.index.sums[i] {
		return nil, false, fmt.Errorf("idindex: %s: block %d: %w: checksum mismatch", s.path, i, ErrCorrupt)
	}
	for first := true; len(block) > 0; first = false {
		k, v, rest, err := parseRecord(block)
		if err != nil {
			return nil, false, fmt.Errorf("idindex: %s: block %d: %w", s.path, i, err)
		}
		if first && k != keys[i] {
			return nil, false, fmt.Errorf("idindex: %s: block %d: %w: first key differs from the index", s.path, i, ErrCorrupt)
		}
		switch c := k.Compare(key); {
		case c == 0:
			return bytes.Clone(v), true, nil
		case c > 0:
			return nil, false, nil
		}
		block = rest
	}
	return nil, false, nil
}

// blockBuffers holds lookup buffers of blockBytesMax, so a Get allocates
// only the value it returns.
var blockBuffers = sync.Pool{New: func() any {
	b := make([]byte, blockBytesMax)
	return &b
}}

// Count is the number of entries.
func (s *Segment) Count() int64 { return int64(s.foot.count) }

// Bytes is the file's size.
func (s *Segment) Bytes() int64 { return s.size }

// Path is the file the segment was opened from.
func (s *Segment) Path() string { return s.path }

// MemoryBytes is the RAM the segment holds while open: its Bloom filter
// (about 1.25 bytes per key) and sparse index (28 bytes per block of up
// to 64 keys).
func (s *Segment) MemoryBytes() int64 {
	return int64(len(s.filter.words))*8 + int64(len(s.index.firstKeys))*indexEntryBytes
}

// Close releases the file. Closing twice is harmless.
func (s *Segment) Close() error {
	if s.closed.Swap(true) || s.closer == nil {
		return nil
	}
	return s.closer.Close()
}

func readFullAt(r io.ReaderAt, b []byte, offset int64) error {
	n, err := r.ReadAt(b, offset)
	if n == len(b) {
		return nil
	}
	return readError(err)
}

// readError names a short read as corruption: the footer promised bytes
// the file does not have.
func readError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: file shorter than its footer says (truncated?)", ErrCorrupt)
	}
	return err
}

// sequentialReader reads bytes [offset, offset+length) of r in order,
// through a buffer of at most bufferBytes: no bigger than the section, so
// opening a small segment allocates little.
func sequentialReader(r io.ReaderAt, offset, length int64, bufferBytes int) *bufio.Reader {
	return bufio.NewReaderSize(io.NewSectionReader(r, offset, length), int(min(length, int64(bufferBytes))))
}

// hashingReader hashes exactly the bytes its reader hands out.
type hashingReader struct {
	r io.Reader
	h hash.Hash
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}
