package idindex

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
)

// VerifySegment reads the whole segment at path once and checks all of
// it: the footer checksum (as OpenSegment does), every block's CRC-32C and
// records (lengths, bounds, strictly increasing keys, the index's first
// keys), the count, that the stored Bloom filter is exactly the one its
// keys make, and the body checksum. It returns the Meta a writer returned,
// with SHA256 computed from the bytes read, for checking a downloaded
// object against its name. Use it on downloads and in creditd verify; an
// open need not pay for it.
//
// It returns an error wrapping ErrCorrupt for a damaged file, or the file
// system's error.
func VerifySegment(path string) (Meta, error) {
	s, err := OpenSegment(path)
	if err != nil {
		return Meta{}, err
	}
	defer s.Close()
	meta, err := s.verify()
	if err != nil {
		return Meta{}, fmt.Errorf("idindex: verify %s: %w", path, err)
	}
	return meta, nil
}

func (s *Segment) verify() (Meta, error) {
	sum := sha256.New()
	r := &hashingReader{r: sequentialReader(s.file, 0, s.size, openReadBufferBytes), h: sum}
	header := make([]byte, headerBytes)
	if _, err := io.ReadFull(r, header); err != nil {
		return Meta{}, readError(err)
	}
	if err := checkHeader(header); err != nil {
		return Meta{}, err
	}
	filter := bloom{words: make([]uint64, len(s.filter.words)), bits: s.filter.bits, hashes: s.filter.hashes}
	scanner := newBlockScanner(r, &s.index)
	var count uint64
	for scanner.scan() {
		filter.add(scanner.key)
		count++
	}
	if scanner.err != nil {
		return Meta{}, scanner.err
	}
	if count != s.foot.count {
		return Meta{}, fmt.Errorf("%w: %d records, footer says %d", ErrCorrupt, count, s.foot.count)
	}
	if !slices.Equal(filter.words, s.filter.words) {
		return Meta{}, fmt.Errorf("%w: Bloom filter differs from the one its keys make", ErrCorrupt)
	}
	// The index and Bloom filter were checked by the open; read them again
	// here for the body checksum, which covers what this pass read.
	footerStart := s.size - footerBytes
	if _, err := io.CopyN(io.Discard, r, footerStart-int64(s.index.recordsEnd)); err != nil {
		return Meta{}, readError(err)
	}
	if !bytes.Equal(sum.Sum(nil), s.foot.bodySum[:]) {
		return Meta{}, fmt.Errorf("%w: body checksum mismatch", ErrCorrupt)
	}
	footerRaw := make([]byte, footerBytes)
	if _, err := io.ReadFull(r, footerRaw); err != nil {
		return Meta{}, readError(err)
	}
	if !bytes.Equal(footerRaw, s.foot.encode()) {
		return Meta{}, fmt.Errorf("%w: footer changed while verifying", ErrCorrupt)
	}
	return Meta{Count: int64(count), Bytes: s.size, SHA256: hex.EncodeToString(sum.Sum(nil))}, nil
}
