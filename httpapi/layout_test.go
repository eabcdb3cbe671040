package httpapi_test

import (
	"go/build"
	"path"
	"slices"
	"strings"
	"testing"
)

// TestTheEdgeReachesTheEngineThroughCommandsAndQueries holds the rule of
// STYLE.md §2 for the HTTP edge: neither httpapi nor the packages it keeps
// below it (the compat profiles, the shared web helpers) import the event
// store or the projections; what they need of them comes through commands,
// queries or interfaces they declare (Projection, foreignMessage,
// Config.WebhookSecret, compat.Reader).
func TestTheEdgeReachesTheEngineThroughCommandsAndQueries(t *testing.T) {
	for _, dir := range []string{"", "compat", "internal/web"} {
		pkg, err := build.Default.ImportDir(path.Join(".", dir), 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, forbidden := range []string{"github.com/creditd/creditd/eventstore", "github.com/creditd/creditd/projections"} {
			if slices.Contains(pkg.Imports, forbidden) {
				t.Errorf("%s imports %s", path.Join("httpapi", dir), forbidden)
			}
		}
	}
}

// TestTheCompatProfilesLiveInTheirOwnPackage keeps native and compat apart:
// a profile's code belongs in httpapi/compat, not in a compat_*.go of
// httpapi. (The profiles' tests stay here as compat_*_test.go: they drive
// the whole API over HTTP with the native tests' helpers.)
func TestTheCompatProfilesLiveInTheirOwnPackage(t *testing.T) {
	pkg, err := build.Default.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Concat(pkg.GoFiles, pkg.CgoFiles, pkg.IgnoredGoFiles) {
		if strings.HasPrefix(name, "compat_") && !strings.HasSuffix(name, "_test.go") {
			t.Errorf("httpapi/%s: a compat profile's code belongs in httpapi/compat", name)
		}
	}
	profiles, err := build.Default.ImportDir("compat", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lantern.go", "account.go", "tamtam.go", "lasso.go", "openrouter.go"} {
		if !slices.Contains(profiles.GoFiles, want) {
			t.Errorf("httpapi/compat has no %s", want)
		}
	}
}
