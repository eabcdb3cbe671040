package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/creditd/creditd/projections"
)

// rebuild builds the read models from the log into a fresh database. Without
// --out it replaces the data dir's read models (stop serve first in the
// embedded mode: the embedded store belongs to one process).
func rebuild(args []string) error {
	fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
	dataDir := fs.String("data-dir", envOr("CREDITD_DATA_DIR", "./data"), "data directory (env CREDITD_DATA_DIR)")
	natsURL := fs.String("nats-url", envOr("CREDITD_NATS_URL", ""), "external NATS JetStream; empty opens the data dir's embedded store (env CREDITD_NATS_URL)")
	out := fs.String("out", "", "write the rebuilt database here instead of replacing <data-dir>/"+readModelFile)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	store, closeLog, err := openLog(ctx, *dataDir, *natsURL, "creditd-rebuild")
	if err != nil {
		return err
	}
	defer closeLog()
	target := *out
	replace := target == ""
	if replace {
		target = filepath.Join(*dataDir, readModelFile+".rebuilding")
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(target + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	db, err := projections.Open(target)
	if err != nil {
		return err
	}
	projector, err := projections.NewProjector(ctx, db, newLogger())
	if err != nil {
		db.Close()
		return err
	}
	start := time.Now()
	if err := projector.Replay(ctx, store, projections.ReplayOptions{Bulk: true}); err != nil {
		db.Close()
		return fmt.Errorf("rebuild: %w", err)
	}
	// History's notices were delivered when they happened.
	if err := db.MarkNoticesDelivered(ctx); err != nil {
		db.Close()
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	position := projector.Position()
	fmt.Fprintf(os.Stderr, "creditd: rebuilt read models to position %d in %s\n", position, time.Since(start).Round(time.Millisecond))
	if !replace {
		return nil
	}
	live := filepath.Join(*dataDir, readModelFile)
	for _, suffix := range []string{"-wal", "-shm"} {
		os.Remove(live + suffix)
	}
	return os.Rename(target, live)
}
