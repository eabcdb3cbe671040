// Command creditd is the credit accounting engine: `creditd serve` runs it.
package main

import (
	"fmt"
	"os"
)

const usageText = `creditd: event-sourced credit accounting

Usage:
  creditd serve [flags]     run the server (creditd serve --help lists the flags)
  creditd rebuild [flags]   rebuild the read models from the event log
  creditd bench [flags]     measure throughput on this machine (in a temp dir)
  creditd bench generate [flags]
                            fill an empty data dir with a long log, to measure starts on it
  creditd verify [flags]    recompute every number from the log and compare the read models
  creditd replay [flags]    rebuild the read models as they stood at an instant or position, into --out
  creditd export [flags]    write a tenant's events, ledger or usage as NDJSON or CSV
  creditd import [flags]    append an NDJSON events export to an empty creditd
  creditd quarantine [flags] set aside one message creditd did not write, with an audit record
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usageText)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "rebuild":
		err = rebuild(os.Args[2:])
	case "bench":
		err = bench(os.Args[2:])
	case "verify":
		err = verify(os.Args[2:])
	case "replay":
		err = replay(os.Args[2:])
	case "export":
		err = export(os.Args[2:])
	case "import":
		err = importEvents(os.Args[2:])
	case "quarantine":
		err = quarantine(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usageText)
		return
	default:
		fmt.Fprintf(os.Stderr, "creditd: unknown command %q\n\n%s", os.Args[1], usageText)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "creditd:", err)
		os.Exit(1)
	}
}
