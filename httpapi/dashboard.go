package httpapi

import (
	"embed"
	"io/fs"
	"net/http"
)

// dashboardFiles is the built-in dashboard: plain HTML, CSS and JavaScript
// drawing its chart in SVG, reading only the public API with the tenant's
// key. Nothing to build, so nothing can drift from what is committed.
//
//go:embed dashboard
var dashboardFiles embed.FS

var dashboardAssets = func() http.Handler {
	sub, err := fs.Sub(dashboardFiles, "dashboard")
	if err != nil {
		panic(err)
	}
	return http.StripPrefix("/dashboard/", http.FileServerFS(sub))
}()

// dashboardSecurity keeps the page to its own origin.
func dashboardSecurity(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

func (a *API) dashboard(w http.ResponseWriter, r *http.Request) {
	dashboardSecurity(w)
	page, err := dashboardFiles.ReadFile("dashboard/index.html")
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(page)
}

func (a *API) dashboardAsset(w http.ResponseWriter, r *http.Request) {
	dashboardSecurity(w)
	dashboardAssets.ServeHTTP(w, r)
}
