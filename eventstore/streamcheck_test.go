package eventstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creditd/creditd/eventstore"
)

// unsafeLogStreams are pre-existing CREDITS streams that can lose or
// refuse to keep an acknowledged commit, each with the setting the refusal
// must name and the replicas creditd asks for.
var unsafeLogStreams = []struct {
	name     string
	setting  string
	replicas int
	change   func(*jetstream.StreamConfig)
}{
	{"memory_storage", "storage", 1, func(c *jetstream.StreamConfig) { c.Storage = jetstream.MemoryStorage }},
	{"fewer_replicas_than_asked", "replicas", 3, func(c *jetstream.StreamConfig) {}},
	{"deletes_allowed", "deny_delete", 1, func(c *jetstream.StreamConfig) { c.DenyDelete = false }},
	{"purges_allowed", "deny_purge", 1, func(c *jetstream.StreamConfig) { c.DenyPurge = false }},
	{"a_message_limit", "max_msgs", 1, func(c *jetstream.StreamConfig) { c.MaxMsgs = 1000 }},
	{"a_byte_limit", "max_bytes", 1, func(c *jetstream.StreamConfig) { c.MaxBytes = 1 << 30 }},
	{"an_age_limit", "max_age", 1, func(c *jetstream.StreamConfig) { c.MaxAge = 365 * 24 * time.Hour }},
	{"a_per_subject_limit", "max_msgs_per_subject", 1, func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject = 2 }},
	{"async_persist", "persist_mode", 1, func(c *jetstream.StreamConfig) { c.PersistMode = jetstream.AsyncPersistMode }},
	{"per_message_ttls_allowed", "allow_msg_ttl", 1, func(c *jetstream.StreamConfig) { c.AllowMsgTTL = true }},
	{"interest_retention", "retention", 1, func(c *jetstream.StreamConfig) { c.Retention = jetstream.InterestPolicy }},
}

// safeLogStream is the stream as creditd creates it.
func safeLogStream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name: eventstore.StreamName, Subjects: []string{"credits.events.>", eventstore.RegistrySubject, eventstore.CheckpointSubject, eventstore.QuarantineSubject},
		Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy, Replicas: 1, MaxMsgSize: eventstore.MaxPayloadBytes,
		DenyDelete: true, DenyPurge: true, AllowDirect: true,
		Metadata: map[string]string{"creditd_partitions": "4"},
	}
}

// TestOpenRefusesALogStreamThatCanLoseEvents creates, on a real embedded
// server, a CREDITS stream with one unsafe setting, as an operator might
// have, and opens the store on it: each is refused with an error naming the
// stream and the setting. A stream with at most 2 messages per subject, in
// memory, with 1 replica where 3 were asked, was once accepted, and
// acknowledged events were lost.
func TestOpenRefusesALogStreamThatCanLoseEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range unsafeLogStreams {
		t.Run("refuses_"+tc.name, func(t *testing.T) {
			t.Parallel()
			nc := rawServer(t, eventstore.EmbeddedOptions{})
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			cfg := safeLogStream()
			tc.change(&cfg)
			if _, err := js.CreateStream(context.Background(), cfg); err != nil {
				t.Fatalf("create the unsafe stream: %v", err)
			}
			_, err = eventstore.Open(context.Background(), nc, eventstore.Config{Replicas: tc.replicas})
			if err == nil {
				t.Fatalf("Open accepted a stream with an unsafe %s", tc.setting)
			}
			if !strings.Contains(err.Error(), eventstore.StreamName) || !strings.Contains(err.Error(), tc.setting) {
				t.Fatalf("the refusal does not name the stream and %s: %v", tc.setting, err)
			}
		})
	}
	t.Run("accepts_the_stream_it_creates", func(t *testing.T) {
		t.Parallel()
		nc := rawServer(t, eventstore.EmbeddedOptions{})
		if _, err := eventstore.Open(context.Background(), nc, eventstore.Config{}); err != nil {
			t.Fatal(err)
		}
		// And again, now that it exists.
		if _, err := eventstore.Open(context.Background(), nc, eventstore.Config{Replicas: 1}); err != nil {
			t.Fatal(err)
		}
	})
}

