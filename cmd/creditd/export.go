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
	"syscall"
	"time"

	"github.com/creditd/creditd/audit"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/projections"
	"github.com/creditd/creditd/queries"
)

// openLog opens the event log of a data dir (embedded) or an external NATS.
func openLog(ctx context.Context, dataDir, natsURL, name string) (*eventstore.Store, func(), error) {
	link, err := openNATS(serveConfig{dataDir: dataDir, natsURL: natsURL}, newLogger())
	if err != nil {
		return nil, nil, err
	}
	nc, err := link.dial(name)
	if err != nil {
		link.close()
		return nil, nil, err
	}
	closeAll := func() {
		nc.Close()
		link.close()
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
	dataDir := fs.String("data-dir", envOr("CREDITD_DATA_DIR", "./data"), "data directory (env CREDITD_DATA_DIR)")
	natsURL := fs.String("nats-url", envOr("CREDITD_NATS_URL", ""), "external NATS JetStream (env CREDITD_NATS_URL)")
	tenant := fs.Int64("tenant", 0, "the tenant to export (required)")
	fromText := fs.String("from", "", "first instant (RFC 3339 or YYYY-MM-DD)")
	toText := fs.String("to", "", "last instant (RFC 3339 or YYYY-MM-DD: the end of that UTC day)")
	format := fs.String("format", audit.FormatNDJSON, "ndjson or csv")
	what := fs.String("what", "events", "events (from the log), ledger or usage (from the read models)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
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
		store, closeLog, err := openLog(ctx, *dataDir, *natsURL, "creditd-export")
		if err != nil {
			return err
		}
		defer closeLog()
		return audit.ExportEvents(ctx, store, *tenant, from, to, *format, os.Stdout)
	}
	db, err := projections.Open(filepath.Join(*dataDir, readModelFile))
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
	dataDir := fs.String("data-dir", envOr("CREDITD_DATA_DIR", "./data"), "data directory of an empty creditd (env CREDITD_DATA_DIR)")
	natsURL := fs.String("nats-url", envOr("CREDITD_NATS_URL", ""), "external NATS JetStream (env CREDITD_NATS_URL)")
	in := fs.String("in", "-", "the NDJSON events export to read; - is standard input")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
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
	if err := os.MkdirAll(*dataDir, 0o750); err != nil {
		return err
	}
	store, closeLog, err := openLog(ctx, *dataDir, *natsURL, "creditd-import")
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
