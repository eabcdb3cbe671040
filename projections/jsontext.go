package projections

import (
	"maps"
	"slices"

	"github.com/creditd/creditd/domain"
)

// The read models store small JSON objects (ledger metadata, the cube's
// custom map). They are written by hand, keys in a fixed order: the same
// text for the same content, and no reflection on the apply path.

func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// jsonObject writes pairs in the given order, skipping empty values.
func jsonObject(pairs ...string) string {
	b := make([]byte, 0, 64)
	b = append(b, '{')
	first := true
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, pairs[i])
		b = append(b, ':')
		b = appendJSONString(b, pairs[i+1])
	}
	return string(append(b, '}'))
}

func sortedPairs(m map[string]string, prefix string) []string {
	pairs := make([]string, 0, 2*len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		pairs = append(pairs, prefix+k, m[k])
	}
	return pairs
}

func metadataJSON(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	return jsonObject(sortedPairs(m, "")...)
}

// customJSON is the canonical text of a custom map: keys sorted, ” when
// empty, so equal maps share a cube row.
func customJSON(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	return jsonObject(sortedPairs(m, "")...)
}

// dimensionsJSON is a usage's dimensions as ledger metadata.
func dimensionsJSON(d domain.Dimensions) string {
	pairs := []string{"module", d.Module, "service", d.Service, "user_id", d.UserID,
		"workflow_id", d.WorkflowID, "workflow_run_id", d.WorkflowRunID, "endpoint", d.Endpoint}
	return jsonObject(append(pairs, sortedPairs(d.Custom, "custom.")...)...)
}