// rawServer starts an embedded server without opening the store on it.
func rawServer(t *testing.T, opts eventstore.EmbeddedOptions) *nats.Conn {
	t.Helper()
	opts.StoreDir = t.TempDir()
	emb, err := eventstore.StartEmbedded(opts)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := emb.Connect("test")
	if err != nil {
		emb.Shutdown()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		nc.Close()
		emb.Shutdown()
	})
	return nc
}

func TestCheckStream(t *testing.T) {
	t.Parallel()
	log := eventstore.Durability{Replicas: 1, AppendOnly: true}
	for _, tc := range unsafeLogStreams {
		t.Run("names_"+tc.setting, func(t *testing.T) {
			t.Parallel()
			cfg := safeLogStream()
			tc.change(&cfg)
			want := log
			want.Replicas = tc.replicas
			err := eventstore.CheckStream(cfg, want)
			if err == nil || !strings.Contains(err.Error(), "stream CREDITS: "+tc.setting+" ") {
				t.Fatalf("CheckStream = %v, want a problem with %s", err, tc.setting)
			}
			if n := len(strings.Split(err.Error(), "\n")); n != 1 {
				t.Fatalf("one unsafe setting, %d problems: %v", n, err)
			}
		})
	}
	t.Run("accepts_the_log_as_creditd_creates_it", func(t *testing.T) {
		t.Parallel()
		if err := eventstore.CheckStream(safeLogStream(), log); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("accepts_more_replicas_than_asked", func(t *testing.T) {
		t.Parallel()
		cfg := safeLogStream()
		cfg.Replicas = 5
		if err := eventstore.CheckStream(cfg, eventstore.Durability{Replicas: 3, AppendOnly: true}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("reads_limits_of_minus_one_and_zero_as_none", func(t *testing.T) {
		t.Parallel()
		cfg := safeLogStream()
		cfg.MaxMsgs, cfg.MaxBytes, cfg.MaxMsgsPerSubject = -1, -1, -1
		cfg.Replicas = 0
		if err := eventstore.CheckStream(cfg, log); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("lets_a_work_queue_remove_what_is_acknowledged", func(t *testing.T) {
		t.Parallel()
		cfg := safeLogStream()
		cfg.Retention, cfg.DenyDelete, cfg.DenyPurge = jetstream.WorkQueuePolicy, false, false
		if err := eventstore.CheckStream(cfg, eventstore.Durability{Replicas: 1}); err != nil {
			t.Fatal(err)
		}
		cfg.MaxAge = time.Hour
		if err := eventstore.CheckStream(cfg, eventstore.Durability{Replicas: 1}); err == nil || !strings.Contains(err.Error(), "max_age") {
			t.Fatalf("a work queue whose messages expire: %v", err)
		}
	})
	t.Run("names_every_unsafe_setting_at_once", func(t *testing.T) {
		t.Parallel()
		cfg := safeLogStream()
		cfg.Storage, cfg.MaxMsgsPerSubject, cfg.DenyPurge = jetstream.MemoryStorage, 2, false
		err := eventstore.CheckStream(cfg, eventstore.Durability{Replicas: 3, AppendOnly: true})
		for _, setting := range []string{"storage", "replicas", "max_msgs_per_subject", "deny_purge"} {
			if err == nil || !strings.Contains(err.Error(), setting) {
				t.Fatalf("%s not named: %v", setting, err)
			}
		}
	})
}

func TestAutoReplicas(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		servers, replicas int
		short             bool
	}{{1, 1, true}, {2, 2, true}, {3, 3, false}, {5, 3, false}, {0, 1, true}} {
		replicas, short := eventstore.AutoReplicas(tc.servers)
		if replicas != tc.replicas || short != tc.short {
			t.Errorf("AutoReplicas(%d) = %d, %t; want %d, %t", tc.servers, replicas, short, tc.replicas, tc.short)
		}
	}
}
