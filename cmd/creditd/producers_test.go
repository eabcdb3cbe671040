package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/client"
)

// operatorToken is the --nats-token of these tests: full access, for
// operators only.
const operatorToken = "operator-secret"

// natsServe runs `creditd serve` with the embedded NATS server listening on
// a loopback port and the operator token; it returns the NATS URL and a stop
// func (SIGTERM, wait).
func natsServe(t *testing.T, bin, dataDir, addr string, extra ...string) (natsURL string, stop func()) {
	t.Helper()
	natsAddr := freeAddr(t)
	args := append([]string{"--nats-listen", natsAddr, "--nats-token", operatorToken}, extra...)
	return "nats://" + natsAddr, startServerArgs(t, bin, dataDir, addr, args...)
}

// startServerArgs is startServer with extra serve flags.
func startServerArgs(t *testing.T, bin, dataDir, addr string, extra ...string) func() {
	t.Helper()
	_, stop := startServerProcess(t, bin, dataDir, addr, extra...)
	return stop
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// violations collects the server's asynchronous permission errors.
type violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	v.errs = append(v.errs, err.Error())
	v.mu.Unlock()
}

// await waits until an error mentioning subject arrives.
func (v *violations) await(t *testing.T, subject string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		v.mu.Lock()
		for _, e := range v.errs {
			if strings.Contains(strings.ToLower(e), "permissions violation") && strings.Contains(e, subject) {
				v.mu.Unlock()
				return
			}
		}
		v.mu.Unlock()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	t.Fatalf("no permissions violation for %s; errors: %v", subject, v.errs)
}

// producerConn connects as a tenant producer: its API key is the token,
// and its publish acknowledgements come to its own inbox prefix.
func producerConn(t *testing.T, url string, tenant testTenant, v *violations, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{nats.Token(tenant.APIKey), nats.CustomInboxPrefix(fmt.Sprintf("_INBOX.tenant.%d", tenant.TenantID)),
		nats.ErrorHandler(v.handler), nats.MaxReconnects(0)}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("producer of tenant %d cannot connect with its API key: %v", tenant.TenantID, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// twoProducerTenants runs `creditd serve` with producers let in, and
// creates two tenants with 10 credits each.
func twoProducerTenants(t *testing.T) (dataDir, base, natsURL string, alice, bob testTenant) {
	t.Helper()
	bin, dataDir, addr := newBinaryRun(t)
	base = "http://" + addr
	natsURL, _ = natsServe(t, bin, dataDir, addr)
	alice = createTenant(t, base, dataDir)
	bob = createTenant(t, base, dataDir)
	post(t, base+"/v1/grants", alice.APIKey, `{"grant_id":"g","amount":"10"}`, http.StatusCreated, nil)
	post(t, base+"/v1/grants", bob.APIKey, `{"grant_id":"g","amount":"10"}`, http.StatusCreated, nil)
	return dataDir, base, natsURL, alice, bob
}

// TestProducersAreScopedToTheirTenant connects with one tenant's API key
// and tries what a hostile producer would: another tenant's usage subject,
// the registry, the JetStream API, other tenants' notices. Each is refused,
// the server keeps serving, and the tenant's own usage is counted. Revoking
// the key cuts the connection within seconds.
func TestProducersAreScopedToTheirTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dataDir, base, url, alice, bob := twoProducerTenants(t)
	var v violations
	nc := producerConn(t, url, alice, &v)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	aliceSubject := "credits.usage." + strconv.FormatInt(alice.TenantID, 10)
	if _, err := js.Publish(ctx, aliceSubject, []byte(`{"id":"u1","amount":"1"}`)); err != nil {
		t.Fatalf("publish to the tenant's own subject: %v", err)
	}

	bobSubject := "credits.usage." + strconv.FormatInt(bob.TenantID, 10)
	nc.Publish(bobSubject, []byte(`{"id":"forged","amount":"5"}`))
	v.await(t, bobSubject)
	nc.Publish("credits.registry", []byte(`{"v":0}`))
	v.await(t, "credits.registry")
	if _, err := nc.Request("$JS.API.STREAM.MSG.GET.CREDITS", []byte(`{"seq":1}`), time.Second); err == nil {
		t.Fatal("the JetStream API answered a producer")
	}
	v.await(t, "$JS.API.STREAM.MSG.GET.CREDITS")
	nc.Subscribe("credits.notices."+strconv.FormatInt(bob.TenantID, 10), func(*nats.Msg) {})
	v.await(t, "credits.notices."+strconv.FormatInt(bob.TenantID, 10))
	nc.Subscribe(">", func(*nats.Msg) {})
	v.await(t, `">"`)

	// Still connected and still serving: the next own event is counted.
	if _, err := js.Publish(ctx, aliceSubject, []byte(`{"id":"u2","amount":"2"}`)); err != nil {
		t.Fatalf("publish after the refusals: %v", err)
	}
	awaitAvailable(t, base, alice.APIKey, "7")
	awaitAvailable(t, base, bob.APIKey, "10")

	// Revoking the key closes its connection.
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	req, _ := http.NewRequest(http.MethodDelete, fmt.Sprintf("%s/v1/tenants/%d/api-keys/%s", base, alice.TenantID, alice.KeyID), nil)
	req.Header.Set("Authorization", "Bearer "+adminToken(t, dataDir))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	resp.Body.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the revoked key's NATS connection is still open after 5 s")
	}
	if _, err := nats.Connect(url, nats.Token(alice.APIKey), nats.MaxReconnects(0)); err == nil {
		t.Fatal("a revoked key connected")
	}
}

