// Package seed generates a large, realistic usage history as stored
// commits, for benchmarks of the read side: one tenant's metered usage over
// a span of days with the dimension cardinalities of a busy API platform.
package seed

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// Shape describes the history to generate.
type Shape struct {
	TenantID int64
	Events   int
	Days     int
	// End is the last day of the history.
	End time.Time
	// EventsPerCommit is how many usage events each stored commit holds.
	EventsPerCommit int
	Seed            uint64
}

// Cardinalities of the generated dimensions.
var (
	modules   = []string{"search", "enrich", "lasso", "export", "vision", "chat"}
	services  = []string{"api", "batch", "webhook", "console"}
	endpoints = []string{"/v1/search", "/v1/enrich", "/v1/products", "/v1/export", "/v1/images", "/v1/chat", "/v1/tables", "/v1/jobs"}
)

const (
	users      = 100
	workflows  = 8
	tables     = 12
	grantEvery = 50_000 // a purchase grant per this many events keeps the line funded
)

// Subject is the subject of the commit at seq on a store with the default
// partition count: the registry for the first, the tenant's partition for
// the rest. Readers take only commits on a commit subject, so messages
// built in memory must carry it.
func (s Shape) Subject(seq uint64) string {
	if seq == 1 {
		return eventstore.RegistrySubject
	}
	return eventstore.PartitionSubject(int(uint64(s.TenantID) % eventstore.PartitionsDefault))
}

// Msg is the stored message of the commit at seq, as a reader gets it.
func (s Shape) Msg(seq uint64, data []byte) eventstore.StoredMsg {
	return eventstore.StoredMsg{Sequence: seq, Subject: s.Subject(seq), Data: data}
}

// Commits calls fn for each generated commit, in position order starting at
// 1: a TenantCreated (for credits.registry), then, each linked to the one
// before it (for the tenant's partition), grants and usage spread evenly over the days,
// each usage burning the current grant.
func Commits(s Shape, fn func(seq uint64, data []byte) error) error {
	rng := rand.New(rand.NewPCG(s.Seed, 42))
	start := s.End.AddDate(0, 0, -(s.Days - 1)).Truncate(24 * time.Hour)
	seq := uint64(0)
	prev := ""
	emit := func(at time.Time, events []domain.Envelope) error {
		data, err := eventstore.EncodeCommit(eventstore.Commit{RecordedAt: at, Prev: prev, Events: events})
		if err != nil {
			return err
		}
		seq++
		prev = eventstore.Hash(data)
		return fn(seq, data)
	}
	if err := emit(start, []domain.Envelope{{TenantID: s.TenantID, Event: domain.TenantCreated{
		TenantID: s.TenantID, Name: "bench", Email: "bench@example.test", Currency: "USD", CreatedAt: start}}}); err != nil {
		return err
	}
	// That commit is the registry's; the line's commits form their
	// partition's own chain, which starts empty.
	prev = ""
	step := time.Duration(int64(s.Days) * int64(24*time.Hour) / int64(max(s.Events, 1)))
	var grantID string
	var grantLeft decimal.Decimal
	batch := make([]domain.Envelope, 0, s.EventsPerCommit+1)
	for i := range s.Events {
		at := start.Add(time.Duration(i) * step)
		if i%grantEvery == 0 {
			grantID = fmt.Sprintf("g%d", i)
			grantLeft = decimal.NewFromInt(10_000_000)
			batch = append(batch, domain.Envelope{TenantID: s.TenantID, CreditType: domain.DefaultCreditType, Event: domain.CreditsGranted{
				GrantID: grantID, Amount: grantLeft, Source: domain.SourcePurchase, EffectiveAt: at}})
		}
		amount := decimal.New(int64(rng.IntN(5000)+1), -3)
		grantLeft = grantLeft.Sub(amount)
		// Each module is served by one service and endpoint, as in a real
		// API; workflows and tables belong to the lasso module only. That
		// keeps the cube near a thousand cells a day, not one per event.
		m := zipf(rng, len(modules))
		dims := domain.Dimensions{
			Module: modules[m], Service: services[m%len(services)], Endpoint: endpoints[m],
			UserID: fmt.Sprintf("user-%d", zipf(rng, users)), Success: rng.IntN(20) != 0,
			Quantity: decimal.NewFromInt(int64(rng.IntN(10) + 1)),
		}
		if dims.Module == "lasso" {
			table := rng.IntN(tables)
			dims.WorkflowID = fmt.Sprintf("wf-%d", rng.IntN(workflows))
			dims.Custom = map[string]string{"table_id": fmt.Sprint(table), "table_name": fmt.Sprintf("table %d", table)}
		}
		batch = append(batch, domain.Envelope{TenantID: s.TenantID, CreditType: domain.DefaultCreditType, Event: domain.UsageDebited{
			UsageID: fmt.Sprintf("u%d", i), Amount: amount, OccurredAt: at, Dimensions: dims,
			Burned: []domain.Burn{{GrantID: grantID, Amount: amount}},
		}})
		if len(batch) >= s.EventsPerCommit || i == s.Events-1 {
			if err := emit(at, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

// zipf picks an index in [0, n) with a skew towards small indexes, as real
// usage concentrates on a few modules and users.
func zipf(rng *rand.Rand, n int) int {
	for {
		i := int(float64(n) * rng.Float64() * rng.Float64())
		if i < n {
			return i
		}
	}
}
