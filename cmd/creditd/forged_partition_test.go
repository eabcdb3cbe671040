package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// TestForgedPartitionMessageStopsReadiness publishes, with the operator
// token, a well-formed commit that does not link to the one before it on a
// tenant's partition: a forged grant. The next write to that tenant meets
// it; /readyz answers 503 naming the subject and the sequence for the
// write side (write_error) and for the read models (last_error), which
// never show the forged grant. After
// `creditd quarantine` (the command the error names) creditd starts, the
// tenant writes again and /readyz is ready.
func TestForgedPartitionMessageStopsReadiness(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, dataDir, addr := newBinaryRun(t)
	base := "http://" + addr
	url, stop := natsServe(t, bin, dataDir, addr)
	tenant := createTenant(t, base, dataDir)
	post(t, base+"/v1/grants", tenant.APIKey, `{"grant_id":"g1","amount":10}`, http.StatusCreated, nil)

	subject := eventstore.PartitionSubject(int(tenant.TenantID % eventstore.PartitionsDefault))
	forged, err := eventstore.EncodeCommit(eventstore.Commit{RecordedAt: time.Now().UTC(), Prev: strings.Repeat("0", 64), Events: []domain.Envelope{
		{TenantID: tenant.TenantID, CreditType: domain.DefaultCreditType, Event: domain.CreditsGranted{
			GrantID: "forged", Amount: decimal.RequireFromString("1000000"), Source: domain.SourceManual, EffectiveAt: time.Now().UTC()}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, nats.Token(operatorToken))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	ack, err := js.Publish(context.Background(), subject, forged)
	nc.Close()
	if err != nil {
		t.Fatal(err)
	}
	where := fmt.Sprintf("%s at %d", subject, ack.Sequence)

	// The write meets the forged commit: it is not stored, and says why.
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/usage", strings.NewReader(`{"events":[{"id":"u1","amount":1}]}`))
	req.Header.Set("Authorization", "Bearer "+tenant.APIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a write past the forged commit: %d, want 503", resp.StatusCode)
	}
	var ready map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		status := getJSON(t, base+"/readyz", &ready)
		writeErr, _ := ready["write_error"].(string)
		projectionErr, _ := ready["last_error"].(string)
		if status == http.StatusServiceUnavailable && strings.Contains(writeErr, where) && strings.Contains(projectionErr, where) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz %d %v: want 503 with a write_error and a last_error naming %s", status, ready, where)
		}
	}
	var balance map[string]any
	getJSONAuth(t, base+"/v1/balance", tenant.APIKey, &balance)
	if strings.Contains(fmt.Sprint(balance), "1000010") {
		t.Errorf("the read models applied the forged grant: %v", balance)
	}
	stop()

	writeErr := ready["write_error"].(string)
	line := writeErr[strings.Index(writeErr, "creditd quarantine"):]
	args := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), "."))[1:]
	if out, err := exec.Command(bin, append(args, "--data-dir", dataDir, "--reason", "forged by a test")...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	stop = startServerArgs(t, bin, dataDir, addr)
	defer stop()
	post(t, base+"/v1/usage", tenant.APIKey, `{"events":[{"id":"u1","amount":1}]}`, http.StatusOK, nil)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if status := getJSON(t, base+"/readyz", &ready); status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after quarantine: %v", ready)
		}
	}
}

// getJSON GETs url and decodes its JSON answer into out; it returns the status.
func getJSON(t *testing.T, url string, out any) int {
	t.Helper()
	return getJSONAuth(t, url, "", out)
}

func getJSONAuth(t *testing.T, url, bearer string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode
}
