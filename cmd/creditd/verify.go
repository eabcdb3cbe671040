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
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(report)
	} else {
		printReport(report)
	}
	if !report.OK {
		return errVerifyFailed
	}
	return nil
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
	if r.OK {
		fmt.Println("OK")
	}
}
