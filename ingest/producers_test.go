package ingest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/client"
	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/ingest"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool trusting the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "creditd test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestProducerOverTLS runs the embedded server with nats-server's TLS and
// producer authentication: a producer that trusts the certificate and
// presents its API key records usage through the client package; a
// plaintext connection and a wrong key are refused.
func TestProducerOverTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	producers := &ingest.Producers{}
	emb, err := eventstore.StartEmbedded(eventstore.EmbeddedOptions{StoreDir: t.TempDir(), Listen: freeLoopbackAddr(t),
		Producers: producers, ProducerServices: ingest.ProducerServices, ProducerStreams: ingest.ProducerStreams, TLSCertFile: certFile, TLSKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	ctx := context.Background()
	nc, err := emb.Connect("creditd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	store, err := eventstore.Open(ctx, nc, eventstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	engine, err := commands.New(ctx, store, commands.Options{CheckInvariants: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(engine.Close)
	producers.UseKeys(engine)
	js, _ := jetstream.New(nc)
	if err := ingest.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	ingestConn, err := emb.Connect("ingest")
	if err != nil {
		t.Fatal(err)
	}
	consumeCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ingest.Consume(consumeCtx, ingestConn, engine, ingest.Options{Workers: 2}) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	tenant, err := engine.CreateTenant(ctx, commands.CreateTenant{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Grant(ctx, tenant.Tenant.ID, "default", domain.Grant{GrantID: "g", Amount: decimal.NewFromInt(10), Source: domain.SourcePurchase}); err != nil {
		t.Fatal(err)
	}
	url := emb.ClientURL()

	if c, err := nats.Connect(url, nats.Token(tenant.APIKey), nats.MaxReconnects(0)); err == nil {
		c.Close()
		t.Fatal("a plaintext connection was accepted")
	}
	tlsConfig := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if c, err := nats.Connect(url, nats.Token("cdk_not-a-key"), nats.Secure(tlsConfig), nats.MaxReconnects(0)); err == nil {
		c.Close()
		t.Fatal("an unknown key was accepted")
	}
	producer, err := nats.Connect(url, append(client.NATSProducerOptions(tenant.APIKey, tenant.Tenant.ID), nats.Secure(tlsConfig))...)
	if err != nil {
		t.Fatalf("producer over TLS: %v", err)
	}
	t.Cleanup(producer.Close)
	if got := producer.ConnectedUrl(); got == "" || !producer.TLSRequired() {
		t.Fatalf("connected to %q, TLS required %v", got, producer.TLSRequired())
	}
	c, err := client.New(client.Config{NATS: producer, TenantID: tenant.Tenant.ID})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Record(ctx, client.UsageEvent{ID: "u1", Amount: decimal.RequireFromString("2.5")}); err != nil {
		t.Fatalf("record over TLS: %v", err)
	}
	eventually(t, "usage of tenant "+strconv.FormatInt(tenant.Tenant.ID, 10)+" counted", func() bool {
		l, _, err := engine.Line(ctx, tenant.Tenant.ID, "default")
		return err == nil && l.Used.Equal(decimal.RequireFromString("2.5"))
	})
}
