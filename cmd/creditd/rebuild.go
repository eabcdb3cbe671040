package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
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
	logAt := addLogFlags(fs, "data directory")
	out := fs.String("out", "", "write the rebuilt database here instead of replacing <data-dir>/"+readModelFile)
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	store, closeLog, err := logAt.open(ctx, "creditd-rebuild", true)
	if err != nil {
		return err
	}
	defer closeLog()
	target := *out
	replace := target == ""
	if replace {
		target = filepath.Join(*logAt.dataDir, readModelFile+".rebuilding")
	}
	start := time.Now()
	position, err := replayInto(ctx, store, target, projections.ReplayOptions{Bulk: true})
	if err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	fmt.Fprintf(os.Stderr, "creditd: rebuilt read models to position %d in %s\n", position, time.Since(start).Round(time.Millisecond))
	if !replace {
		return nil
	}
	live := filepath.Join(*logAt.dataDir, readModelFile)
	for _, suffix := range []string{"-wal", "-shm"} {
		os.Remove(live + suffix)
	}
	return os.Rename(target, live)
}

// openReadModels opens the read models at path. When an older creditd wrote
// them (projections.ErrFormatOutdated), they are first rebuilt from the log
// beside the old ones, which are replaced only once the rebuild is whole:
// an upgrade never serves rows an older projection left incomplete, and a
// crash during the rebuild leaves the old database to be rebuilt again.
// Notices pending in the old outbox are not carried over (the rebuilt
// outbox holds history's notices as delivered).
func openReadModels(ctx context.Context, log projections.LogReader, logger *slog.Logger, path string) (*projections.DB, error) {
	db, err := projections.Open(path)
	if !errors.Is(err, projections.ErrFormatOutdated) {
		return db, err
	}
	logger.Warn("rebuilding the read models from the log", "reason", err.Error())
	start := time.Now()
	position, err := replayInto(ctx, log, path+".rebuilding", projections.ReplayOptions{Bulk: true})
	if err != nil {
		return nil, fmt.Errorf("rebuild read models of an older format: %w", err)
	}
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	if err := os.Rename(path+".rebuilding", path); err != nil {
		return nil, err
	}
	logger.Info("read models rebuilt", "position", position, "took", time.Since(start).Round(time.Millisecond).String())
	return projections.Open(path)
}
