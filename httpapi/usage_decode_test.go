package httpapi

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// usageDecodeSeeds are bodies and events in the forms producers send and
// in forms the hand-written decoder leaves to json v2.
var usageDecodeSeeds = []string{
	usageEventJSON(1),
	`{"id":"u1","amount":"2.5","module":"search","custom":{"region":"eu"}}`,
	`{"id":"u1","amount":1e3,"timestamp":"2026-01-02T03:04:05Z","success":false,"quantity":"3"}`,
	`{"id":"u1","amount":-0.000001,"timestamp":"2026-01-02T03:04:05.123456789123+05:30","success":true,"quantity":0}`,
	`{"id":"u1","amount":" 2 ","timestamp":"2026-02-29T00:00:00Z","quantity":"1e2"}`,
	`{"id":"u1","amount":"123456789012345678901234567890","timestamp":"2024-02-29T23:59:59-23:59"}`,
	`{"id":"u1","amount":1234567890123456789,"timestamp":"2026-01-02t03:04:05z"}`,
	`{"id":"u1","amount":"007","quantity":007}`,
	`{"id":"u1","amount":"+5","quantity":"−1.5","timestamp":"2026-01-02T03:04:05,5Z"}`,
	`{"id":"u1","amount":"1.","quantity":".5","timestamp":"2026-01-02 03:04:05Z"}`,
	`{"id":"u1","amount":{},"quantity":[1],"timestamp":{"a":1}}`,
	`{"id":"u1","amount":true,"timestamp":123}`,
	"{ \"id\" : \"u1\" ,\n\t\"amount\" : \"1\" , \"custom\" : { \"a\" : \"b\" , \"c\" : null } }\r\n",
	`{"id":null,"amount":null,"timestamp":null,"success":null,"custom":null,"quantity":null,"description":null}`,
	`{"id":"u\u0031\n\t\"\\\/\b\f\r","amount":"\u0031.5","timestamp":"2026-01-02T03:04:05\u005a","description":"caf\u00e9 \u2028 \ud83d\ude00"}`,
	`{"id":"\ud800","amount":"1"}`, `{"id":"\udc00x"}`, `{"id":"\u12"}`, `{"id":"\x"}`,
	"{\"id\":\"u\xff\",\"amount\":1}", "{\"id\":\"u\x01\"}", "{\"custom\":{\"\xff\":\"x\"}}",
	`{"id":"u","custom":{}}`, `{"id":"u","custom":{"a":"1","a":"2"}}`, `{"id":"u","custom":{"a":"1","\u0061":"2"}}`,
	`{"id":"u","custom":{"a":1}}`, `{"id":"u","custom":[]}`, `{"id":"u","custom":{"":""}}`,
	`{"id":"u","id":"v"}`, `{"id":"u","ID":"v"}`, `{"i\u0064":"u"}`, `{"id":"u","bogus":1}`, `{"id":"u",}`, `{"id":"u"`,
	`{"id":"u"} x`, `{"id":"u"}{}`, `[]`, `null`, ``, ` `, `{}`, `"x"`, `{"id":5}`, `{"success":"true"}`, `{"success":truex}`,
	`{"events":[]}`, `{"events":null}`, `{"events":[null]}`, `{"events":{}}`, `{"events":[],"events":[]}`, `{"Events":[]}`,
	`{"events":[{"id":"a","amount":"1"},{"id":"b","amount":2.50}]}`, ` {"events" : [ {"id":"a"} , {"id":"b"} ] } `,
	`{"events":[{"id":"a"},]}`, `{"events":[{"id":"a"}`, `{"events":[{"id":"a","amount":"1"}],"x":1}`,
	`{"id":"u","timestamp":"2026-13-01T00:00:00Z"}`, `{"id":"u","timestamp":"2026-02-30T00:00:00Z"}`,
	`{"id":"u","timestamp":"2026-01-01T24:00:00Z"}`, `{"id":"u","timestamp":"2026-01-01T00:00:60Z"}`,
	`{"id":"u","timestamp":"2026-01-01T00:00:00+24:00"}`, `{"id":"u","timestamp":"2026-01-01T00:00:00.Z"}`,
	`{"id":"u","timestamp":"0000-01-01T00:00:00Z"}`, `{"id":"u","timestamp":"1969-12-31T23:59:59.999999999Z"}`,
	`{"id":"u","timestamp":"2026-01-01T00:00:00+0100"}`, `{"id":"u","timestamp":"2026-01-01T00:00:00"}`, `{"id":"u","timestamp":""}`,
}

