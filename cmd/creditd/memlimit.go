package main

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// memoryLimitDefault is the soft limit on the memory the Go runtime holds
// (runtime/debug.SetMemoryLimit) that serve and bench set unless told
// otherwise.
//
// Why a limit at all: the Go collector lets the heap grow to twice what was
// live at the last collection (GOGC=100) before collecting again. Most of
// what creditd holds live at a high write or read rate is not creditd's:
// the embedded NATS server keeps each file-store block it wrote or read in
// an 8 MiB buffer for 10 s after the last use, so 10 s of log traffic is
// live (about 150-200 MiB during `creditd bench`, more while a first start
// reads the log at 100 MiB/s), and buffers of blocks already let go stay
// reachable until a collection or two has run. Doubling that gave a peak
// resident set of 700-770 MiB during `creditd bench` (250-300 MiB live) and
// 1.7-1.9 GiB during a first start on a 10M-event log (up to 900 MiB
// live). With the limit the collector runs sooner once the heap nears it,
// instead of letting it double.
//
// Why 384 MiB: the resident set is the limit plus what the Go runtime does
// not count (SQLite's caches, which are C memory, and the binary), about
// 100 MiB more, so 384 MiB keeps `creditd bench` and a first start under
// 512 MiB (482 MiB measured for both, README.md). It holds the live heap
// of `creditd bench` with a third to spare; a first start on a 10M-event
// log runs at the limit while the write side reads the log (up to 346 MiB
// live after a collection), yet collections took 2% of the CPU there, as
// most of that heap is NATS's buffers, which hold no pointers and cost the
// collector little. Lower does not pay: at 160 MiB `creditd bench` ran at
// a third of its throughput with the collector taking 20% of the CPU.
//
// The limit is soft: when more than that is live (many more lines or ids
// in the window than measured), the collector runs back to back, taking up
// to about half the CPU (the Go runtime caps it there), writes slow down
// and the heap grows past the limit instead of failing. Raise it with
// --memory-limit, or set 0 to let the heap double as plain Go does.
const memoryLimitDefault = 384 << 20

// memoryLimitMin refuses limits that leave no room for creditd's own
// state: a size written without its unit ("384") would otherwise run the
// collector without pause.
const memoryLimitMin = 64 << 20

const memoryLimitUsage = "soft limit on the memory the Go runtime holds, as GOMEMLIMIT takes it (384MiB, 1GiB; 0 or off: none, the heap may double what is live); when unset, GOMEMLIMIT if the environment sets it, else the default (docs in cmd/creditd/memlimit.go)"

// memoryLimit is the --memory-limit flag: bytes, 0 meaning no limit, and
// whether it was given (a flag, its environment variable or the config
// file), which decides whether GOMEMLIMIT applies instead.
type memoryLimit struct {
	bytes int64
	set   bool
}

func newMemoryLimit() memoryLimit { return memoryLimit{bytes: memoryLimitDefault} }

// String writes the limit as Set reads it.
func (m *memoryLimit) String() string {
	if m == nil || m.bytes == 0 {
		return "0"
	}
	for _, u := range memoryUnits {
		if m.bytes%u.bytes == 0 && u.bytes > 1 {
			return strconv.FormatInt(m.bytes/u.bytes, 10) + u.suffix
		}
	}
	return strconv.FormatInt(m.bytes, 10)
}

// memoryUnits are GOMEMLIMIT's suffixes, largest first.
var memoryUnits = []struct {
	suffix string
	bytes  int64
}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// Set reads a size the way GOMEMLIMIT does: digits with an optional unit
// B, KiB, MiB, GiB or TiB; 0 or "off" for no limit.
func (m *memoryLimit) Set(s string) error {
	text := strings.TrimSpace(s)
	if text == "off" {
		*m = memoryLimit{set: true}
		return nil
	}
	digits, scale := text, int64(1)
	for _, u := range memoryUnits {
		if rest, ok := strings.CutSuffix(text, u.suffix); ok {
			digits, scale = rest, u.bytes
			break
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q: want a size such as 384MiB or 1GiB, or 0 for none", s)
	}
	if n > math.MaxInt64/scale {
		return fmt.Errorf("%q: too large", s)
	}
	if n == 0 {
		*m = memoryLimit{set: true}
		return nil
	}
	if n*scale < memoryLimitMin {
		return fmt.Errorf("%q is under %dMiB: no room for creditd's own state (a unit missing?); 0 sets no limit", s, memoryLimitMin>>20)
	}
	*m = memoryLimit{bytes: n * scale, set: true}
	return nil
}

// apply sets the runtime's soft memory limit: the flag's value when it was
// given, else GOMEMLIMIT's when the environment sets it (the Go runtime
// read it at start), else the default. It logs the limit in force and
// returns it, math.MaxInt64 for none.
func (m memoryLimit) apply(log *slog.Logger) int64 {
	if env := os.Getenv("GOMEMLIMIT"); env != "" && !m.set {
		limit := debug.SetMemoryLimit(-1)
		log.Info("memory limit from GOMEMLIMIT", "limit_bytes", limit)
		return limit
	}
	limit := m.bytes
	if limit == 0 {
		limit = math.MaxInt64
	}
	debug.SetMemoryLimit(limit)
	if m.bytes == 0 {
		log.Info("no memory limit: the heap may grow to twice what is live (GOGC)")
	} else {
		log.Info("memory limit", "limit", m.String())
	}
	return limit
}
