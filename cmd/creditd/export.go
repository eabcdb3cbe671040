package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/creditd/creditd/audit"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/projections"
	"github.com/creditd/creditd/queries"
)

// logFlags are the flags of the offline commands that name the event log.
type logFlags struct{ dataDir, natsURL *string }

func addLogFlags(fs *flag.FlagSet, dataDirHelp string) logFlags {
	return logFlags{
		dataDir: fs.String("data-dir", envOr("CREDITD_DATA_DIR", "./data"), dataDirHelp+" (env CREDITD_DATA_DIR)"),
		natsURL: fs.String("nats-url", envOr("CREDITD_NATS_URL", ""), "external NATS JetStream; empty opens the data dir's embedded store (env CREDITD_NATS_URL)"),
	}
}

// parseFlags parses a command's arguments; help is true when -h printed the
// usage and the command has nothing more to do.
func parseFlags(fs *flag.FlagSet, args []string) (help bool, err error) {
	err = fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return true, nil
	}
	return false, err
}

// open locks the data dir and opens its event log (embedded) or the
// external NATS. The lock is exclusive when the command writes the data
// dir, and always with the embedded store: the embedded server writes its
// store even for a reader. The returned func closes the log and unlocks.
func (f logFlags) open(ctx context.Context, name string, writes bool) (*eventstore.Store, func(), error) {
	unlock, err := lockDataDir(*f.dataDir, strings.TrimPrefix(name, "creditd-"), writes || *f.natsURL == "")
	if err != nil {
		return nil, nil, err
	}
	link, err := openNATS(serveConfig{dataDir: *f.dataDir, natsURL: *f.natsURL}, nil, newLogger())
	if err != nil {
		unlock()
		return nil, nil, err
	}
	nc, err := link.dial(name)
	if err != nil {
		link.close()
		unlock()
		return nil, nil, err
	}
	closeAll := func() {
		nc.Close()
		link.close()
		unlock()
	}
	store, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return store, closeAll, nil
}

// export streams a tenant's history for external audit tools: its events
// from the log, or its ledger or usage rows from the read models.
func export(args []string) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	logAt := addLogFlags(fs, "data directory")
	tenant := fs.Int64("tenant", 0, "the tenant to export (required)")
	fromText := fs.String("from", "", "first instant (RFC 3339 or YYYY-MM-DD)")
	toText := fs.String("to", "", "last instant (RFC 3339 or YYYY-MM-DD: the end of that UTC day)")
	format := fs.String("format", audit.FormatNDJSON, "ndjson or csv")
	what := fs.String("what", "events", "events (from the log), ledger or usage (from the read models)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if *tenant < 1 {
		return errors.New("export: --tenant is required")
	}
	var from, to time.Time
	var err error
	if *fromText != "" {
		if from, err = queries.ParseInstant(*fromText, false); err != nil {
			return fmt.Errorf("export: --from: %w", err)
		}
	}
	if *toText != "" {
		if to, err = queries.ParseInstant(*toText, true); err != nil {
			return fmt.Errorf("export: --to: %w", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *what == "events" {
		store, closeLog, err := logAt.open(ctx, "creditd-export", false)
		if err != nil {
			return err
		}
		defer closeLog()
		return audit.ExportEvents(ctx, store, *tenant, from, to, *format, os.Stdout)
	}
	unlock, err := lockDataDir(*logAt.dataDir, "export", lockShared)
	if err != nil {
		return err
	}
	defer unlock()
	db, err := projections.Open(filepath.Join(*logAt.dataDir, readModelFile))
	if err != nil {
		return err
	}
	defer db.Close()
	fromMicros, toMicros := int64(0), int64(1<<62)
	if !from.IsZero() {
		fromMicros = from.UnixMicro()
	}
	if !to.IsZero() {
		toMicros = to.UnixMicro()
	}
	switch *what {
	case "ledger":
		return audit.ExportRows(ctx, db.Reader(), `SELECT entry_id AS id, credit_type, type, printf('%.6f', amount / 1e6) AS amount,
			printf('%.6f', balance_after / 1e6) AS balance_after, source_id, description, reference, metadata,
			strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1e6, 'unixepoch') AS created_at, position
			FROM ledger WHERE tenant_id = ? AND created_at BETWEEN ? AND ? ORDER BY entry_id`,
			[]any{*tenant, fromMicros, toMicros}, *format, os.Stdout)
	case "usage":
		return audit.ExportRows(ctx, db.Reader(), `SELECT date(day * 86400, 'unixepoch') AS date, credit_type, module, service, user_id,
			workflow_id, workflow_run_id, endpoint, success, custom, printf('%.6f', credits / 1e6) AS credits,
			printf('%.6f', quantity / 1e6) AS quantity, requests, successes, failures
			FROM usage_daily WHERE tenant_id = ? AND day BETWEEN ? AND ? ORDER BY day, credit_type, module, service, user_id`,
			[]any{*tenant, fromMicros / 86_400_000_000, toMicros / 86_400_000_000}, *format, os.Stdout)
	}
	return fmt.Errorf("export: --what %q: events, ledger or usage", *what)
}

// importEvents appends an NDJSON events export to an empty creditd.
func importEvents(args []string) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	logAt := addLogFlags(fs, "data directory of an empty creditd")
	in := fs.String("in", "-", "the NDJSON events export to read; - is standard input")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	var r io.Reader = os.Stdin
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	store, closeLog, err := logAt.open(ctx, "creditd-import", true)
	if err != nil {
		return err
	}
	defer closeLog()
	n, err := audit.Import(ctx, store, r)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "creditd: imported %d events; start creditd serve to build the read models\n", n)
	return nil
}
