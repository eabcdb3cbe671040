package ingest_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/client"
	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/ingest"
)

// BenchmarkUsageRequest records batches of 100 events by NATS request on
// the embedded server (fsync always), 32 at once, from a connection in
// creditd's own account and from a producer's connection, which reaches
// credits.record.* through its account's import: what the import costs.
// Reported per event.
//
//	go test -run '^$' -bench UsageRequest -benchtime 20000x ./ingest/
func BenchmarkUsageRequest(b *testing.B) {
	producers := &ingest.Producers{}
	emb, err := eventstore.StartEmbedded(eventstore.EmbeddedOptions{StoreDir: b.TempDir(),
		Producers: producers, ProducerServices: ingest.ProducerServices, ProducerStreams: ingest.ProducerStreams})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(emb.Shutdown)
	ctx := context.Background()
	conn := func(name string) *nats.Conn {
		nc, err := emb.Connect(name)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(nc.Close)
		return nc
	}
	store, err := eventstore.Open(ctx, conn("store"), eventstore.Config{})
	if err != nil {
		b.Fatal(err)
	}
	engine, err := commands.New(ctx, store, commands.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(engine.Close)
	producers.UseKeys(engine)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- ingest.Respond(runCtx, conn("usage-requests"), httpapi.NewUsageAnswerer(httpapi.Config{Writer: engine}), ingest.RespondOptions{})
	}()
	b.Cleanup(func() {
		stop()
		<-done
	})
	tenant, err := engine.CreateTenant(ctx, commands.CreateTenant{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := engine.Grant(ctx, tenant.Tenant.ID, "default", domain.Grant{GrantID: "g", Amount: decimal.NewFromInt(1_000_000_000), Source: domain.SourcePurchase}); err != nil {
		b.Fatal(err)
	}
	producer, err := nats.Connect("", append(client.NATSProducerOptions(tenant.APIKey, tenant.Tenant.ID), nats.InProcessServer(emb.Server()))...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(producer.Close)
	subject := ingest.RecordSubjectPrefix + strconv.FormatInt(tenant.Tenant.ID, 10)
	var run atomic.Int64
	for _, c := range []struct {
		name string
		nc   *nats.Conn
	}{{"creditd_account", conn("operator")}, {"producers_account", producer}} {
		b.Run(c.name, func(b *testing.B) {
			const events = 100
			tag := run.Add(1)
			var next atomic.Int64
			b.SetParallelism(16) // 32 requests at once on two cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var body strings.Builder
				for pb.Next() {
					n := next.Add(1)
					body.Reset()
					body.WriteString(`{"events":[`)
					for e := range events {
						if e > 0 {
							body.WriteByte(',')
						}
						fmt.Fprintf(&body, `{"id":"r%d-%d-%d","amount":"0.001","module":"search"}`, tag, n, e)
					}
					body.WriteString(`]}`)
					reply, err := c.nc.Request(subject, []byte(body.String()), 30*time.Second)
					if err != nil {
						b.Error(err)
						return
					}
					if status := reply.Header.Get(ingest.HeaderStatus); status != "200" {
						b.Errorf("answered %s: %s", status, reply.Data)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
