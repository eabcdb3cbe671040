package eventstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/seed"
	"github.com/creditd/creditd/internal/testnats"
)

// startUnsynced is testnats.Start without an fsync per message: these
// tests write thousands of messages only to read them back, and an fsync
// each would make filling the log most of their time.
func startUnsynced(t testing.TB, dir string) *testnats.Server {
	t.Helper()
	emb, err := eventstore.StartEmbedded(eventstore.EmbeddedOptions{StoreDir: dir, SyncInterval: time.Minute})
	if err != nil {
		t.Fatalf("start embedded nats: %v", err)
	}
	nc, err := emb.Connect("test")
	if err != nil {
		emb.Shutdown()
		t.Fatalf("connect: %v", err)
	}
	store, err := eventstore.Open(context.Background(), nc, eventstore.Config{})
	if err != nil {
		nc.Close()
		emb.Shutdown()
		t.Fatalf("open store: %v", err)
	}
	srv := &testnats.Server{Embedded: emb, Conn: nc, Store: store, Dir: dir}
	t.Cleanup(srv.Stop)
	return srv
}

// fill publishes perSubject messages of size bytes on each subject,
// interleaved, and returns them as a reader should get them back. It
// publishes asynchronously, without the fence: these tests are about
// reading.
func fill(t testing.TB, srv *testnats.Server, subjects []string, perSubject, size int) []eventstore.StoredMsg {
	t.Helper()
	js, err := jetstream.New(srv.Conn)
	if err != nil {
		t.Fatal(err)
	}
	type pending struct {
		ack jetstream.PubAckFuture
		msg eventstore.StoredMsg
	}
	var sent []pending
	for i := range perSubject {
		for _, subject := range subjects {
			data := bytes.Repeat([]byte{'.'}, size)
			copy(data, fmt.Sprintf("%s-%d-", subject, i))
			ack, err := js.PublishAsync(subject, data)
			if err != nil {
				t.Fatal(err)
			}
			sent = append(sent, pending{ack, eventstore.StoredMsg{Subject: subject, Data: data}})
		}
	}
	stored := make([]eventstore.StoredMsg, 0, len(sent))
	for _, p := range sent {
		select {
		case ack := <-p.ack.Ok():
			p.msg.Sequence = ack.Sequence
		case err := <-p.ack.Err():
			t.Fatal(err)
		case <-time.After(30 * time.Second):
			t.Fatal("no acknowledgement")
		}
		stored = append(stored, p.msg)
	}
	return stored
}

// want is the part of the log a read of subject (all subjects if empty)
// after afterSeq up to upTo must return.
func want(log []eventstore.StoredMsg, subject string, afterSeq, upTo uint64) []eventstore.StoredMsg {
	var out []eventstore.StoredMsg
	for _, m := range log {
		if m.Sequence > afterSeq && m.Sequence <= upTo && (subject == "" || m.Subject == subject) {
			out = append(out, m)
		}
	}
	return out
}

// collect returns a reader callback that appends to got and refuses a
// message out of order.
func collect(got *[]eventstore.StoredMsg) func(eventstore.StoredMsg) error {
	return func(m eventstore.StoredMsg) error {
		if n := len(*got); n > 0 && (*got)[n-1].Sequence >= m.Sequence {
			return fmt.Errorf("sequence %d after %d", m.Sequence, (*got)[n-1].Sequence)
		}
		*got = append(*got, m)
		return nil
	}
}

func sameMessages(t testing.TB, what string, got, want []eventstore.StoredMsg) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: read %d messages, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i].Sequence != want[i].Sequence || got[i].Subject != want[i].Subject || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("%s: message %d is %s #%d, want %s #%d", what, i, got[i].Subject, got[i].Sequence, want[i].Subject, want[i].Sequence)
		}
	}
}

// progressTotals sums the final progress reports of the reads made under
// the context it returns.
type progressTotals struct {
	mu                          sync.Mutex
	reads, retries, reopened, n int
}

