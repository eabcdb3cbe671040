package eventstore

// Both decoding and both encoding paths, for the equivalence tests and the
// fuzzers, which live in package eventstore_test: they use internal/seed,
// which imports this package.
var (
	DecodeCommitFast = decodeCommitFast
	DecodeCommitJSON = decodeCommitJSON
	EncodeCommitFast = encodeCommitFast
	EncodeCommitJSON = encodeCommitJSON
)
