package clustertest

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/ingest"
)

// exampleConfig is the documented external-mode configuration.
const exampleConfig = "../../docs/nats-server.conf"

// TestExampleConfigScopesProducers starts a three-node cluster from
// docs/nats-server.conf, runs creditd on it as the documented creditd
// user, and connects as the documented tenant-1 producer: its own usage is
// counted; another tenant's subject, the registry and the JetStream API
// are refused.
func TestExampleConfigScopesProducers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	t.Setenv("CREDITD_NATS_PASSWORD", "creditd-secret")
	t.Setenv("TENANT_1_NATS_PASSWORD", "tenant-1-secret")
	t.Setenv("SYSTEM_NATS_PASSWORD", "system-secret")
	clusterPorts := []int{freePort(t), freePort(t), freePort(t)}
	var routes []*url.URL
	for _, p := range clusterPorts {
		u, _ := url.Parse(fmt.Sprintf("nats-route://127.0.0.1:%d", p))
		routes = append(routes, u)
	}
	var nodes []*node
	var creditdURLs, producerURLs []string
	for i := range 3 {
		opts, err := server.ProcessConfigFile(exampleConfig)
		if err != nil {
			t.Fatalf("%s: %v", exampleConfig, err)
		}
		opts.ServerName, opts.Host, opts.Port = fmt.Sprintf("n%d", i+1), "127.0.0.1", freePort(t)
		opts.StoreDir = filepath.Join(t.TempDir(), "js")
		opts.Cluster = server.ClusterOpts{Name: "creditd", Host: "127.0.0.1", Port: clusterPorts[i]}
		opts.Routes, opts.NoLog, opts.NoSigs = routes, true, true
		nodes = append(nodes, &node{opts: opts})
		creditdURLs = append(creditdURLs, fmt.Sprintf("nats://creditd:creditd-secret@127.0.0.1:%d", opts.Port))
		producerURLs = append(producerURLs, fmt.Sprintf("nats://127.0.0.1:%d", opts.Port))
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() { n.start(t) })
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
	})

	in := startInstanceWith(t, strings.Join(creditdURLs, ","), "creditd", 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var tenants []int64
	for range 2 {
		c, err := in.engine.CreateTenant(ctx, commands.CreateTenant{Name: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := in.engine.Grant(ctx, c.Tenant.ID, "default", domain.Grant{GrantID: "g", Amount: decimal.NewFromInt(10), Source: domain.SourcePurchase}); err != nil {
			t.Fatal(err)
		}
		tenants = append(tenants, c.Tenant.ID)
	}
	if tenants[0] != 1 {
		t.Fatalf("first tenant is %d; the example config names tenant 1", tenants[0])
	}
	admin := connect(t, strings.Join(creditdURLs, ","), "creditd-admin")
	// The documented creditd user may count the servers (serve's default
	// replicas), with no system credentials.
	if size, err := eventstore.ClusterSize(ctx, admin); err != nil || size != 3 {
		t.Fatalf("ClusterSize as the creditd user = %d, %v; want 3", size, err)
	}
	js, _ := jetstream.New(admin)
	if err := ingest.EnsureStreams(ctx, js, 3); err != nil {
		t.Fatal(err)
	}
	consumeCtx, stopConsuming := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ingest.Consume(consumeCtx, connect(t, strings.Join(creditdURLs, ","), "creditd-ingest"), in.engine, ingest.Options{Workers: 2})
	}()
	answered := make(chan error, 1)
	go func() {
		answered <- ingest.Respond(consumeCtx, connect(t, strings.Join(creditdURLs, ","), "creditd-usage-requests"), httpapi.NewUsageAnswerer(httpapi.Config{Writer: in.engine}), ingest.RespondOptions{Workers: 2})
	}()
	defer func() {
		stopConsuming()
		<-done
		<-answered
	}()

	refused := make(chan string, 16)
	producer, err := nats.Connect(strings.Join(producerURLs, ","), nats.UserInfo("tenant-1", "tenant-1-secret"),
		nats.CustomInboxPrefix(ingest.ProducerInboxPrefix(1)), nats.MaxReconnects(0),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { refused <- err.Error() }))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	pjs, _ := jetstream.New(producer)
	if _, err := pjs.Publish(ctx, "credits.usage.1", []byte(`{"id":"u1","amount":"3"}`)); err != nil {
		t.Fatalf("publish own usage: %v", err)
	}
	// Its own record subject answers once stored (the responders may take
	// a moment to subscribe on every node).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		reply, err := producer.Request("credits.record.1", []byte(`{"events":[{"id":"r1","amount":"2"}]}`), 5*time.Second)
		if err == nil {
			if status := reply.Header.Get(ingest.HeaderStatus); status != "200" {
				t.Fatalf("request on its own record subject: %s %s", status, reply.Data)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("request on its own record subject: %v", err)
		}
	}
	for _, subject := range []string{"credits.usage.2", "credits.record.2", "credits.registry", "$JS.API.STREAM.MSG.GET.CREDITS"} {
		producer.Publish(subject, []byte(`{}`))
		select {
		case e := <-refused:
			if !strings.Contains(e, subject) {
				t.Fatalf("publish to %s: refusal %q names another subject", subject, e)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("publish to %s was not refused", subject)
		}
	}
	// A reply subject on the log: JetStream's acknowledgement and
	// creditd's answer resolve in the producers' account, not in the log.
	for _, m := range []*nats.Msg{
		{Subject: "credits.usage.1", Reply: "credits.registry", Data: []byte(`{"id":"q-registry","amount":"1"}`)},
		{Subject: "credits.record.1", Reply: "credits.registry", Data: []byte(`{"events":[{"id":"r-registry","amount":"1"}]}`)},
	} {
		if err := producer.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		line, _, err := in.engine.Line(ctx, 1, "default")
		if err == nil && line.Used.Equal(decimal.NewFromInt(7)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tenant 1's usage not counted: %v %v", line, err)
		}
	}
	if line, _, err := in.engine.Line(ctx, 2, "default"); err != nil || !line.Used.IsZero() {
		t.Fatalf("tenant 2 used %v (%v): a refused publish was counted", line, err)
	}
	if !producer.IsConnected() {
		t.Fatal("the producer was disconnected")
	}
	time.Sleep(300 * time.Millisecond)
	stream, err := js.Stream(ctx, "CREDITS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(m.Data), `{"v":`) {
			t.Errorf("the log holds at %d, on %s, a message creditd did not write: %.120s", seq, m.Subject, m.Data)
		}
	}
}
