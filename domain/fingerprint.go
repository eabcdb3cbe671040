package domain

import (
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// fingerprinter hashes a command's fields as the client gave them, so that a
// retry with the same id and body matches and a different body is a 409.
// Defaults filled in at decision time (now) are not part of it: a retry
// without a timestamp must still match its first try.
type fingerprinter struct{ b strings.Builder }

// str writes s length-prefixed, so no two different field sequences encode
// alike (a separator byte could appear inside a field).
func (f *fingerprinter) str(s string) *fingerprinter {
	f.b.WriteString(strconv.Itoa(len(s)))
	f.b.WriteByte(':')
	f.b.WriteString(s)
	return f
}

func (f *fingerprinter) dec(d decimal.Decimal) *fingerprinter { return f.str(d.String()) }

func (f *fingerprinter) time(t time.Time) *fingerprinter {
	if t.IsZero() {
		return f.str("")
	}
	return f.str(t.UTC().Format(time.RFC3339Nano))
}

func (f *fingerprinter) stringMap(m map[string]string) *fingerprinter {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		f.str(k).str(m[k])
	}
	return f.str("")
}

func (f *fingerprinter) dimensions(d Dimensions) *fingerprinter {
	f.str(d.Module).str(d.Service).str(d.UserID).str(d.WorkflowID).str(d.WorkflowRunID).str(d.Endpoint)
	if d.Success {
		f.str("1")
	} else {
		f.str("0")
	}
	return f.dec(d.Quantity).stringMap(d.Custom)
}

func (f *fingerprinter) sum() uint64 {
	h := sha256.Sum256([]byte(f.b.String()))
	// Zero means "no fingerprint" in stored events; never produce it.
	return binary.BigEndian.Uint64(h[:8]) | 1
}
