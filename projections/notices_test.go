package projections_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/creditd/creditd/internal/stack"
	"github.com/creditd/creditd/projections"
)

// webhook is a loopback receiver that refuses its first delivery and
// checks every signature.
type webhook struct {
	mu       sync.Mutex
	secret   string
	refused  bool
	received []projections.Notice
	badSigs  int
}

func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.refused {
		w.refused = true
		rw.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	sig := r.Header.Get(projections.SignatureHeader)
	ts, _, _ := strings.Cut(strings.TrimPrefix(sig, "t="), ",")
	var n projections.Notice
	json.Unmarshal(body, &n)
	if !verify(w.secret, ts, body, sig) {
		w.badSigs++
	}
	w.received = append(w.received, n)
	rw.WriteHeader(http.StatusNoContent)
}

func verify(secret, ts string, body []byte, sig string) bool {
	unix, err := strconv.ParseInt(ts, 10, 64)
	return err == nil && projections.Sign(secret, time.Unix(unix, 0), body) == sig
}

func (w *webhook) notices() []projections.Notice {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]projections.Notice(nil), w.received...)
}

func TestNoticesOncePerCrossing(t *testing.T) {
	t.Parallel()
	s := stack.StartWith(t, t.TempDir(), &stack.Clock{}, loopbackForTests)
	tenant, key := s.Tenant("acme")
	hook := &webhook{secret: projections.WebhookSecret(stack.WebhookKey, tenant)}
	receiver := httptest.NewServer(hook)
	defer receiver.Close()

	onNATS := make(chan *nats.Msg, 64)
	sub, err := s.NATS.Conn.ChanSubscribe("credits.notices.*", onNATS)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	conf := s.Must(http.StatusOK, http.MethodPut, "/v1/notices", key, map[string]any{"thresholds": []any{"50", "10"}, "webhook_url": receiver.URL})
	if conf["webhook_secret"] != hook.secret {
		t.Fatalf("secret %v, want %s", conf["webhook_secret"], hook.secret)
	}
	s.Must(http.StatusCreated, http.MethodPost, "/v1/grants", key, map[string]any{"amount": "100"})
	use := func(id, amount string) {
		s.Must(http.StatusOK, http.MethodPost, "/v1/usage", key, map[string]any{"events": []any{map[string]any{"id": id, "amount": amount}}})
	}
	use("u1", "40")                                                                                 // 60: above both
	use("u2", "20")                                                                                 // 40: crosses 50
	use("u3", "5")                                                                                  // 35: no crossing
	use("u4", "30")                                                                                 // 5: crosses 10
	s.Must(http.StatusCreated, http.MethodPost, "/v1/grants", key, map[string]any{"amount": "100"}) // back to 105
	use("u5", "60")                                                                                 // 45: crosses 50 again
	use("u6", "45")                                                                                 // 0: crosses 10 and depletes

	want := []string{"low_balance 50", "low_balance 10", "low_balance 50", "low_balance 10", "depleted 0"}
	deadline := time.Now().Add(20 * time.Second)
	for len(hook.notices()) < len(want) {
		if time.Now().After(deadline) {
			t.Fatalf("webhook got %d notices, want %d (the first delivery is refused and retried)", len(hook.notices()), len(want))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	got := hook.notices()
	// The refused first delivery arrives last: order by notice id, the
	// order of the crossings.
	slices.SortFunc(got, func(a, b projections.Notice) int { return int(a.NoticeID - b.NoticeID) })
	if len(got) != len(want) {
		t.Fatalf("webhook got %d notices, want exactly %d: %+v", len(got), len(want), got)
	}
	for i, n := range got {
		if n.Kind+" "+n.Threshold != want[i] {
			t.Errorf("notice %d = %s %s, want %s", i, n.Kind, n.Threshold, want[i])
		}
	}
	if hook.badSigs != 0 {
		t.Fatalf("%d notices with a bad signature", hook.badSigs)
	}
	published := 0
	for len(onNATS) > 0 {
		<-onNATS
		published++
	}
	if published != len(want) {
		t.Fatalf("%d notices on NATS, want %d", published, len(want))
	}
	if r := s.Do(http.MethodPut, "/v1/notices", key, map[string]any{"thresholds": []any{"-1"}, "webhook_url": "ftp://x"}); r.Status != http.StatusBadRequest {
		t.Fatalf("bad notice settings: %d %s", r.Status, r.Body)
	}
}
