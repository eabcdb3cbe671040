package idindex

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Set is the ordered list of a writer's open segments, newest first. A
// lookup answers from the newest segment holding the key.
//
// Get, Plan, Segments and MemoryBytes may run from many goroutines at
// once, and alongside AddNewest and Replace: a Get holds a read lock for
// its whole lookup, so Replace, which takes the write lock to swap the
// list, closes the replaced segments only once no Get can be reading them.
// A Get sees the list before or after a Replace; a merge keeps every
// answer, so both give the same one. One goroutine at a time should plan,
// merge and replace (the snapshotter); Replace refuses a plan another
// Replace made stale.
type Set struct {
	mu sync.RWMutex
	// segments is newest first.
	segments []*Segment
	closed   bool
}

// NewSet makes a set of segments, given newest first. The set owns them:
// it closes them on Replace and Close.
func NewSet(segments ...*Segment) *Set {
	return &Set{segments: slices.Clone(segments)}
}

// AddNewest adds a segment newer than every segment in the set, the one a
// snapshot just wrote. The set owns it from now on.
//
// It returns ErrClosed after Close.
func (s *Set) AddNewest(segment *Segment) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.segments = slices.Insert(s.segments, 0, segment)
	return nil
}

// Get returns the newest value stored for key, and whether there is one.
// An absent key costs one Bloom filter check per segment (false positive
// rate about 0.82% each, then one block read).
//
// It returns ErrClosed after Close, or the first segment's error: an
// error never falls through to an older, possibly outdated, value.
func (s *Set) Get(key Key) (value []byte, ok bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, false, ErrClosed
	}
	for _, segment := range s.segments {
		if value, ok, err = segment.Get(key); ok || err != nil {
			return value, ok, err
		}
	}
	return nil, false, nil
}

// Plan proposes segments to merge, newest first (planMerge gives the
// policy): merge them with Merge, in the order given, then call Replace.
// Call it after each AddNewest; one merge then puts the set back in shape,
// so the next Plan proposes nothing. The segments stay valid until that
// Replace or Close.
func (s *Set) Plan() (merge []*Segment, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, false
	}
	sizes := make([]int64, len(s.segments))
	for i, segment := range s.segments {
		sizes[i] = segment.Bytes()
	}
	n, ok := planMerge(sizes)
	if !ok {
		return nil, false
	}
	return slices.Clone(s.segments[:n]), true
}

// Replace puts merged, the result of merging segments, in their place and
// closes them. segments must still be a run of the set, newest first, as
// Plan returned them; segments added since by AddNewest do not matter.
//
// It returns ErrNotInSet (and changes nothing) otherwise, ErrClosed after
// Close, or the errors of closing the replaced files (the set has changed
// then).
func (s *Set) Replace(segments []*Segment, merged *Segment) error {
	if merged == nil || len(segments) == 0 {
		return fmt.Errorf("%w: nothing to replace", ErrNotInSet)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	i := slices.Index(s.segments, segments[0])
	if i < 0 || i+len(segments) > len(s.segments) || !slices.Equal(s.segments[i:i+len(segments)], segments) || slices.Contains(s.segments, merged) {
		s.mu.Unlock()
		return ErrNotInSet
	}
	s.segments = slices.Replace(s.segments, i, i+len(segments), merged)
	s.mu.Unlock()
	// Holding the write lock above waited out every Get that could be
	// reading the replaced segments; later ones see the new list.
	var errs []error
	for _, segment := range segments {
		errs = append(errs, segment.Close())
	}
	return errors.Join(errs...)
}

// Segments lists the set's segments, newest first. They stay owned by the
// set: valid until a Replace or Close removes them.
func (s *Set) Segments() []*Segment {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.segments)
}

// MemoryBytes is the RAM the segments' Bloom filters and sparse indexes
// hold.
func (s *Set) MemoryBytes() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var total int64
	for _, segment := range s.segments {
		total += segment.MemoryBytes()
	}
	return total
}

// Close closes every segment; later calls return ErrClosed. Closing twice
// is harmless.
func (s *Set) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, segment := range s.segments {
		errs = append(errs, segment.Close())
	}
	s.segments = nil
	return errors.Join(errs...)
}
