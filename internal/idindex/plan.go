package idindex

// planMerge is the size-tiered merge policy. Given segment sizes newest
// first, it proposes merging the newest n: up to and including the oldest
// segment that is not bigger than all newer ones together (at most
// MergeSegmentsMax of them).
//
// After such a merge no segment is left that is not bigger than all newer
// ones together (the sums before each older segment are unchanged), so one
// merge per new segment keeps the set in that shape: the totals more than
// double going older, and a set of total size T whose newest segment has
// size s holds at most log2(T/s)+1 segments. In a merge every older input
// at least doubles (an input is smaller than the next older one, and the
// oldest is at most the sum of the newer ones), and only the new segment
// may not, once: an entry is rewritten at most log2(T/s)+1 times, s now the
// smallest segment added. Sizes rather than counts make this hold for any
// mix of snapshot sizes, a big one included; taking the oldest such segment
// rather than the newest merges a big new segment once with all the small
// ones it outgrew, rather than once per small one.
func planMerge(sizes []int64) (n int, ok bool) {
	var newer int64
	for j, size := range sizes {
		if j > 0 && size <= newer {
			n = j + 1
		}
		newer += size
	}
	// The bound matters only to a caller who added many segments without
	// planning: in the shape above, 64 segments of at least a segment's
	// minimum size (about 150 bytes) would be over 2^63 bytes.
	return min(n, MergeSegmentsMax), n > 0
}
