package commands

import (
	"encoding/hex"
	"strings"
	"testing"
)

// The idempotency index is kept on disk and rebuilt from the log: its keys
// and line fingerprints must not change with how they are computed. The
// digests were taken from the first implementation (sha256.New, Sum(nil),
// FormatUint), which the allocation-free one must reproduce byte for byte,
// for short ids and ids past its stack buffer.
func TestIdempotencyKeysAreStable(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		got  idKey
		want string
	}{
		{makeKey(42, kindUsage, "u-1"), "bcfc1554545653acf6280ce0afb3b497"},
		{makeKey(-7, kindGrant, strings.Repeat("g", 200)), "1f4482ccc9a10be936172e99f851bbef"},
	} {
		if got := hex.EncodeToString(c.got[:]); got != c.want {
			t.Errorf("key %s, want %s", got, c.want)
		}
	}
	if got := lineFingerprint(0xfeedface, "gpu"); got != 0xccc68996a2fe31d3 {
		t.Errorf("line fingerprint %x, want ccc68996a2fe31d3", got)
	}
	if got := lineFingerprint(0, "gpu"); got != 0 {
		t.Errorf("line fingerprint of no fingerprint %x, want 0", got)
	}
}
