package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/testnats"
)

func TestAppendIsFencedOnTheSubject(t *testing.T) {
	t.Parallel()
	s := testnats.Start(t, t.TempDir()).Store
	ctx := context.Background()
	subject := eventstore.PartitionSubject(0)

	first, err := s.Append(ctx, subject, 0, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	// Another subject moves the stream, not this subject's fence.
	if _, err := s.Append(ctx, eventstore.PartitionSubject(1), 0, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, subject, 0, []byte("b")); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("append on a stale fence: %v, want ErrConflict", err)
	}
	second, err := s.Append(ctx, subject, first, []byte("b"))
	if err != nil {
		t.Fatal(err)
	}
	if last, err := s.LastSeq(ctx, subject); err != nil || last != second {
		t.Fatalf("LastSeq = %d, %v; want %d", last, err, second)
	}
}

func TestReadSubjectReturnsOnlyThatSubjectInOrder(t *testing.T) {
	t.Parallel()
	s := testnats.Start(t, t.TempDir()).Store
	ctx := context.Background()
	// More messages than the direct-read fast path, so the consumer path
	// runs too.
	const n = 40
	var last [2]uint64
	for i := range n {
		for p := range 2 {
			seq, err := s.Append(ctx, eventstore.PartitionSubject(p), last[p], fmt.Appendf(nil, "%d-%d", p, i))
			if err != nil {
				t.Fatal(err)
			}
			last[p] = seq
		}
	}
	for _, after := range []uint64{0, 7, 60} {
		var got []string
		err := s.ReadSubject(ctx, eventstore.PartitionSubject(1), after, func(m eventstore.StoredMsg) error {
			if m.Sequence <= after {
				t.Fatalf("read %d, after %d", m.Sequence, after)
			}
			got = append(got, string(m.Data))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		skipped := int(min(after, 2*n)) / 2 // partition 1 holds every even sequence
		if len(got) != n-skipped {
			t.Fatalf("after %d: read %d messages, want %d", after, len(got), n-skipped)
		}
		for i, data := range got {
			if want := fmt.Sprintf("1-%d", i+skipped); data != want {
				t.Fatalf("after %d: message %d = %q, want %q", after, i, data, want)
			}
		}
	}
}

func TestHistoryCannotBeDeletedOrPurged(t *testing.T) {
	t.Parallel()
	srv := testnats.Start(t, t.TempDir())
	ctx := context.Background()
	seq, err := srv.Store.Append(ctx, eventstore.RegistrySubject, 0, []byte("tenant"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(srv.Conn)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, eventstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.DeleteMsg(ctx, seq); err == nil {
		t.Fatal("a message was deleted")
	}
	if err := stream.Purge(ctx); err == nil {
		t.Fatal("the stream was purged")
	}
	if _, err := srv.Store.Load(ctx, seq); err != nil {
		t.Fatalf("message gone: %v", err)
	}
}

func TestPartitionCountIsReadFromTheStream(t *testing.T) {
	t.Parallel()
	srv := testnats.Start(t, t.TempDir())
	// The stream exists with the default count; asking for another count
	// later must not change how tenants map.
	again, err := eventstore.Open(context.Background(), srv.Conn, eventstore.Config{Partitions: 9})
	if err != nil {
		t.Fatal(err)
	}
	if again.Partitions() != eventstore.PartitionsDefault {
		t.Fatalf("partitions = %d, want the stored %d", again.Partitions(), eventstore.PartitionsDefault)
	}
	if again.PartitionOf(6) != 6%eventstore.PartitionsDefault {
		t.Fatalf("PartitionOf(6) = %d", again.PartitionOf(6))
	}
}

func TestCommitRoundTripAndHash(t *testing.T) {
	t.Parallel()
	data, err := eventstore.EncodeCommit(eventstore.Commit{Prev: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := eventstore.DecodeCommit(data)
	if err != nil || c.Prev != "abc" || c.Version != eventstore.CommitVersion {
		t.Fatalf("round trip: %+v %v", c, err)
	}
	if eventstore.Hash(data) == eventstore.Hash(append(data, ' ')) {
		t.Fatal("hash ignores a byte")
	}
	if _, err := eventstore.DecodeCommit([]byte(`{"v":99,"events":[]}`)); err == nil {
		t.Fatal("decoded an unknown version")
	}
}
