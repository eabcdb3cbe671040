package main

import (
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
)

func TestMemoryLimitFlagReadsSizesAsGOMEMLIMITDoes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, text string
		bytes      int64
		fails      bool
	}{
		{name: "mebibytes", text: "384MiB", bytes: 384 << 20},
		{name: "gibibytes", text: "2GiB", bytes: 2 << 30},
		{name: "kibibytes", text: "131072KiB", bytes: 128 << 20},
		{name: "plain_bytes", text: "536870912", bytes: 512 << 20},
		{name: "bytes_with_unit", text: "536870912B", bytes: 512 << 20},
		{name: "zero_is_none", text: "0", bytes: 0},
		{name: "zero_with_unit_is_none", text: "0MiB", bytes: 0},
		{name: "off_is_none", text: "off", bytes: 0},
		{name: "a_missing_unit_is_refused", text: "384", fails: true},
		{name: "under_the_minimum_is_refused", text: "63MiB", fails: true},
		{name: "negative_is_refused", text: "-1GiB", fails: true},
		{name: "another_unit_is_refused", text: "1GB", fails: true},
		{name: "overflow_is_refused", text: "9000000TiB", fails: true},
		{name: "empty_is_refused", text: "", fails: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newMemoryLimit()
			err := m.Set(tc.text)
			if tc.fails {
				if err == nil {
					t.Fatalf("%q: accepted as %d bytes", tc.text, m.bytes)
				}
				return
			}
			if err != nil || m.bytes != tc.bytes || !m.set {
				t.Fatalf("%q: got %d bytes, set %v, err %v; want %d", tc.text, m.bytes, m.set, err, tc.bytes)
			}
			// What String writes, Set reads back.
			again := newMemoryLimit()
			if err := again.Set(m.String()); err != nil || again.bytes != m.bytes {
				t.Fatalf("%q written as %q reads back as %d (%v)", tc.text, m.String(), again.bytes, err)
			}
		})
	}
}

// serve's limit comes from the flag, its environment variable or the
// config file like every setting; unset, it is the default and not marked
// given, so GOMEMLIMIT may apply instead.
func TestServeMemoryLimitSettings(t *testing.T) {
	cfg, err := parseServeFlags(nil)
	if err != nil || cfg.memoryLimit.bytes != memoryLimitDefault || cfg.memoryLimit.set {
		t.Fatalf("default: %+v (%v), want %d, not given", cfg.memoryLimit, err, memoryLimitDefault)
	}
	cfg, err = parseServeFlags([]string{"--memory-limit", "1GiB"})
	if err != nil || cfg.memoryLimit.bytes != 1<<30 || !cfg.memoryLimit.set {
		t.Fatalf("flag: %+v (%v)", cfg.memoryLimit, err)
	}
	t.Setenv("CREDITD_MEMORY_LIMIT", "0")
	cfg, err = parseServeFlags(nil)
	if err != nil || cfg.memoryLimit.bytes != 0 || !cfg.memoryLimit.set {
		t.Fatalf("environment: %+v (%v)", cfg.memoryLimit, err)
	}
	if _, err := parseServeFlags([]string{"--memory-limit", "512"}); err == nil {
		t.Fatal("a limit of 512 bytes was accepted")
	}
}

// apply sets the runtime's limit: the given one, else GOMEMLIMIT's, else
// the default; 0 removes it.
func TestMemoryLimitApplied(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	log := slog.New(slog.DiscardHandler)

	t.Setenv("GOMEMLIMIT", "")
	if got := newMemoryLimit().apply(log); got != memoryLimitDefault || debug.SetMemoryLimit(-1) != memoryLimitDefault {
		t.Fatalf("default: applied %d, runtime has %d, want %d", got, debug.SetMemoryLimit(-1), memoryLimitDefault)
	}
	given := newMemoryLimit()
	if err := given.Set("700MiB"); err != nil {
		t.Fatal(err)
	}
	if got := given.apply(log); got != 700<<20 || debug.SetMemoryLimit(-1) != 700<<20 {
		t.Fatalf("given: applied %d, runtime has %d", got, debug.SetMemoryLimit(-1))
	}

	// The runtime read GOMEMLIMIT when the process started; set here, the
	// test stands in for that by setting the runtime's limit itself.
	t.Setenv("GOMEMLIMIT", "900MiB")
	debug.SetMemoryLimit(900 << 20)
	if got := newMemoryLimit().apply(log); got != 900<<20 || debug.SetMemoryLimit(-1) != 900<<20 {
		t.Fatalf("GOMEMLIMIT: applied %d, runtime has %d, want the operator's 900MiB", got, debug.SetMemoryLimit(-1))
	}
	if got := given.apply(log); got != 700<<20 {
		t.Fatalf("--memory-limit beside GOMEMLIMIT: applied %d, want the flag's 700MiB", got)
	}
	none := newMemoryLimit()
	if err := none.Set("0"); err != nil {
		t.Fatal(err)
	}
	if got := none.apply(log); got != math.MaxInt64 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Fatalf("none: applied %d, runtime has %d", got, debug.SetMemoryLimit(-1))
	}
}
