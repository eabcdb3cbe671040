// Package idindex keeps creditd's index of every idempotent write ever made
// (idempotency is for the life of the data) off the heap: the writer keeps
// a recent window in memory and, at each snapshot, moves older entries
// into immutable sorted segment files. A lookup that misses memory asks the
// segments newest first (Set); each segment's Bloom filter answers "absent"
// for a new id, the common case, without reading the disk. Segments are
// also uploaded as objects to shared storage, so each is a self-contained,
// checksummed file, named by the SHA-256 of its bytes (Meta.SHA256).
//
// # File format (version 1, integers little-endian)
//
//	header   16 B   "CDIDXSEG", version uint32, 4 zero bytes
//	records         key [16]byte, uvarint value length, value; strictly
//	                increasing keys, grouped in blocks of up to 64 records
//	                (a block also ends once it holds 4 KiB)
//	index    28 B   per block: first key, offset uint64, CRC-32C uint32
//	bloom           10 bits per key rounded up to 64-bit words, k = 7
//	footer  120 B   "CDIDXEND", version, k, count, index offset, index
//	                entries, Bloom offset, Bloom bits, SHA-256 of every byte
//	                before the footer, SHA-256 of header+index+bloom+footer
//
// Why this shape:
//   - An open reads the header, index, Bloom filter and footer, which it
//     needs in memory anyway, and checks the footer's SHA-256 of exactly
//     those bytes; a multi-gigabyte file is not hashed on every open. The
//     records are checked block by block (CRC-32C in the index) when a
//     lookup or merge reads them, and VerifySegment checks every byte, for
//     downloads and creditd verify. A truncated or damaged file gives an
//     error wrapping ErrCorrupt, never an answer.
//   - Keys are hash prefixes, uniform already, so the Bloom filter probes
//     with the key's two 8-byte halves (double hashing), no hashing again.
//     With 10 bits and 7 probes per key its false-positive rate is about
//     0.82% per segment; a miss stops at the first clear bit, about two
//     probes.
//   - 64 records per index entry keeps the index at a third of the Bloom
//     filter's RAM while a hit reads one block of about 2.4 KiB for
//     ~20-byte values; the 4 KiB cut bounds that read for large values.
//
// # Bytes per key
//
// RAM, per open segment: 1.25 (Bloom) + 28/64 ≈ 0.44 (index) ≈ 1.7 bytes
// per key, against 40 bytes of key and outcome, before the map's own
// overhead, for an entry of an in-memory map.
// Disk: 17 + the value's length for the record (values under 128 bytes),
// plus the same 1.7 for index and filter: about 39 bytes per key for
// 20-byte values. MemoryBytes reports the RAM of a Segment or a Set.
//
// # Merging
//
// Set.Plan keeps the number of segments logarithmic in the total size
// (planMerge in plan.go gives the rule and the bounds); Merge combines
// segments newest first, newer values winning, in memory independent of
// their size; Set.Replace swaps the result in.
package idindex
