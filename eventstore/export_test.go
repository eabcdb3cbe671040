package eventstore

import (
	"testing"
	"time"
)

// Both decoding and both encoding paths, for the equivalence tests and the
// fuzzers, which live in package eventstore_test: they use internal/seed,
// which imports this package.
var (
	DecodeCommitFast = decodeCommitFast
	DecodeCommitJSON = decodeCommitJSON
	EncodeCommitFast = encodeCommitFast
	EncodeCommitJSON = encodeCommitJSON
)

// SetReadLimits sets the reader's first fetch wait and its bytes per fetch
// until the test ends, so that tests can make fetches come back empty or
// short. The limits are package state: a test that calls this must not be
// parallel.
func SetReadLimits(t testing.TB, fetchWait time.Duration, fetchBytes int) {
	t.Helper()
	saved := readLimitsDefault
	readLimitsDefault.fetchWait, readLimitsDefault.fetchBytes = fetchWait, fetchBytes
	t.Cleanup(func() { readLimitsDefault = saved })
}
