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
	dataDir := fs.String("data-dir", envOr("CREDITD_DATA_DIR", "./data"), "data directory (env CREDITD_DATA_DIR)")
	natsURL := fs.String("nats-url", envOr("CREDITD_NATS_URL", ""), "external NATS JetStream; empty opens the data dir's embedded store (env CREDITD_NATS_URL)")
	out := fs.String("out", "", "directory for the replayed read models (required; created)")
	tenant := fs.Int64("tenant", 0, "replay one tenant (0: all)")
	until := fs.String("until", "", "stop before the first commit recorded after this instant (RFC 3339 or YYYY-MM-DD: the end of that UTC day)")
	untilPosition := fs.Uint64("until-position", 0, "stop at this stream position")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
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
	store, closeLog, err := openLog(ctx, *dataDir, *natsURL, "creditd-replay")
	if err != nil {
		return err
	}
	defer closeLog()
	if err := os.MkdirAll(*out, 0o750); err != nil {
		return err
	}
	target := filepath.Join(*out, readModelFile)
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(target + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	db, err := projections.Open(target)
	if err != nil {
		return err
	}
	defer db.Close()
	projector, err := projections.NewProjector(ctx, db, nil)
	if err != nil {
		return err
	}
	opts.Progress = progressPrinter(os.Stderr)
	if err := projector.Replay(ctx, store, opts); err != nil {
		return err
	}
	if err := db.MarkNoticesDelivered(ctx); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "\ncreditd: replayed to position %d into %s\n", projector.Position(), target)
	return nil
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