func (p *progressTotals) watch(ctx context.Context) context.Context {
	return eventstore.WithReadProgress(ctx, func(r eventstore.ReadProgress) {
		if !r.Done {
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.reads++
		p.retries += r.Retries
		p.reopened += r.Reopened
		p.n += r.Messages
	})
}

// Not parallel: SetReadLimits changes package state.
func TestReadsDeliverEveryMessageOnceWhenFetchesComeBackEmpty(t *testing.T) {
	// A few microseconds are too short for most fetches to bring anything
	// (the race detector slows the server enough that a little longer
	// does), and 4 KiB is a handful of these messages: the reader goes
	// through thousands of empty and short fetches.
	fetchWait := time.Microsecond
	if raceEnabled {
		fetchWait = 20 * time.Microsecond
	}
	eventstore.SetReadLimits(t, fetchWait, 4<<10)
	srv := startUnsynced(t, t.TempDir())
	var totals progressTotals
	ctx := totals.watch(t.Context())
	subjects := []string{eventstore.PartitionSubject(0), eventstore.PartitionSubject(1), eventstore.PartitionSubject(2), eventstore.RegistrySubject}
	log := fill(t, srv, subjects, 600, 200)
	last := log[len(log)-1].Sequence
	for _, subject := range subjects {
		var got []eventstore.StoredMsg
		if err := srv.Store.ReadSubject(ctx, subject, 0, collect(&got)); err != nil {
			t.Fatalf("read %s: %v", subject, err)
		}
		sameMessages(t, subject, got, want(log, subject, 0, last))
	}
	var got []eventstore.StoredMsg
	if err := srv.Store.ReadSubject(ctx, subjects[0], last/2, collect(&got)); err != nil {
		t.Fatalf("read %s after %d: %v", subjects[0], last/2, err)
	}
	sameMessages(t, fmt.Sprintf("%s after %d", subjects[0], last/2), got, want(log, subjects[0], last/2, last))
	for _, span := range [][2]uint64{{0, last}, {last / 2, last - 100}} {
		var got []eventstore.StoredMsg
		if err := srv.Store.ReadAll(ctx, span[0], span[1], collect(&got)); err != nil {
			t.Fatalf("read all %v: %v", span, err)
		}
		sameMessages(t, fmt.Sprintf("all %v", span), got, want(log, "", span[0], span[1]))
	}
	t.Logf("%d reads, %d messages, %d fetches empty or failed", totals.reads, totals.n, totals.retries)
	if totals.retries < totals.n/10 {
		t.Fatal("few fetches came back empty: the test tests little")
	}
}

// Not parallel: SetReadLimits changes package state.
func TestReadSurvivesItsConsumerBeingDeleted(t *testing.T) {
	// Small fetches, so that the read goes on well after each deletion.
	eventstore.SetReadLimits(t, 2*time.Second, 16<<10)
	srv := startUnsynced(t, t.TempDir())
	var totals progressTotals
	ctx := totals.watch(t.Context())
	subject := eventstore.PartitionSubject(3)
	log := fill(t, srv, []string{subject, eventstore.PartitionSubject(0)}, 2000, 300)
	js, err := jetstream.New(srv.Conn)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, eventstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	deleteConsumers := func() error {
		names := stream.ConsumerNames(ctx)
		deleted := 0
		for name := range names.Name() {
			if err := stream.DeleteConsumer(ctx, name); err != nil {
				return err
			}
			deleted++
		}
		if names.Err() != nil || deleted == 0 {
			return fmt.Errorf("%d consumers deleted: %v", deleted, names.Err())
		}
		return nil
	}
	read := func(read func(fn func(eventstore.StoredMsg) error) error) []eventstore.StoredMsg {
		var got []eventstore.StoredMsg
		appendTo := collect(&got)
		err := read(func(m eventstore.StoredMsg) error {
			if n := len(got); n == 300 || n == 1200 {
				if err := deleteConsumers(); err != nil {
					return err
				}
			}
			return appendTo(m)
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	last := log[len(log)-1].Sequence
	got := read(func(fn func(eventstore.StoredMsg) error) error { return srv.Store.ReadSubject(ctx, subject, 0, fn) })
	sameMessages(t, "subject", got, want(log, subject, 0, last))
	got = read(func(fn func(eventstore.StoredMsg) error) error { return srv.Store.ReadAll(ctx, 0, last, fn) })
	sameMessages(t, "all", got, want(log, "", 0, last))
	if totals.reopened < 4 {
		t.Fatalf("%d consumers made again after 4 deletions", totals.reopened)
	}
}

// Not parallel: SetReadLimits changes package state.
func TestReadStopsPromptlyWhenItsContextEnds(t *testing.T) {
	// A fetch that waits a minute: the read must not wait it out.
	eventstore.SetReadLimits(t, time.Minute, 16<<10)
	srv := startUnsynced(t, t.TempDir())
	subject := eventstore.PartitionSubject(1)
	log := fill(t, srv, []string{subject}, 500, 300)
	last := log[len(log)-1].Sequence
	for _, tc := range []struct {
		name string
		read func(ctx context.Context, cancel context.CancelFunc) error
	}{
		{"cancelled_between_messages", func(ctx context.Context, cancel context.CancelFunc) error {
			n := 0
			return srv.Store.ReadSubject(ctx, subject, 0, func(eventstore.StoredMsg) error {
				if n++; n == 100 {
					cancel()
				}
				if n > 100 {
					return errors.New("a message after the context ended")
				}
				return nil
			})
		}},
		{"cancelled_while_a_fetch_waits", func(ctx context.Context, cancel context.CancelFunc) error {
			// Beyond the log's end, the read waits on a fetch for more.
			time.AfterFunc(300*time.Millisecond, cancel)
			return srv.Store.ReadAll(ctx, 0, last+1000, func(eventstore.StoredMsg) error { return nil })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			began := time.Now()
			err := tc.read(ctx, cancel)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("read: %v, want context.Canceled", err)
			}
			if took := time.Since(began); took > 5*time.Second {
				t.Fatalf("read returned %s after it began", took)
			}
		})
	}
}

// A read whose connection is closed ends at once, unavailable: a closed
// connection never comes back, and retrying on it until the context ends
// held an engine's close (and a crashed instance's partitions, in
// TestPartitionsMoveOnStopAndCrash) for the writers' 10 s append timeout.
func TestReadEndsWhenItsConnectionCloses(t *testing.T) {
	// A fetch that waits a minute: the read must not wait it out.
	eventstore.SetReadLimits(t, time.Minute, 16<<10)
	srv := startUnsynced(t, t.TempDir())
	subject := eventstore.PartitionSubject(1)
	log := fill(t, srv, []string{subject}, 50, 300)
	last := log[len(log)-1].Sequence
	for _, tc := range []struct {
		name string
		read func(ctx context.Context, store *eventstore.Store, closeConn func()) error
	}{
		{"closed_between_messages", func(ctx context.Context, store *eventstore.Store, closeConn func()) error {
			n := 0
			return store.ReadAll(ctx, 0, last, func(eventstore.StoredMsg) error {
				if n++; n == 1 {
					closeConn()
				}
				return nil
			})
		}},
		{"closed_while_a_fetch_waits", func(ctx context.Context, store *eventstore.Store, closeConn func()) error {
			// Beyond the log's end, the read waits on a fetch for more.
			time.AfterFunc(300*time.Millisecond, closeConn)
			return store.ReadAll(ctx, 0, last+1000, func(eventstore.StoredMsg) error { return nil })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := srv.Embedded.Connect("reader")
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			store, err := eventstore.Open(t.Context(), nc, eventstore.Config{})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 8*time.Second)
			defer cancel()
			err = tc.read(ctx, store, nc.Close)
			if !errors.Is(err, eventstore.ErrUnavailable) || ctx.Err() != nil {
				t.Fatalf("read on a closed connection: %v (context: %v), want unavailable before the context ends", err, ctx.Err())
			}
		})
	}
}

// Not parallel: SetReadLimits changes package state.
func TestReadsMayReadTheStoreFromTheirCallbacks(t *testing.T) {
	// Small fetches, so that every read has several; more reads at once
	// than fetches may be in flight.
	eventstore.SetReadLimits(t, 2*time.Second, 8<<10)
	srv := startUnsynced(t, t.TempDir())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const reads = 8
	var subjects []string
	for p := range reads {
		subjects = append(subjects, eventstore.PartitionSubject(p))
	}
	fill(t, srv, subjects, 200, 300)
	errs := make([]error, reads)
	var reading sync.WaitGroup
	for i, subject := range subjects {
		reading.Go(func() {
			n := 0
			errs[i] = srv.Store.ReadSubject(ctx, subject, 0, func(eventstore.StoredMsg) error {
				if n++; n%50 != 0 {
					return nil
				}
				// As a catch-up reads the quarantine records when it meets
				// a foreign message: a read inside a read.
				nested := 0
				err := srv.Store.ReadSubject(ctx, subjects[(i+1)%reads], 0, func(eventstore.StoredMsg) error { nested++; return nil })
				if err == nil && nested != 200 {
					err = fmt.Errorf("nested read got %d messages", nested)
				}
				return err
			})
			if errs[i] == nil && n != 200 {
				errs[i] = fmt.Errorf("read %d messages of %s", n, subject)
			}
		})
	}
	reading.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// Not parallel: SetReadLimits changes package state.
func TestReadBoundsFetchesByBytesAndStillReadsLargeMessages(t *testing.T) {
	srv := startUnsynced(t, t.TempDir())
	var totals progressTotals
	ctx := totals.watch(t.Context())
	subjects := []string{eventstore.PartitionSubject(2), eventstore.PartitionSubject(3)}
	// Near 1 MiB each: more than one fits the bound, and a bound below one
	// message must still let each through.
	log := fill(t, srv, subjects, 10, 1<<20-512)
	last := log[len(log)-1].Sequence
	for _, tc := range []struct {
		name       string
		fetchBytes int
	}{
		{"default_bound", 0},
		{"bound_of_three_messages", 3 << 20},
		{"bound_below_one_message", 256 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fetchBytes > 0 {
				eventstore.SetReadLimits(t, 2*time.Second, tc.fetchBytes)
			}
			for _, subject := range subjects {
				var got []eventstore.StoredMsg
				if err := srv.Store.ReadSubject(ctx, subject, 0, collect(&got)); err != nil {
					t.Fatal(err)
				}
				sameMessages(t, subject, got, want(log, subject, 0, last))
			}
			var got []eventstore.StoredMsg
			if err := srv.Store.ReadAll(ctx, 0, last, collect(&got)); err != nil {
				t.Fatal(err)
			}
			sameMessages(t, "all", got, want(log, "", 0, last))
		})
	}
}

// TestStartUpsReadTheWholeLogEveryTime starts the store again and again on
// one log and reads it as creditd's start-up does: the registry, then every
// partition at once, decoding each commit and checking its link. Set
// CREDITD_RESTART_EVENTS to run it on a larger log, for instance
//
//	CREDITD_RESTART_EVENTS=1000000 go test -count=1 -run TestStartUpsReadTheWholeLogEveryTime -v -timeout 60m ./eventstore/
func TestStartUpsReadTheWholeLogEveryTime(t *testing.T) {
	events := 40_000
	if raceEnabled {
		events = 10_000
	}
	if text := os.Getenv("CREDITD_RESTART_EVENTS"); text != "" {
		var err error
		if events, err = strconv.Atoi(text); err != nil {
			t.Fatalf("CREDITD_RESTART_EVENTS: %v", err)
		}
	}
	const startUps = 20
	dir := t.TempDir()
	srv := startUnsynced(t, dir)
	partitions := srv.Store.Partitions()
	// One tenant per partition, each with its share of the events.
	began := time.Now()
	commits := make([]int, partitions)
	var filling sync.WaitGroup
	fillErrs := make([]error, partitions)
	for p := range partitions {
		filling.Go(func() {
			shape := seed.Shape{TenantID: int64(partitions + p), Events: events / partitions, Days: max(1, events/partitions/13_700),
				End: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), EventsPerCommit: 100, Seed: uint64(p + 1)}
			var last uint64
			fillErrs[p] = seed.Commits(shape, func(seq uint64, data []byte) error {
				subject := eventstore.PartitionSubject(p)
				expected := last
				if seq == 1 {
					subject, expected = eventstore.RegistrySubject, 0
				}
				for {
					got, err := srv.Store.Append(context.Background(), subject, expected, data)
					if seq == 1 && errors.Is(err, eventstore.ErrConflict) {
						// Tenants share the registry: append after whoever came first.
						if expected, err = srv.Store.LastSeq(context.Background(), subject); err == nil {
							continue
						}
					}
					if err != nil {
						return err
					}
					if seq > 1 {
						last = got
						commits[p]++
					}
					return nil
				}
			})
		})
	}
	filling.Wait()
	if err := errors.Join(fillErrs...); err != nil {
		t.Fatal(err)
	}
	t.Logf("log of %d events in %v commits written in %s", events, commits, time.Since(began).Round(time.Millisecond))
	srv.Stop()

	for i := range startUps {
		began := time.Now()
		srv := startUnsynced(t, dir)
		started := time.Since(began)
		var totals progressTotals
		ctx := totals.watch(t.Context())
		tenants := 0
		if err := srv.Store.ReadSubject(ctx, eventstore.RegistrySubject, 0, func(eventstore.StoredMsg) error { tenants++; return nil }); err != nil {
			t.Fatalf("start-up %d: registry: %v", i+1, err)
		}
		if tenants != partitions {
			t.Fatalf("start-up %d: %d tenants, want %d", i+1, tenants, partitions)
		}
		readErrs := make([]error, partitions)
		var reading sync.WaitGroup
		for p := range partitions {
			reading.Go(func() {
				n, prev := 0, ""
				readErrs[p] = srv.Store.ReadSubject(ctx, eventstore.PartitionSubject(p), 0, func(m eventstore.StoredMsg) error {
					commit, err := eventstore.DecodeCommit(m.Data)
					if err != nil {
						return err
					}
					if n > 0 && commit.Prev != prev {
						return fmt.Errorf("commit %d at %d does not link to the one before", n, m.Sequence)
					}
					n, prev = n+1, eventstore.Hash(m.Data)
					return nil
				})
				if readErrs[p] == nil && n != commits[p] {
					readErrs[p] = fmt.Errorf("read %d commits, want %d", n, commits[p])
				}
			})
		}
		reading.Wait()
		if err := errors.Join(readErrs...); err != nil {
			t.Fatalf("start-up %d: %v", i+1, err)
		}
		t.Logf("start-up %d: server up in %s, log read in %s (%d empty or failed fetches, %d consumers made again)",
			i+1, started.Round(time.Millisecond), (time.Since(began) - started).Round(time.Millisecond), totals.retries, totals.reopened)
		// All reads share the connection: fetching more at once than the
		// server lets wait for it gets it cut off as a slow consumer.
		if n := srv.Conn.Stats().Reconnects; n > 0 {
			t.Fatalf("start-up %d: the connection was cut off %d times", i+1, n)
		}
		srv.Stop()
	}
}