// usageDecodeOld is the reference: json v2 by reflection, as before.
func usageDecodeOld(body []byte) (usageBatchRequest, *Problem) {
	var req usageBatchRequest
	return req, decodeBody(body, &req)
}

// sameCustom makes an empty custom map nil: the one value the hand-written
// decoder gives on purpose in another form (see usage_decode.go).
func sameCustom(events ...*usageEventRequest) {
	for _, ev := range events {
		if ev.Custom != nil && len(ev.Custom) == 0 {
			ev.Custom = nil
		}
	}
}

// checkUsageDecode asserts that decodeUsageBody and decodeUsageEvent
// answer as json v2 on body, with the same values or the same problem (the
// values of a refused body are not used), and that the hand-written
// decoder accepts only what json v2 accepts.
func checkUsageDecode(t *testing.T, body []byte) {
	t.Helper()
	want, wantProblem := usageDecodeOld(body)
	var got usageBatchRequest
	gotProblem := decodeUsageBody(body, &got)
	for i := range want.Events {
		sameCustom(&want.Events[i])
	}
	switch {
	case !reflect.DeepEqual(gotProblem, wantProblem):
		t.Fatalf("body %q: problem %+v, json v2 %+v", body, gotProblem, wantProblem)
	case wantProblem == nil && !reflect.DeepEqual(got, want):
		t.Fatalf("body %q:\ngot      %#v\njson v2  %#v", body, got, want)
	}
	var fast usageBatchRequest
	if decodeUsageBatchFast(body, &fast) && wantProblem != nil {
		t.Fatalf("body %q: the hand-written decoder accepts what json v2 refuses (%+v)", body, wantProblem)
	}

	var wantEvent, gotEvent usageEventRequest
	wantEventProblem := decodeBody(body, &wantEvent)
	var fresh usageDecoder
	gotEventProblem := decodeUsageEvent(&fresh, body, &gotEvent)
	sameCustom(&wantEvent)
	switch {
	case !reflect.DeepEqual(gotEventProblem, wantEventProblem):
		t.Fatalf("event %q: problem %+v, json v2 %+v", body, gotEventProblem, wantEventProblem)
	case wantEventProblem == nil && !reflect.DeepEqual(gotEvent, wantEvent):
		t.Fatalf("event %q:\ngot      %#v\njson v2  %#v", body, gotEvent, wantEvent)
	}
	// Again on a decoder that decoded other events first, as the events
	// of one NATS message share one: what it kept from them (interned
	// strings and amounts, a half-read event's scratch) changes nothing.
	var warm usageDecoder
	for _, other := range [][]byte{[]byte(warmUsageEvent), body, []byte(`{"id":"x","amount":"1e3","module":"\u0073earch"`)} {
		var ignored usageEventRequest
		decodeUsageEvent(&warm, other, &ignored)
	}
	var again usageEventRequest
	againProblem := decodeUsageEvent(&warm, body, &again)
	switch {
	case !reflect.DeepEqual(againProblem, wantEventProblem):
		t.Fatalf("event %q on a used decoder: problem %+v, json v2 %+v", body, againProblem, wantEventProblem)
	case wantEventProblem == nil && !reflect.DeepEqual(again, wantEvent):
		t.Fatalf("event %q on a used decoder:\ngot      %#v\njson v2  %#v", body, again, wantEvent)
	}
}

