package main

import (
	"context"
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
		target = filepath.Join(*logAt.dataDir, readModelFile+rebuildingSuffix)
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
	return swapReadModels(target, filepath.Join(*logAt.dataDir, readModelFile))
}
