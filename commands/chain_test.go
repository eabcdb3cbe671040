package commands

import (
	"context"
	"errors"
	"testing"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// A commit that does not link to the one before it means the log was
// altered outside creditd: the engine refuses to start on it.
func TestLoadRefusesABrokenChain(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tenant := h.tenant()
	res := h.grant(tenant, "g1", "10", nil)
	subject := eventstore.PartitionSubject(h.server.Store.PartitionOf(tenant))
	forged, err := eventstore.EncodeCommit(eventstore.Commit{Prev: "0000", Events: []domain.Envelope{
		{TenantID: tenant, CreditType: domain.DefaultCreditType, Event: domain.CreditsGranted{GrantID: "forged", Amount: dec("1000000"), Source: domain.SourceManual}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.server.Store.Append(context.Background(), subject, res.Position, forged); err != nil {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), h.server.Store, Options{Clock: h.clock.Now}); !errors.Is(err, ErrBrokenChain) {
		t.Fatalf("New on a forged commit: %v, want ErrBrokenChain", err)
	}
}
