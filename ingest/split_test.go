package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/creditd/creditd/commands"
)

// splitEventsReflect is the reflective splitter splitEvents replaced, kept
// as the reference it is checked against.
func splitEventsReflect(payload []byte) ([]json.RawMessage, error) {
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, errors.New("a message is a JSON object")
	}
	var probe struct {
		Events []json.RawMessage `json:"events"`
	}
	if bytes.Contains(trimmed, []byte(`"events"`)) {
		if err := json.Unmarshal(trimmed, &probe); err == nil && probe.Events != nil {
			if len(probe.Events) == 0 || len(probe.Events) > commands.UsageBatchMax {
				return nil, fmt.Errorf("a batch holds 1 to %d events", commands.UsageBatchMax)
			}
			return probe.Events, nil
		}
	}
	if !json.Valid(trimmed) {
		return nil, errors.New("not valid JSON")
	}
	return []json.RawMessage{trimmed}, nil
}

// foldedKeys reports whether data may hold a key encoding/json matches to
// "events" by case folding or escapes, where splitEvents reads only the
// exact spelling on purpose.
func foldedKeys(data []byte) bool {
	return bytes.Count(bytes.ToLower(data), []byte("events")) != bytes.Count(data, []byte(`"events"`)) ||
		bytes.ContainsRune(data, '\\') || bytes.ContainsRune(data, 'ſ') || bytes.ContainsRune(data, 'K')
}

func checkSplit(t *testing.T, data []byte) {
	t.Helper()
	got, err := splitEvents(data)
	want, wantErr := splitEventsReflect(data)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("%q: error %v, reference %v", data, err, wantErr)
	}
	if err != nil {
		return
	}
	if len(got) != len(want) {
		t.Fatalf("%q: %d events, reference %d", data, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%q: event %d is %q, reference %q", data, i, got[i], want[i])
		}
	}
}

var splitCases = []string{
	`{"id":"a","amount":"1"}`,
	`  {"events":[{"id":"a"},{"id":"b"}]}  `,
	`{"events":[]}`,
	`{"events":null}`,
	`{"events":5}`,
	`{"events":"x"}`,
	`{"events":{"id":"a"}}`,
	`{"id":"events","amount":"1"}`,
	`{"a":{"events":[1]},"events":[ {"id":"x", "n":[1,{"b":"]"}]} , 2 ,"s\"]"]}`,
	`{"events":[1],"events":[2,3]}`,
	`{"events":[{"id":"a"}]`,
	`[{"id":"a"}]`,
	``,
	`{"events":[{"id":"a"}]} trailing`,
	"{\"events\"\n:\t[ {\"id\":\"a\"}\r\n, {\"id\":\"b\"} ] }",
	`{"x":"}{","events":[true,false,null,-1.5e3]}`,
}

func TestSplitEventsAgreesWithTheReflectiveSplitter(t *testing.T) {
	for _, c := range splitCases {
		checkSplit(t, []byte(c))
	}
	many := `{"events":[` + strings.Repeat(`{"id":"a"},`, commands.UsageBatchMax) + `{"id":"b"}]}`
	checkSplit(t, []byte(many))
}

// Only the exact key makes a batch: the reference took a case-folded key
// as the batch too when "events" appeared elsewhere in the message.
func TestSplitEventsReadsOnlyTheExactKey(t *testing.T) {
	got, err := splitEvents([]byte(`{"Events":[{"id":"a"},{"id":"b"}],"note":"events"}`))
	if err != nil || len(got) != 1 {
		t.Fatalf("got %d events, err %v; want the message as one event", len(got), err)
	}
}

func FuzzSplitEvents(f *testing.F) {
	for _, c := range splitCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if foldedKeys(data) {
			// Still must not panic, and must hand back slices of data.
			_, _ = splitEvents(data)
			return
		}
		checkSplit(t, data)
	})
}

func BenchmarkSplitEvents(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"events":[`)
	for i := range 100 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"id":"bench-%d","amount":"0.002","occurred_at":"2026-12-03T10:00:00Z","module":"chat","service":"gpt","user":"u-%d"}`, i, i%7)
	}
	sb.WriteString(`]}`)
	data := []byte(sb.String())
	b.Run("hand", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := splitEvents(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reflect", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := splitEventsReflect(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func FuzzValidJSON(f *testing.F) {
	for _, c := range splitCases {
		f.Add([]byte(c))
	}
	for _, c := range []string{`0`, `-0.5e+3`, `01`, `1.`, `.5`, `-`, `1e`, `"\u00e9\n"`, `"\x"`, `"\u12"`, "\"a\x01\"", `[1,]`, `{"a"}`, `{"a":1,}`, `[[[]]]`, ` true `, `nul`, `{"a":[{"b":null}]}`, strings.Repeat("[", 10001) + strings.Repeat("]", 10001), strings.Repeat("[", 10000) + strings.Repeat("]", 10000)} {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := validJSON(data), json.Valid(data); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid %v", data, got, want)
		}
	})
}
