package httpapi

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
)

// usageEventJSON is a usage event with every dimension set, the shape a
// busy producer sends.
func usageEventJSON(i int) string {
	return fmt.Sprintf(`{"id":"evt_%08d","timestamp":"2026-03-01T12:00:00.123Z","amount":"0.25","credit_type":"default",`+
		`"module":"search","service":"api","user_id":"user_42","workflow_id":"wf_7","workflow_run_id":"run_%d",`+
		`"endpoint":"/v1/search","success":true,"quantity":"3","custom":{"region":"eu","tier":"pro"},"description":"one search"}`, i, i)
}

// BenchmarkDecodeUsageEvent measures the NATS ingest path's decoding of
// one event, the hot path of ingest.
func BenchmarkDecodeUsageEvent(b *testing.B) {
	data := []byte(usageEventJSON(1))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeUsageEvent(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeUsageMessage measures the NATS ingest path's decoding of
// a message of 100 events, one after the other through one decoder, as
// ingest decodes a producer's batch. Per event.
func BenchmarkDecodeUsageMessage(b *testing.B) {
	events := make([][]byte, 100)
	for i := range events {
		events[i] = []byte(usageEventJSON(i))
	}
	b.SetBytes(int64(len(events[0])))
	b.ReportAllocs()
	for b.Loop() {
		var dec UsageEventDecoder
		for _, data := range events {
			if _, err := dec.Decode(data); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkDecodeUsageBatch measures POST /v1/usage's decoding of a full
// batch of 1000 events, body to request type.
func BenchmarkDecodeUsageBatch(b *testing.B) {
	parts := make([]string, 1000)
	for i := range parts {
		parts[i] = usageEventJSON(i)
	}
	body := []byte(`{"events":[` + strings.Join(parts, ",") + `]}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "/v1/usage", bytes.NewReader(body))
		var req usageBatchRequest
		if err := decodeJSON(httptest.NewRecorder(), r, usageBodyMax, &req); err != nil {
			b.Fatal(err)
		}
	}
}
