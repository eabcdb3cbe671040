package idindex

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"iter"
	"os"
	"path/filepath"
)

const (
	// writeBufferBytes sizes the writer's buffer, so the file and the body
	// checksum see large writes.
	writeBufferBytes = 256 << 10
	// writeChunkBytes sizes the pieces the index and Bloom filter are
	// encoded in, so writing them needs no second copy of them in memory.
	writeChunkBytes = 64 << 10
)

// Meta describes a segment file as written or verified.
type Meta struct {
	// Count is the number of entries.
	Count int64
	// Bytes is the file's size.
	Bytes int64
	// SHA256 is the hex SHA-256 of the whole file, as sha256sum prints it:
	// what names and checks the segment's object in shared storage.
	SHA256 string
}

// WriteSegment writes entries, which must come in strictly increasing key
// order (for a slice, slices.Values), to a new segment at path. It writes
// a temporary file in path's directory, syncs it, renames it to path and
// syncs the directory, so path holds either a whole segment or what it
// held before; a crash can leave a temporary file named ".<name>.tmp-*",
// which nothing opens and the caller may remove at start. A value is
// copied as it is read, so the iterator may reuse its buffers.
//
// Memory is the output's Bloom filter and sparse index (what an open holds,
// about 1.7 bytes per key) plus fixed buffers: the records are written as
// they come and read back once, block-checked, to fill the Bloom filter,
// whose size needs the count.
//
// It returns an error wrapping ErrUnsorted, ErrDuplicateKey or
// ErrValueTooLong for bad input, or the file system's error; then nothing
// is left behind.
func WriteSegment(path string, entries iter.Seq[Entry]) (Meta, error) {
	w, err := createSegment(path)
	if err != nil {
		return Meta{}, err
	}
	for e := range entries {
		if err = w.add(e); err != nil {
			break
		}
	}
	if err != nil {
		w.abort()
		return Meta{}, fmt.Errorf("idindex: write %s: %w", path, err)
	}
	return w.finish()
}

// segmentWriter writes one segment, entry by entry; WriteSegment and Merge
// drive it.
type segmentWriter struct {
	path string
	file *os.File
	// out writes to the file and to body, the SHA-256 of every byte.
	out  *bufio.Writer
	body hash.Hash
	// meta is the SHA-256 of header, index, Bloom filter and footer: the
	// footer checksum.
	meta   hash.Hash
	offset uint64
	count  uint64
	last   Key
	index  blockIndex
	// block holds the records of the block being built, so its checksum
	// is computed and it is written in one piece.
	block        []byte
	blockRecords int
}

func createSegment(path string) (*segmentWriter, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("idindex: write %s: %w", path, err)
	}
	w := &segmentWriter{path: path, file: f, body: sha256.New(), meta: sha256.New(), block: make([]byte, 0, blockBytesMax)}
	w.out = bufio.NewWriterSize(io.MultiWriter(f, w.body), writeBufferBytes)
	w.writeMeta(encodeHeader())
	return w, nil
}

func (w *segmentWriter) writeMeta(b []byte) {
	// A write error sticks in the bufio.Writer; finish's Flush reports it.
	w.out.Write(b)
	w.meta.Write(b)
	w.offset += uint64(len(b))
}

func (w *segmentWriter) add(e Entry) error {
	if len(e.Value) > ValueBytesMax {
		return fmt.Errorf("%w: key %x has %d bytes", ErrValueTooLong, e.Key, len(e.Value))
	}
	if w.count > 0 {
		switch c := e.Key.Compare(w.last); {
		case c == 0:
			return fmt.Errorf("%w: %x", ErrDuplicateKey, e.Key)
		case c < 0:
			return fmt.Errorf("%w: %x after %x", ErrUnsorted, e.Key, w.last)
		}
	}
	if w.blockRecords == 0 {
		w.index.firstKeys = append(w.index.firstKeys, e.Key)
		w.index.offsets = append(w.index.offsets, w.offset)
	}
	w.block = appendRecord(w.block, e)
	w.blockRecords++
	w.count++
	w.last = e.Key
	if w.blockRecords == blockRecordsMax || len(w.block) >= blockBytesTarget {
		w.endBlock()
	}
	return nil
}

