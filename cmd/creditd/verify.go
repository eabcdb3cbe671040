package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/creditd/creditd/audit"
	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/projections"
)

// errVerifyFailed makes the process exit non-zero after printing a report
// with differences.
var errVerifyFailed = errors.New("verification found differences")

// verify recomputes balances, usage totals and ledgers from the log alone
// and compares them with the read models; it also checks the hash chains.
func verify(args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	logAt := addLogFlags(fs, "data directory")
	tenant := fs.Int64("tenant", 0, "verify one tenant (0: all)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	store, closeLog, err := logAt.open(ctx, "creditd-verify", false)
	if err != nil {
		return err
	}
	defer closeLog()
	db, err := projections.Open(filepath.Join(*logAt.dataDir, readModelFile))
	if err != nil {
		return err
	}
	defer db.Close()
	report, err := audit.Verify(ctx, store, db.Reader(), *tenant)
	if err != nil {
		return err
	}
	// Snapshots are checked against the same log: fetched into a
	// temporary directory, so a local copy proves nothing.
	scratch, err := os.MkdirTemp("", "creditd-verify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	snapshots, err := commands.VerifySnapshots(ctx, store, scratch)
	if err != nil {
		return fmt.Errorf("verify snapshots: %w", err)
	}
	snapshotsOK := true
	for _, c := range snapshots {
		snapshotsOK = snapshotsOK && c.Problem == ""
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(struct {
			audit.Report
			Snapshots   []commands.SnapshotCheck `json:"snapshots"`
			SnapshotsOK bool                     `json:"snapshots_ok"`
		}{report, snapshots, snapshotsOK})
	} else {
		printReport(report)
		printSnapshots(snapshots)
		if report.OK && snapshotsOK {
			fmt.Println("OK")
		}
	}
	if !report.OK || !snapshotsOK {
		return errVerifyFailed
	}
	return nil
}

func printSnapshots(checks []commands.SnapshotCheck) {
	for _, c := range checks {
		if c.Problem != "" {
			fmt.Printf("SNAPSHOT %s DIFFERS (a start falls back past it): %s\n", c.Name, c.Problem)
			continue
		}
		fmt.Printf("snapshot %s: ok (position %d, %d lines, %d segments, %d ids checked)\n", c.Name, c.Position, c.Lines, c.Segments, c.IDs)
	}
}

func printReport(r audit.Report) {
	fmt.Printf("verified %d commits up to position %d\n", r.Commits, r.Position)
	for _, b := range r.Chains {
		fmt.Printf("BROKEN CHAIN %s at position %d: expected prev %q, found %q %s\n", b.Subject, b.Position, b.Expected, b.Found, b.Detail)
		if b.SHA256 != "" {
			fmt.Printf("  if creditd did not write it: creditd quarantine --subject %s --sequence %d --sha256 %s --reason ...\n", b.Subject, b.Position, b.SHA256)
		}
	}
	for _, q := range r.SetAside {
		fmt.Printf("set aside (creditd quarantine): %s at position %d\n", q.Subject, q.Position)
	}
	for _, t := range r.Tenants {
		status := "ok"
		if !t.OK {
			status = "DIFFERS"
		}
		fmt.Printf("tenant %d: %s (%d lines, %d events)\n", t.TenantID, status, t.Lines, t.Events)
		for _, d := range t.Differences {
			fmt.Printf("  %s %s: from events %s, read model %s\n", d.CreditType, d.Field, d.FromEvents, d.ReadModel)
		}
	}
}
