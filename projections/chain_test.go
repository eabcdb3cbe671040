package projections

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/testnats"
)

// forgeGrant appends to tenant's partition a well-formed commit that links
// to prev, not to the commit before it: what a holder of the operator
// token could publish. It returns the message's position.
func forgeGrant(t *testing.T, srv *testnats.Server, tenant int64, prev string) eventstore.StoredMsg {
	t.Helper()
	ctx := context.Background()
	subject := eventstore.PartitionSubject(srv.Store.PartitionOf(tenant))
	data, err := eventstore.EncodeCommit(eventstore.Commit{RecordedAt: time.Now().UTC(), Prev: prev, Events: []domain.Envelope{
		{TenantID: tenant, CreditType: domain.DefaultCreditType, Event: domain.CreditsGranted{GrantID: "forged", Amount: decimal.NewFromInt(1_000_000), Source: domain.SourceManual}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	last, err := srv.Store.LastSeq(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := srv.Store.Append(ctx, subject, last, data)
	if err != nil {
		t.Fatal(err)
	}
	return eventstore.StoredMsg{Subject: subject, Sequence: seq, Data: data}
}

// wantRefused checks that err names the forged message and that the read
// models stand just before it, without the forged grant.
func wantRefused(t *testing.T, p *Projector, err error, forged eventstore.StoredMsg) {
	t.Helper()
	if !eventstore.IsForeign(err) || !strings.Contains(err.Error(), forged.Subject) {
		t.Fatalf("err %v, want a foreign message on %s", err, forged.Subject)
	}
	if p.Position() != forged.Sequence-1 {
		t.Errorf("position %d, want %d: just before the forged commit", p.Position(), forged.Sequence-1)
	}
	if perr := p.Err(); !eventstore.IsForeign(perr) {
		t.Errorf("Err() = %v, want the foreign message for /readyz", perr)
	}
	var n int
	p.db.reader.QueryRow(`SELECT count(*) FROM grants WHERE grant_id = 'forged'`).Scan(&n)
	if n != 0 {
		t.Errorf("the forged grant was applied")
	}
}

// TestProjectorChecksHashLinks: the read models apply only commits that
// link to the commit before them on their subject, live and in a replay,
// after a restart too, and pass over exactly the messages set aside.
func TestProjectorChecksHashLinks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := testnats.Start(t, t.TempDir())
	engine, err := commands.New(ctx, srv.Store, commands.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(engine.Close)
	created, err := engine.CreateTenant(ctx, commands.CreateTenant{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	tenant := created.Tenant.ID
	grant := func(id string) uint64 {
		t.Helper()
		res, err := engine.Grant(ctx, tenant, domain.DefaultCreditType, domain.Grant{GrantID: id, Amount: decimal.NewFromInt(10), Source: domain.SourcePurchase})
		if err != nil {
			t.Fatal(err)
		}
		return res.Position
	}
	grant("g1")
	forged := forgeGrant(t, srv, tenant, strings.Repeat("0", 64))

	t.Run("a_replay_stops_before_a_broken_link", func(t *testing.T) {
		p, err := NewProjector(ctx, openDB(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		wantRefused(t, p, p.CatchUp(ctx, srv.Store, 0), forged)
	})
	live, err := NewProjector(ctx, openDB(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the_live_consumer_stops_before_a_broken_link", func(t *testing.T) {
		conn, err := srv.Embedded.Connect("projection-test")
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- Consume(cctx, conn, live, srv.Store, nil) }()
		deadline := time.Now().Add(10 * time.Second)
		for live.Err() == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		<-done
		wantRefused(t, live, live.Err(), forged)
	})

	// The operator sets it aside; the engine then writes past it, linking
	// to the last commit creditd wrote.
	if _, err := srv.Store.Quarantine(ctx, eventstore.Quarantine{Subject: forged.Subject, Sequence: forged.Sequence, SHA256: eventstore.Hash(forged.Data), Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	after := grant("g2")
	t.Run("a_message_set_aside_is_passed_over_like_the_write_side_does", func(t *testing.T) {
		if err := live.CatchUp(ctx, srv.Store, 0); err != nil {
			t.Fatal(err)
		}
		if live.Position() < after || live.Err() != nil {
			t.Fatalf("position %d err %v, want past %d", live.Position(), live.Err(), after)
		}
	})
	t.Run("the_links_survive_a_restart", func(t *testing.T) {
		// A commit claiming to be its subject's first: accepted only by a
		// projector that forgot the subject's last hash.
		again := forgeGrant(t, srv, tenant, "")
		p, err := NewProjector(ctx, live.db, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantRefused(t, p, p.CatchUp(ctx, srv.Store, 0), again)
	})
	t.Run("a_database_without_links_learns_them_from_the_log", func(t *testing.T) {
		// A read model written before the links were kept (the migration).
		if _, err := WriterForTests(live.db).Exec(`DELETE FROM chain_heads`); err != nil {
			t.Fatal(err)
		}
		p, err := NewProjector(ctx, live.db, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.CatchUp(ctx, srv.Store, 0); !eventstore.IsForeign(err) {
			t.Fatalf("err %v, want the forged first commit refused", err)
		}
	})
}
