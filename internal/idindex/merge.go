package idindex

import (
	"container/heap"
	"fmt"
)

const (
	// MergeSegmentsMax bounds a Merge's inputs; each holds a read buffer
	// and a block buffer (about 72 KiB) for the merge's length.
	MergeSegmentsMax = 64
	// mergeReadBufferBytes sizes each input's sequential reads.
	mergeReadBufferBytes = 64 << 10
)

// Merge writes the entries of segments, newest first, into a new segment
// at path (as WriteSegment writes: temporary file, sync, rename). A key in
// several segments keeps the value of the earliest argument, the newest
// segment, which is the answer a Set gives before the merge too.
//
// It streams: memory is the output's Bloom filter and sparse index (what
// opening the result will hold anyway) plus about 72 KiB per input,
// whatever the inputs' sizes. Each input block is checked by CRC-32C as it
// is read, so damaged records stop the merge instead of being sealed into
// a segment with fresh checksums. The inputs stay open and unchanged.
//
// It returns ErrTooManySegments beyond MergeSegmentsMax inputs, ErrClosed
// for a closed input, an error wrapping ErrCorrupt for a damaged input, or
// the file system's error; then nothing is left at path.
func Merge(path string, segments ...*Segment) (Meta, error) {
	if len(segments) > MergeSegmentsMax {
		return Meta{}, fmt.Errorf("%w: %d, at most %d", ErrTooManySegments, len(segments), MergeSegmentsMax)
	}
	heads := &mergeHeap{}
	for i, s := range segments {
		if s.closed.Load() {
			return Meta{}, fmt.Errorf("idindex: merge into %s: %s: %w", path, s.path, ErrClosed)
		}
		records := sequentialReader(s.file, headerBytes, int64(s.index.recordsEnd)-headerBytes, mergeReadBufferBytes)
		c := &mergeCursor{age: i, segment: s, scanner: newBlockScanner(records, &s.index)}
		if c.scanner.scan() {
			heads.cursors = append(heads.cursors, c)
		} else if err := c.err(); err != nil {
			return Meta{}, fmt.Errorf("idindex: merge into %s: %w", path, err)
		}
	}
	heap.Init(heads)
	w, err := createSegment(path)
	if err != nil {
		return Meta{}, err
	}
	for heads.Len() > 0 {
		top := heads.cursors[0]
		key := top.scanner.key
		// The top is the newest segment holding key: ties order by age.
		if err = w.add(Entry{Key: key, Value: top.scanner.value}); err != nil {
			break
		}
		for heads.Len() > 0 && heads.cursors[0].scanner.key == key {
			if err = heads.advance(); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if err != nil {
		w.abort()
		return Meta{}, fmt.Errorf("idindex: merge into %s: %w", path, err)
	}
	return w.finish()
}

// mergeCursor is one input of a merge, at its current record.
type mergeCursor struct {
	age     int // the argument's position: lower is newer
	segment *Segment
	scanner *blockScanner
}

func (c *mergeCursor) err() error {
	if c.scanner.err == nil {
		return nil
	}
	if c.segment.closed.Load() {
		return fmt.Errorf("%s: %w", c.segment.path, ErrClosed)
	}
	return fmt.Errorf("%s: %w", c.segment.path, c.scanner.err)
}

// mergeHeap orders the inputs by current key, then newest first.
type mergeHeap struct{ cursors []*mergeCursor }

func (h *mergeHeap) Len() int { return len(h.cursors) }
func (h *mergeHeap) Less(i, j int) bool {
	a, b := h.cursors[i], h.cursors[j]
	if c := a.scanner.key.Compare(b.scanner.key); c != 0 {
		return c < 0
	}
	return a.age < b.age
}
func (h *mergeHeap) Swap(i, j int) { h.cursors[i], h.cursors[j] = h.cursors[j], h.cursors[i] }

// Push is never called: inputs only leave the heap.
func (h *mergeHeap) Push(any) { panic("idindex: mergeHeap.Push") }
func (h *mergeHeap) Pop() any {
	h.cursors = h.cursors[:len(h.cursors)-1]
	return nil
}

// advance moves the top input to its next record, dropping it at its end.
func (h *mergeHeap) advance() error {
	top := h.cursors[0]
	if top.scanner.scan() {
		heap.Fix(h, 0)
		return nil
	}
	if err := top.err(); err != nil {
		return err
	}
	heap.Pop(h)
	return nil
}