// warmUsageEvent fills a decoder's caches before the event checked.
const warmUsageEvent = `{"id":"w1","amount":"2.5","credit_type":"credits","module":"search","service":"api","endpoint":"/v1/search",` +
	`"user_id":"user-7","workflow_id":"wf","description":"x","quantity":"0.001","success":true,"custom":{"region":"eu"}}`

// TestDecodeUsageMatchesJSONv2: every seed, alone as an event and in
// batches, decodes as json v2 decodes it.
func TestDecodeUsageMatchesJSONv2(t *testing.T) {
	t.Parallel()
	for i, seed := range usageDecodeSeeds {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			checkUsageDecode(t, []byte(seed))
			checkUsageDecode(t, []byte(`{"events":[`+seed+`]}`))
			checkUsageDecode(t, []byte(`{"events":[`+seed+`,`+usageEventJSON(2)+`]}`))
		})
	}
}

// TestDecodeUsageTakesTheFastPath: the bodies producers send are read by
// the hand-written decoder, not left to json v2.
func TestDecodeUsageTakesTheFastPath(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"every_field":                usageEventJSON(1),
		"numbers_and_nulls":          `{"id":"u","amount":2.5,"quantity":0,"timestamp":null,"success":null,"custom":null}`,
		"whitespace":                 "{ \"id\" : \"u\" ,\n\t\"amount\" : \"1\" }\r\n",
		"escapes":                    `{"id":"u\"\\\/\u00e9\n","description":"tab\there"}`,
		"time_in_a_zone":             `{"id":"u","timestamp":"2026-01-02T03:04:05.5-07:00"}`,
		"amount_with_spaces":         `{"id":"u","amount":" 2 "}`,
		"time_in_another_form":       `{"id":"u","timestamp":"2026-01-02T03:04:05,5Z"}`,
		"amount_of_many_digits":      `{"id":"u","amount":"123456789012345678901234567890"}`,
		"amount_not_a_number_at_all": `{"id":"u","amount":"abc"}`,
	} {
		t.Run(name, func(t *testing.T) {
			var ev usageEventRequest
			if !decodeUsageEventFast([]byte(body), &ev) {
				t.Errorf("the hand-written decoder gives up on %s", body)
			}
			var req usageBatchRequest
			if !decodeUsageBatchFast([]byte(`{"events":[`+body+`]}`), &req) {
				t.Errorf("the hand-written decoder gives up on a batch of %s", body)
			}
		})
	}
}

// FuzzDecodeUsageBody: any bytes, as a body, as one event and as an event
// of a batch, decode as json v2 decodes them, to the same values or the
// same problem; the hand-written decoder never accepts what json v2
// refuses.
func FuzzDecodeUsageBody(f *testing.F) {
	for _, seed := range usageDecodeSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkUsageDecode(t, data)
		checkUsageDecode(t, []byte(`{"events":[`+string(data)+`]}`))
	})
}

// BenchmarkDecodeUsageBody compares the hand-written decoder with json v2
// (the reflection-based decoder before it) on a body of 100 events.
func BenchmarkDecodeUsageBody(b *testing.B) {
	parts := make([]string, 100)
	for i := range parts {
		parts[i] = usageEventJSON(i)
	}
	body := []byte(`{"events":[` + strings.Join(parts, ",") + `]}`)
	for _, bc := range []struct {
		name   string
		decode func([]byte, *usageBatchRequest) *Problem
	}{
		// As recordUsage decodes: into a scratch's events.
		{"hand", func(body []byte, req *usageBatchRequest) *Problem {
			scratch := usageScratches.Get().(*usageScratch)
			defer scratch.release()
			req.Events = scratch.events[:0]
			p := decodeUsageBody(body, req)
			scratch.events = req.Events
			return p
		}},
		{"json_v2", func(body []byte, req *usageBatchRequest) *Problem { return decodeBody(body, req) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				var req usageBatchRequest
				if p := bc.decode(body, &req); p != nil || len(req.Events) != len(parts) {
					b.Fatal(p)
				}
			}
			b.ReportMetric(float64(b.N*len(parts))/b.Elapsed().Seconds(), "events/s")
		})
	}
}
