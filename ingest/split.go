package ingest

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/creditd/creditd/commands"
)

// splitEvents returns the events of a message: one object, or the events
// of {"events": [...]}. The slices share the payload's bytes.
//
// It checks the message once (validJSON) and then walks the valid bytes by
// hand to find the top-level "events" array and cut out its elements: the
// reflective decoding into []json.RawMessage it replaces scanned every
// message twice and copied every event. Only the exact key "events" makes a batch (encoding/json would
// also have taken "Events" or an escaped spelling); an object with any
// other spelling is read as one event and refused there for its unknown
// field. When the key repeats, the last one counts, as in encoding/json.
func splitEvents(payload []byte) ([][]byte, error) {
	trimmed := bytes.TrimSpace(payload)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, errors.New("a message is a JSON object")
	}
	if !validJSON(trimmed) {
		return nil, errors.New("not valid JSON")
	}
	if !bytes.Contains(trimmed, []byte(`"events"`)) {
		return [][]byte{trimmed}, nil
	}
	array, found := topLevelMember(trimmed, "events")
	if !found || array[0] != '[' {
		// Not a batch (or "events": null): one event, which decoding
		// refuses for its unknown member.
		return [][]byte{trimmed}, nil
	}
	events := splitArray(array)
	if len(events) == 0 || len(events) > commands.UsageBatchMax {
		return nil, fmt.Errorf("a batch holds 1 to %d events", commands.UsageBatchMax)
	}
	return events, nil
}

// topLevelMember returns the value of the last member named name of the
// object obj, which must be valid JSON.
func topLevelMember(obj []byte, name string) (value []byte, found bool) {
	i := skipSpace(obj, 1)
	for i < len(obj) && obj[i] == '"' {
		keyEnd := skipString(obj, i)
		key := obj[i+1 : keyEnd-1]
		i = skipSpace(obj, keyEnd)
		i = skipSpace(obj, i+1) // the colon
		end := skipValue(obj, i)
		if string(key) == name {
			value, found = obj[i:end], true
		}
		i = skipSpace(obj, end)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	return value, found
}

// splitArray returns the elements of the valid JSON array arr.
func splitArray(arr []byte) [][]byte {
	var out [][]byte
	i := skipSpace(arr, 1)
	for i < len(arr) && arr[i] != ']' {
		end := skipValue(arr, i)
		out = append(out, arr[i:end])
		i = skipSpace(arr, end)
		if i < len(arr) && arr[i] == ',' {
			i = skipSpace(arr, i+1)
		}
	}
	return out
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index after the valid JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	default: // a number, true, false or null
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
			i++
		}
		return i
	}
}