func (w *segmentWriter) endBlock() {
	w.index.sums = append(w.index.sums, crc32.Checksum(w.block, castagnoli))
	w.out.Write(w.block)
	w.offset += uint64(len(w.block))
	w.block = w.block[:0]
	w.blockRecords = 0
}

// finish writes the index, Bloom filter and footer and puts the file in
// place. On error it removes the temporary file.
func (w *segmentWriter) finish() (Meta, error) {
	meta, err := w.finishFile()
	if err != nil {
		w.abort()
		return Meta{}, fmt.Errorf("idindex: write %s: %w", w.path, err)
	}
	if err := os.Rename(w.file.Name(), w.path); err != nil {
		os.Remove(w.file.Name())
		return Meta{}, fmt.Errorf("idindex: write %s: %w", w.path, err)
	}
	if err := syncDir(filepath.Dir(w.path)); err != nil {
		return Meta{}, fmt.Errorf("idindex: write %s: %w", w.path, err)
	}
	return meta, nil
}

func (w *segmentWriter) finishFile() (Meta, error) {
	if w.blockRecords > 0 {
		w.endBlock()
	}
	w.index.recordsEnd = w.offset
	if err := w.out.Flush(); err != nil {
		return Meta{}, err
	}
	filter, err := w.readBackBloom()
	if err != nil {
		return Meta{}, err
	}
	foot := footer{hashes: filter.hashes, count: w.count, indexOffset: w.offset,
		indexCount: uint64(len(w.index.offsets)), bloomBits: filter.bits}
	chunk := make([]byte, 0, writeChunkBytes)
	for i := range w.index.offsets {
		if chunk = w.index.encode(chunk, i); len(chunk) > writeChunkBytes-indexEntryBytes {
			w.writeMeta(chunk)
			chunk = chunk[:0]
		}
	}
	w.writeMeta(chunk)
	chunk = chunk[:0]
	foot.bloomOffset = w.offset
	for _, word := range filter.words {
		if chunk = binary.LittleEndian.AppendUint64(chunk, word); len(chunk) == writeChunkBytes {
			w.writeMeta(chunk)
			chunk = chunk[:0]
		}
	}
	w.writeMeta(chunk)
	if err := w.out.Flush(); err != nil {
		return Meta{}, err
	}
	w.body.Sum(foot.bodySum[:0])
	raw := foot.encode()
	w.meta.Write(raw[:footerSumOffset])
	w.meta.Sum(foot.footerSum[:0])
	raw = foot.encode()
	w.out.Write(raw)
	if err := w.out.Flush(); err != nil {
		return Meta{}, err
	}
	if err := w.file.Sync(); err != nil {
		return Meta{}, err
	}
	if err := w.file.Close(); err != nil {
		return Meta{}, err
	}
	return Meta{Count: int64(w.count), Bytes: int64(w.offset) + footerBytes, SHA256: hex.EncodeToString(w.body.Sum(nil))}, nil
}

// readBackBloom fills the Bloom filter from the records just written,
// read back through the block checks: the filter's size depends on the
// count, known only now, and keeping every key until then would cost 16
// bytes of RAM per key instead of 1.25.
func (w *segmentWriter) readBackBloom() (bloom, error) {
	filter := newBloom(w.count)
	records := sequentialReader(w.file, headerBytes, int64(w.index.recordsEnd)-headerBytes, openReadBufferBytes)
	scanner := newBlockScanner(records, &w.index)
	var n uint64
	for scanner.scan() {
		filter.add(scanner.key)
		n++
	}
	if scanner.err != nil {
		return filter, fmt.Errorf("reading back records: %w", scanner.err)
	}
	if n != w.count {
		return filter, fmt.Errorf("read back %d records, wrote %d", n, w.count)
	}
	return filter, nil
}

func (w *segmentWriter) abort() {
	w.file.Close()
	os.Remove(w.file.Name())
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
