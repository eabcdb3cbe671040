package eventstore

// Both decoding paths, for the equivalence tests and the fuzzer, which live
// in package eventstore_test: they use internal/seed, which imports this
// package.
var (
	DecodeCommitFast = decodeCommitFast
	DecodeCommitJSON = decodeCommitJSON
)
