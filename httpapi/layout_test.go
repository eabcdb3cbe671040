package httpapi_test

import (
	"go/build"
	"slices"
	"testing"
)

// TestTheEdgeReachesTheEngineThroughCommandsAndQueries holds the rule of
// STYLE.md §2 for the HTTP edge: it imports neither the event store nor the
// projections; what it needs of them comes through commands, queries or
// interfaces it declares (Projection, foreignMessage, Config.WebhookSecret).
func TestTheEdgeReachesTheEngineThroughCommandsAndQueries(t *testing.T) {
	pkg, err := build.Default.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, forbidden := range []string{"github.com/creditd/creditd/eventstore", "github.com/creditd/creditd/projections"} {
		if slices.Contains(pkg.Imports, forbidden) {
			t.Errorf("httpapi imports %s", forbidden)
		}
	}
}
