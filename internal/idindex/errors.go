package idindex

import "errors"

var (
	// ErrCorrupt reports a segment whose bytes are not what a writer wrote:
	// truncated, bit-flipped, or not a segment at all. The error wrapping
	// it says where. A lookup never answers from such bytes.
	ErrCorrupt = errors.New("idindex: corrupt segment")
	// ErrUnsorted reports entries handed to WriteSegment out of key order.
	ErrUnsorted = errors.New("idindex: entries not sorted by key")
	// ErrDuplicateKey reports a key handed to WriteSegment twice.
	ErrDuplicateKey = errors.New("idindex: duplicate key")
	// ErrValueTooLong reports a value longer than ValueBytesMax.
	ErrValueTooLong = errors.New("idindex: value longer than ValueBytesMax")
	// ErrClosed reports a lookup or merge on a closed Segment or Set.
	ErrClosed = errors.New("idindex: closed")
	// ErrTooManySegments reports a Merge of more than MergeSegmentsMax
	// segments.
	ErrTooManySegments = errors.New("idindex: too many segments to merge at once")
	// ErrNotInSet reports a Replace whose segments are not a run of the
	// Set's current list, newest first.
	ErrNotInSet = errors.New("idindex: segments are not a run of the set")
)
