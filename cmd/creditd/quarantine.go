package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"github.com/creditd/creditd/eventstore"
)

// errNotForeign: the named message is a commit creditd wrote.
var errNotForeign = errors.New("the message decodes and links to the commit before it: creditd wrote it, and it is not set aside")

// quarantine sets one foreign message aside: the audited way out when a
// message creditd did not write stops the readers of its subject. The
// stream denies deletes, so the message stays in the log; a record on
// credits.quarantine names it, and every reader then passes over it.
func quarantine(args []string) error {
	fs := flag.NewFlagSet("quarantine", flag.ContinueOnError)
	logAt := addLogFlags(fs, "data directory (creditd serve must be stopped)")
	subject := fs.String("subject", "", "the message's subject, as the error names it (required)")
	sequence := fs.Uint64("sequence", 0, "the message's stream sequence (required)")
	sha := fs.String("sha256", "", "the SHA-256 of the message's bytes, as the error names it (required): a typo cannot set another message aside")
	reason := fs.String("reason", "", "why, for the audit record (required)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if !eventstore.IsCommitSubject(*subject) || *sequence == 0 || *sha == "" || *reason == "" {
		return errors.New("quarantine: --subject (credits.registry or credits.events.<n>), --sequence, --sha256 and --reason are required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	store, closeLog, err := logAt.open(ctx, "creditd-quarantine", true)
	if err != nil {
		return err
	}
	defer closeLog()
	if err := checkForeign(ctx, store, *subject, *sequence); err != nil {
		return fmt.Errorf("quarantine: %s at %d: %w", *subject, *sequence, err)
	}
	position, err := store.Quarantine(ctx, eventstore.Quarantine{Subject: *subject, Sequence: *sequence, SHA256: *sha, Reason: *reason, At: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("quarantine: %w", err)
	}
	fmt.Printf("set aside %s at %d (record at position %d on %s)\n", *subject, *sequence, position, eventstore.QuarantineSubject)
	return nil
}

// checkForeign walks the subject's chain up to seq, passing over messages
// already set aside, and fails unless the message at seq does not decode
// or does not link.
func checkForeign(ctx context.Context, store *eventstore.Store, subject string, seq uint64) error {
	quarantined, err := store.Quarantined(ctx)
	if err != nil {
		return err
	}
	var lastHash string
	errFound := errors.New("found")
	var verdict error
	err = store.ReadSubject(ctx, subject, 0, func(m eventstore.StoredMsg) error {
		if m.Sequence > seq {
			verdict = errors.New("no message with that sequence on that subject")
			return errFound
		}
		if quarantined.Holds(m) {
			if m.Sequence == seq {
				verdict = errors.New("already set aside")
				return errFound
			}
			return nil
		}
		commit, decodeErr := eventstore.DecodeCommit(m.Data)
		if m.Sequence == seq {
			if decodeErr == nil && commit.Prev == lastHash {
				verdict = errNotForeign
			}
			return errFound
		}
		lastHash = eventstore.Hash(m.Data)
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return err
	}
	if err == nil {
		return errors.New("no message with that sequence on that subject")
	}
	return verdict
}
