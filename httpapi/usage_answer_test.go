package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/creditd/creditd/httpapi"
)

// TestAnswerUsageIsWhatPostUsageAnswers sends the same bodies, in the same
// order, to POST /v1/usage for one tenant and to AnswerUsage (the NATS
// request path) for a twin tenant with the same grant: every status and
// every answer is the same, but for what names the request (its id, its
// instance) and the log positions. That covers acceptance, repeats,
// refusals decided by the rules, id conflicts, a malformed event among
// good ones (nothing stored), malformed JSON, an empty batch, a batch key
// reused with another body, and a body past the size bound.
func TestAnswerUsageIsWhatPostUsageAnswers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	httpTenant, httpKey := e.tenant(t, "over-http")
	natsTenant, natsKey := e.tenant(t, "over-nats")
	e.grant(t, httpKey, "g", "100")
	e.grant(t, natsKey, "g", "100")
	answerer := httpapi.NewUsageAnswerer(httpapi.Config{Writer: e.engine, Clock: e.clock.Now})

	huge := `{"events":[{"id":"h","amount":"1","description":"` + strings.Repeat("x", 4<<20) + `"}]}`
	steps := []struct {
		name, body, key string
	}{
		{"accepted", `{"events":[{"id":"a","amount":"1.5","module":"search"},{"id":"b","amount":"2"}]}`, ""},
		{"repeated", `{"events":[{"id":"a","amount":"1.5","module":"search"},{"id":"b","amount":"2"}]}`, ""},
		{"refused by the rules", `{"events":[{"id":"c","amount":"1000"}]}`, ""},
		{"id conflict", `{"events":[{"id":"a","amount":"7"}]}`, ""},
		{"a malformed event among good ones", `{"events":[{"id":"d","amount":"1"},{"id":"e","amount":"x"},{"id":"","amount":"-1"}]}`, ""},
		{"after the malformed batch, nothing of it is stored", `{"events":[{"id":"d","amount":"1"}]}`, ""},
		{"malformed JSON", `{"events":[{"id":"f",`, ""},
		{"not an object", `[1,2]`, ""},
		{"empty batch", `{"events":[]}`, ""},
		{"unknown field", `{"events":[{"id":"g","amount":"1","amont":"2"}]}`, ""},
		{"bytes that are not UTF-8", "{\"events\":[{\"id\":\"u\xff\xfe\",\"amount\":\"1\"}]}", ""},
		{"batch key", `{"events":[{"id":"k1","amount":"1"}]}`, "batch-1"},
		{"batch key repeated", `{"events":[{"id":"k1","amount":"1"}]}`, "batch-1"},
		{"batch key with another body", `{"events":[{"id":"k2","amount":"1"}]}`, "batch-1"},
		{"malformed batch key", `{"events":[{"id":"k3","amount":"1"}]}`, strings.Repeat("k", 1000)},
		{"past the size bound", huge, ""},
	}
	for _, step := range steps {
		var headers []string
		if step.key != "" {
			headers = []string{"Idempotency-Key", step.key}
		}
		overHTTP := e.call(t, "POST", "/v1/usage", httpKey, raw(step.body), headers...)
		status, answer := answerer.AnswerUsage(context.Background(), natsTenant, []byte(step.body), step.key, "credits.record.2")
		if status != overHTTP.Status {
			t.Errorf("%s: AnswerUsage status %d, POST /v1/usage %d (%s)", step.name, status, overHTTP.Status, overHTTP.Body)
			continue
		}
		if got, want := comparable(t, answer), comparable(t, overHTTP.Body); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: AnswerUsage answered\n%s\nPOST /v1/usage answered\n%s", step.name, answer, overHTTP.Body)
		}
	}
	for _, tenant := range []int64{httpTenant, natsTenant} {
		if used := e.line(t, tenant, "default").Used; used.String() != "5.5" {
			t.Errorf("tenant %d used %s, want 5.5 (a, b, d, k1)", tenant, used)
		}
	}

	t.Run("a subject that names no tenant is an unknown tenant", func(t *testing.T) {
		status, answer := answerer.AnswerUsage(context.Background(), 0, []byte(`{"events":[{"id":"z","amount":"1"}]}`), "", "credits.record.abc")
		var p map[string]any
		if err := json.Unmarshal(answer, &p); err != nil || status != http.StatusNotFound || p["instance"] != "credits.record.abc" {
			t.Fatalf("status %d, answer %s: want a 404 problem naming the subject", status, answer)
		}
	})
}

// comparable is an answer without what differs from request to request:
// the request id and instance of a problem, the log positions of results.
func comparable(t *testing.T, body []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, body)
	}
	var strip func(any)
	strip = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, k := range []string{"request_id", "instance", "position"} {
				delete(v, k)
			}
			for _, x := range v {
				strip(x)
			}
		case []any:
			for _, x := range v {
				strip(x)
			}
		}
	}
	strip(v)
	return v
}
