package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/ingest"
)

// registryReads is the real store, counting reads of the registry subject.
type registryReads struct {
	*eventstore.Store
	reads atomic.Int64
}

func (s *registryReads) ReadSubject(ctx context.Context, subject string, afterSeq uint64, fn func(eventstore.StoredMsg) error) error {
	if subject == eventstore.RegistrySubject {
		s.reads.Add(1)
	}
	return s.Store.ReadSubject(ctx, subject, afterSeq, fn)
}

// A producer may publish to credits.usage.<any id>: messages for many
// distinct tenants that do not exist are dead-lettered after their
// redeliveries, read the registry at most once a second between them all,
// and a real tenant's usage is recorded meanwhile.
func TestUnknownTenantsOverNATSReadTheRegistryAtMostOnceASecond(t *testing.T) {
	t.Parallel()
	const unknowns, known = 200, 20
	counted := &registryReads{}
	e := startOn(t, func(s *eventstore.Store) commands.FullStore { counted.Store = s; return counted })
	tenant := e.tenant(t, "1000")
	before := counted.reads.Load()
	started := time.Now()
	for i := range unknowns {
		e.publish(t, fmt.Sprintf("%s%d", ingest.SubjectPrefix, 1_000_000+i), map[string]any{"id": fmt.Sprintf("u%d", i), "amount": "1"})
	}
	for i := range known {
		e.publish(t, fmt.Sprintf("%s%d", ingest.SubjectPrefix, tenant), map[string]any{"id": fmt.Sprintf("k%d", i), "amount": "1"})
	}
	eventually(t, "the known tenant's usage recorded", func() bool { return e.used(t, tenant).Equal(decimal.NewFromInt(known)) })
	dead, err := e.js.Stream(context.Background(), ingest.DeadStreamName)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "every unknown tenant's message dead-lettered", func() bool {
		info, err := dead.Info(context.Background())
		return err == nil && info.State.Msgs == unknowns
	})
	elapsed := time.Since(started)
	for payload, reason := range e.deadLetters(t) {
		if !strings.Contains(reason, "unknown tenant") {
			t.Errorf("dead letter %s: reason %q, want unknown tenant", payload, reason)
		}
	}
	// At most one read begins per second; a message is retried after a
	// second, so the reads seen are few whatever the number of ids.
	allowed := 1 + int64(elapsed/time.Second)
	got := counted.reads.Load() - before
	t.Logf("%d messages for unknown tenants, %d registry reads in %s", unknowns, got, elapsed)
	if got > allowed {
		t.Fatalf("%d messages for unknown tenants read the registry %d times in %s, want at most %d", unknowns, got, elapsed, allowed)
	}
}
