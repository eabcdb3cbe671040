package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/creditd/creditd/projections"
	"github.com/creditd/creditd/queries"
)

// replay rebuilds the read models from the log into a fresh database in
// --out, up to an instant or a position, for one tenant or all: history as
// it stood then, to inspect with any SQLite tool or a creditd pointed at it.
// The live read models are untouched.
func replay(args []string) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	logAt := addLogFlags(fs, "data directory")
	out := fs.String("out", "", "directory for the replayed read models (required; created)")
	tenant := fs.Int64("tenant", 0, "replay one tenant (0: all)")
	until := fs.String("until", "", "stop before the first commit recorded after this instant (RFC 3339 or YYYY-MM-DD: the end of that UTC day)")
	untilPosition := fs.Uint64("until-position", 0, "stop at this stream position")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if *out == "" {
		return errors.New("replay: --out is required")
	}
	opts := projections.ReplayOptions{UpTo: *untilPosition, TenantID: *tenant, Bulk: true}
	if *until != "" {
		t, err := queries.ParseInstant(*until, true)
		if err != nil {
			return fmt.Errorf("replay: --until: %w", err)
		}
		opts.Until = t
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	store, closeLog, err := logAt.open(ctx, "creditd-replay", false)
	if err != nil {
		return err
	}
	defer closeLog()
	if err := os.MkdirAll(*out, 0o750); err != nil {
		return err
	}
	target := filepath.Join(*out, readModelFile)
	opts.Progress = progressPrinter(os.Stderr)
	position, err := replayInto(ctx, store, target, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "\ncreditd: replayed to position %d into %s\n", position, target)
	return nil
}

// replayInto projects the log into a fresh database at target, replacing
// whatever was there. History's notices were delivered when they happened,
// so the new outbox holds them as delivered.
func replayInto(ctx context.Context, log projections.LogReader, target string, opts projections.ReplayOptions) (position uint64, err error) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(target + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, err
		}
	}
	db, err := projections.Open(target)
	if err != nil {
		return 0, err
	}
	projector, err := projections.NewProjector(ctx, db, newLogger())
	if err != nil {
		db.Close()
		return 0, err
	}
	if err := projector.Replay(ctx, log, opts); err != nil {
		// A bulk load that failed is not a consistent prefix of the log
		// (its checkpoint can be ahead of usage it held in memory): none
		// of it is left behind.
		db.Close()
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(target + suffix)
		}
		return 0, err
	}
	if err := db.MarkNoticesDelivered(ctx); err != nil {
		db.Close()
		return 0, err
	}
	return projector.Position(), db.Close()
}

// progressPrinter draws a bar with events/s and ETA on a terminal, and a
// plain line at most every second otherwise.
func progressPrinter(w *os.File) func(projections.Progress) {
	info, err := w.Stat()
	terminal := err == nil && info.Mode()&os.ModeCharDevice != 0
	var last time.Time
	return func(p projections.Progress) {
		rate := float64(p.Events) / max(p.Elapsed.Seconds(), 1e-3)
		frac := 1.0
		if p.UpTo > 0 {
			frac = min(float64(p.Position)/float64(p.UpTo), 1)
		}
		eta := time.Duration(0)
		if frac > 0 {
			eta = time.Duration(float64(p.Elapsed)/frac - float64(p.Elapsed)).Round(time.Second)
		}
		if terminal {
			const width = 30
			done := int(frac * width)
			fmt.Fprintf(w, "\r[%s%s] %5.1f%%  position %d/%d  %.0f events/s  ETA %s ",
				strings.Repeat("#", done), strings.Repeat(".", width-done), frac*100, p.Position, p.UpTo, rate, eta)
			return
		}
		if time.Since(last) >= time.Second || p.Position >= p.UpTo {
			last = time.Now()
			fmt.Fprintf(w, "replay: position %d of %d (%.1f%%), %d events, %.0f events/s, ETA %s\n", p.Position, p.UpTo, frac*100, p.Events, rate, eta)
		}
	}
}
