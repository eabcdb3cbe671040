package eventstore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// A stream that holds acknowledged data must keep it. creditd answers a
// write once the server acknowledged its commit, so a stream setting under
// which the server may drop, expire, or never durably store an
// acknowledged message turns that answer into a lie. The streams creditd
// creates are safe; one created or edited by hand may not be, and creditd
// refuses to use it, naming each setting to change, rather than lose
// events without a word. (A stream with memory storage, one replica where
// three were asked and two messages per subject was once accepted, and
// acknowledged events were lost.)
//
// The dead-letter stream (ingest) is not checked: it holds copies of
// messages that could not be recorded, and its limits are deliberate.

// Durability is what a stream's settings must guarantee.
type Durability struct {
	// Replicas is the least replica count; 0 and 1 accept any.
	Replicas int
	// AppendOnly marks the log itself: no message may ever leave it,
	// neither through the API (delete; purge, and roll-ups, which the
	// server allows only where purges are allowed), nor by a per-message
	// TTL, nor by a retention policy other than limits. A work queue is
	// not append-only: acknowledging a message removes it.
	AppendOnly bool
}

// CheckStream returns every setting of cfg that breaks want, joined, each
// naming the stream and the setting as `nats stream info --json` spells it;
// nil when there is none. It reads the configuration only.
//
// max_msg_size is not checked: the server refuses a message over it before
// acknowledging it, so it can make a write fail but never lose one, and
// Store.MaxCommitBytes keeps commits under it.
func CheckStream(cfg jetstream.StreamConfig, want Durability) error {
	var problems []error
	bad := func(setting, format string, args ...any) {
		problems = append(problems, fmt.Errorf("stream %s: %s %s", cfg.Name, setting, fmt.Sprintf(format, args...)))
	}
	if cfg.Storage != jetstream.FileStorage {
		bad("storage", "is %s, want file: a restart of the server loses every message held in memory "+
			"(storage cannot change in place: copy the messages to a new stream with file storage)", strings.ToLower(cfg.Storage.String()))
	}
	// The server stores 0 as 1.
	if replicas := max(cfg.Replicas, 1); replicas < want.Replicas {
		bad("replicas", "is %d, but %d were asked: fewer copies survive fewer lost servers "+
			"(raise it with `nats stream edit %s --replicas %d`, or ask for fewer with --replicas)", replicas, want.Replicas, cfg.Name, want.Replicas)
	}
	// Limits: 0 and -1 both mean none. Whatever the discard policy, a
	// stream that reaches a limit either removes its oldest messages or
	// refuses every write from then on; the log is meant to grow for ever.
	if cfg.MaxMsgs > 0 {
		bad("max_msgs", "is %d, want -1 (no limit): past it the server removes the oldest messages or refuses new ones", cfg.MaxMsgs)
	}
	if cfg.MaxBytes > 0 {
		bad("max_bytes", "is %d, want -1 (no limit): past it the server removes the oldest messages or refuses new ones", cfg.MaxBytes)
	}
	if cfg.MaxAge > 0 {
		bad("max_age", "is %s, want 0 (no limit): the server removes messages older than it", cfg.MaxAge)
	}
	if cfg.MaxMsgsPerSubject > 0 {
		bad("max_msgs_per_subject", "is %d, want -1 (no limit): the server keeps only that many messages of a subject, and a subject holds a partition's whole history", cfg.MaxMsgsPerSubject)
	}
	// nats-server 2.12 added persist_mode and reports it in the stream's
	// configuration; an older server omits it, which reads as the default.
	if cfg.PersistMode == jetstream.AsyncPersistMode {
		bad("persist_mode", "is async, want default: the server acknowledges a write before storing it "+
			"(persist mode cannot change in place: copy the messages to a new stream)")
	}
	if want.AppendOnly {
		if cfg.Retention != jetstream.LimitsPolicy {
			bad("retention", "is %s, want limits: under interest or work-queue retention the server removes messages once consumed", strings.ToLower(cfg.Retention.String()))
		}
		if !cfg.DenyDelete {
			bad("deny_delete", "is false, want true: a message of the log could be deleted (`nats stream edit %s --deny-delete`)", cfg.Name)
		}
		if !cfg.DenyPurge {
			bad("deny_purge", "is false, want true: the log could be purged or rolled up (`nats stream edit %s --deny-purge`)", cfg.Name)
		}
		if cfg.AllowMsgTTL {
			bad("allow_msg_ttl", "is true, want false: a message published with a TTL header would expire")
		}
	}
	return errors.Join(problems...)
}
