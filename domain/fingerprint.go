package domain

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strconv"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/internal/dectext"
)

// fingerprinter hashes a command's fields as the client gave them, so that a
// retry with the same id and body matches and a different body is a 409.
// Defaults filled in at decision time (now) are not part of it: a retry
// without a timestamp must still match its first try.
//
// It appends to one buffer sized for a usage event: a usage event is
// fingerprinted on every write, and a builder's growth was a fifth of the
// allocations of a usage decision.
type fingerprinter struct{ b []byte }

// fingerprintBufBytes fits a usage event with typical dimensions.
const fingerprintBufBytes = 256

// str writes s length-prefixed, so no two different field sequences encode
// alike (a separator byte could appear inside a field).
func (f fingerprinter) str(s string) fingerprinter {
	if f.b == nil {
		f.b = make([]byte, 0, fingerprintBufBytes)
	}
	f.b = strconv.AppendInt(f.b, int64(len(s)), 10)
	f.b = append(f.b, ':')
	f.b = append(f.b, s...)
	return f
}

// dec writes d's String, laid out without allocating (dectext).
func (f fingerprinter) dec(d decimal.Decimal) fingerprinter {
	var text [40]byte
	return f.bytes(dectext.Append(text[:0], d))
}

func (f fingerprinter) time(t time.Time) fingerprinter {
	if t.IsZero() {
		return f.str("")
	}
	var text [64]byte
	return f.bytes(t.UTC().AppendFormat(text[:0], time.RFC3339Nano))
}

// bytes is str for bytes.
func (f fingerprinter) bytes(s []byte) fingerprinter {
	if f.b == nil {
		f.b = make([]byte, 0, fingerprintBufBytes)
	}
	f.b = strconv.AppendInt(f.b, int64(len(s)), 10)
	f.b = append(f.b, ':')
	f.b = append(f.b, s...)
	return f
}

func (f fingerprinter) stringMap(m map[string]string) fingerprinter {
	if len(m) > 0 {
		// Sorted in a stack array when the map is no larger than custom
		// dimensions may be: slices.Sorted allocated twice per event.
		var buf [CustomKeysMax]string
		keys := buf[:0]
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			f = f.str(k).str(m[k])
		}
	}
	return f.str("")
}

func (f fingerprinter) dimensions(d Dimensions) fingerprinter {
	f = f.str(d.Module).str(d.Service).str(d.UserID).str(d.WorkflowID).str(d.WorkflowRunID).str(d.Endpoint)
	if d.Success {
		f = f.str("1")
	} else {
		f = f.str("0")
	}
	return f.dec(d.Quantity).stringMap(d.Custom)
}

func (f fingerprinter) sum() uint64 {
	h := sha256.Sum256(f.b)
	// Zero means "no fingerprint" in stored events; never produce it.
	return binary.BigEndian.Uint64(h[:8]) | 1
}
