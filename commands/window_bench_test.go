package commands

import (
	"fmt"
	"testing"
)

// BenchmarkWindowEntries: a window of one share of the default budget
// (65,536 ids at 16 partitions) turned into a segment's entries, as each
// snapshot does: the keys sorted, each outcome encoded.
func BenchmarkWindowEntries(b *testing.B) {
	w := newWindow()
	for i := range SnapshotWindowDefault / 16 {
		w.seen[makeKey(int64(i%1000+1), kindUsage, fmt.Sprintf("usage-%d", i))] = outcome{position: uint64(i), fingerprint: uint64(i) * 0x9e3779b97f4a7c15}
	}
	b.ReportAllocs()
	for b.Loop() {
		entries, err := w.entries()
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for range entries {
			n++
		}
		if n != len(w.seen) {
			b.Fatalf("%d entries, want %d", n, len(w.seen))
		}
	}
}