// TestProducerRequestsAreScopedToTheirTenant: a producer connected with
// its tenant's API key records usage by NATS request through the client
// (NATSRequest) and gets each event's outcome once stored, as over HTTP. A
// request on another tenant's record subject is a permissions violation
// and records nothing.
func TestProducerRequestsAreScopedToTheirTenant(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	_, base, url, alice, bob := twoProducerTenants(t)
	var v violations
	nc := producerConn(t, url, alice, &v)
	// Its notices reach it too (imported into the producers' account).
	notices, err := nc.SubscribeSync("credits.notices." + strconv.FormatInt(alice.TenantID, 10))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, base+"/v1/notices", strings.NewReader(`{"thresholds":[9]}`))
	req.Header.Set("Authorization", "Bearer "+alice.APIKey)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /v1/notices: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	c, err := client.New(client.Config{NATS: nc, TenantID: alice.TenantID, NATSRequest: true, Linger: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	three := decimal.RequireFromString("3")
	results, err := c.Record(context.Background(), client.UsageEvent{ID: "q1", Amount: decimal.RequireFromString("2")}, client.UsageEvent{ID: "q2", Amount: decimal.RequireFromString("20")})
	if err != nil {
		t.Fatal(err)
	}
	if results[0].Status != "accepted" || results[1].Status != "rejected" || results[1].Reason != "insufficient_credits" {
		t.Fatalf("results %+v: want q1 accepted and q2 refused for insufficient credits", results)
	}
	results, err = c.Record(context.Background(), client.UsageEvent{ID: "q1", Amount: decimal.RequireFromString("2")}, client.UsageEvent{ID: "q3", Amount: three})
	if err != nil || results[0].Status != "duplicate" || results[1].Status != "accepted" {
		t.Fatalf("results %+v, %v: want q1 a duplicate and q3 accepted", results, err)
	}

	bobSubject := "credits.record." + strconv.FormatInt(bob.TenantID, 10)
	if _, err := nc.Request(bobSubject, []byte(`{"events":[{"id":"forged","amount":"5"}]}`), 500*time.Millisecond); err == nil {
		t.Fatal("a request on another tenant's record subject was answered")
	}
	v.await(t, bobSubject)
	awaitAvailable(t, base, alice.APIKey, "5")
	awaitAvailable(t, base, bob.APIKey, "10")
	if m, err := notices.NextMsg(10 * time.Second); err != nil || !strings.Contains(string(m.Data), `"low_balance"`) {
		t.Fatalf("the tenant's producer got no low-balance notice: %v %v", m, err)
	}
}

// TestProducerReplySubjectsCannotReachTheLog: NATS checks the subject a
// producer publishes to, not the reply subject it names, and JetStream and
// creditd answer on that reply subject. A producer that names a log
// subject as the reply of its own usage, queued or requested, must not get
// an acknowledgement or an answer stored in the log: that would be a
// message creditd did not write, which stops writes on that subject. Its
// usage is recorded, the log holds commits only, and creditd stays ready.
func TestProducerReplySubjectsCannotReachTheLog(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	_, base, url, alice, _ := twoProducerTenants(t)
	var v violations
	nc := producerConn(t, url, alice, &v)
	op, err := nats.Connect(url, nats.Token(operatorToken))
	if err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	js, _ := jetstream.New(op)
	stream, err := js.Stream(context.Background(), "CREDITS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	before := info.State.LastSeq
	id := strconv.FormatInt(alice.TenantID, 10)
	for i, reply := range []string{"credits.registry", "credits.events.0", "credits.events.1"} {
		body := fmt.Sprintf(`{"events":[{"id":"queued-%d","amount":"1"}]}`, i)
		if err := nc.PublishMsg(&nats.Msg{Subject: "credits.usage." + id, Reply: reply, Data: []byte(body)}); err != nil {
			t.Fatal(err)
		}
		body = fmt.Sprintf(`{"events":[{"id":"requested-%d","amount":"1"}]}`, i)
		if err := nc.PublishMsg(&nats.Msg{Subject: "credits.record." + id, Reply: reply, Data: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	nc.Flush()
	// The queued usage is recorded (the requests too, answered into the
	// producers' account, where no stream listens).
	awaitAvailable(t, base, alice.APIKey, "4")
	time.Sleep(500 * time.Millisecond)
	info, err = stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for seq := before + 1; seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(m.Data, []byte(`{"v":`)) {
			t.Errorf("the log holds at %d, on %s, a message creditd did not write: %.120s", seq, m.Subject, m.Data)
		}
	}
	var ready map[string]any
	if status := getJSON(t, base+"/readyz", &ready); status != http.StatusOK {
		t.Fatalf("/readyz %d %v", status, ready)
	}
}

// TestProducersAfterRestart: the producers' account is made again at each
// start, with its imports, on the same data: after a restart a producer's
// key still connects, its request is answered, and a retry of a request
// whose answer it never saw (sent before the restart) is a duplicate.
func TestProducersAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, dataDir, addr := newBinaryRun(t)
	base := "http://" + addr
	url, stop := natsServe(t, bin, dataDir, addr)
	alice := createTenant(t, base, dataDir)
	post(t, base+"/v1/grants", alice.APIKey, `{"grant_id":"g","amount":"10"}`, http.StatusCreated, nil)
	subject := "credits.record." + strconv.FormatInt(alice.TenantID, 10)
	var v violations
	nc := producerConn(t, url, alice, &v)
	// Sent, and its answer dropped on the floor.
	if err := nc.PublishRequest(subject, "_INBOX.tenant."+strconv.FormatInt(alice.TenantID, 10)+".lost", []byte(`{"events":[{"id":"before","amount":"2"}]}`)); err != nil {
		t.Fatal(err)
	}
	awaitAvailable(t, base, alice.APIKey, "8")
	nc.Close()
	stop()

	url, _ = natsServe(t, bin, dataDir, addr)
	nc = producerConn(t, url, alice, &v)
	reply, err := nc.Request(subject, []byte(`{"events":[{"id":"before","amount":"2"},{"id":"after","amount":"3"}]}`), 10*time.Second)
	if err != nil {
		t.Fatalf("request after restart: %v", err)
	}
	if status := reply.Header.Get("Creditd-Status"); status != "200" || !strings.Contains(string(reply.Data), `"accepted":1,"duplicates":1`) {
		t.Fatalf("after restart: %s %s, want the retry a duplicate and the new event accepted", status, reply.Data)
	}
	awaitAvailable(t, base, alice.APIKey, "5")
}

func adminToken(t *testing.T, dataDir string) string {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(dataDir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(token))
}

func awaitAvailable(t *testing.T, base, key, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got := fmt.Sprint(get(t, base+"/v1/balance", key)["total"].(map[string]any)["available"])
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("available %s, want %s", got, want)
		}
	}
}

// TestForgedLogMessageIsNamedWithAWayOut publishes, with the operator
// token, a message creditd did not write to credits.registry: readiness
// says so with the position, a restart refuses naming the message and the
// command that sets it aside, verify names it, and after that command
// creditd starts and creates tenants again.
func TestForgedLogMessageIsNamedWithAWayOut(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, dataDir, addr := newBinaryRun(t)
	base := "http://" + addr
	url, stop := natsServe(t, bin, dataDir, addr)
	createTenant(t, base, dataDir)

	nc, err := nats.Connect(url, nats.Token(operatorToken))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	ack, err := js.Publish(context.Background(), "credits.registry", []byte(`{"v":0}`))
	nc.Close()
	if err != nil {
		t.Fatal(err)
	}
	where := fmt.Sprintf("credits.registry at %d", ack.Sequence)

	// Readiness tells the truth, with the position.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(body.String(), where) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz %d %s: want 503 naming %s", resp.StatusCode, body.String(), where)
		}
	}
	stop()

	out, err := exec.Command(bin, "serve", "--data-dir", dataDir, "--http-addr", addr).CombinedOutput()
	if err == nil {
		t.Fatal("serve started on a log with a foreign message")
	}
	if !strings.Contains(string(out), where) || !strings.Contains(string(out), "creditd quarantine") {
		t.Fatalf("start-up error does not name the message and the way out:\n%s", out)
	}
	t.Logf("start-up error:\n%s", out)
	verifyOut, err := exec.Command(bin, "verify", "--data-dir", dataDir).CombinedOutput()
	if err == nil || !strings.Contains(string(verifyOut), fmt.Sprintf("credits.registry at position %d", ack.Sequence)) {
		t.Fatalf("verify does not name the message (%v):\n%s", err, verifyOut)
	}

	t.Logf("verify:\n%s", verifyOut)
	// The way out the error names, copied from it.
	line := string(out)[strings.Index(string(out), "creditd quarantine"):]
	line = strings.TrimSpace(strings.SplitN(line, "\n", 2)[0])
	args := strings.Fields(strings.TrimSuffix(line, "."))[1:]
	if q, err := exec.Command(bin, append(args, "--data-dir", dataDir, "--reason", "forged by a test")...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, q)
	}
	if out, err := exec.Command(bin, "verify", "--data-dir", dataDir).CombinedOutput(); err != nil {
		t.Fatalf("verify after quarantine: %v\n%s", err, out)
	}
	stop = startServerArgs(t, bin, dataDir, addr)
	defer stop()
	var tenant testTenant
	post(t, base+"/v1/tenants", adminToken(t, dataDir), `{"name":"after"}`, http.StatusCreated, &tenant)
	// The read models catch up past the message set aside while writes
	// are served: ready once they have.
	var ready map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if status := getJSON(t, base+"/readyz", &ready); status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after quarantine: %v", ready)
		}
	}
}
