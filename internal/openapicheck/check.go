// Package openapicheck holds the HTTP exchanges of tests against creditd's
// own /openapi.json, so the document cannot claim less or other than the
// server does: a test server wrapped by Wrap fails its test for every
// answer whose status, headers or body the document does not describe,
// and for every request the server accepted that the document refuses.
package openapicheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Checker checks exchanges against one document.
type Checker struct {
	router routers.Router
}

// New loads and validates an OpenAPI document.
func New(doc []byte) (*Checker, error) {
	loader := openapi3.NewLoader()
	spec, err := loader.LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("load the document: %w", err)
	}
	if err := spec.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("the document is not valid OpenAPI: %w", err)
	}
	router, err := gorillamux.NewRouter(spec)
	if err != nil {
		return nil, fmt.Errorf("route the document: %w", err)
	}
	return &Checker{router: router}, nil
}

// options make every departure an error: an undocumented status too (the
// library allows one by default). Authentication is the server's business,
// not the document's.
var options = &openapi3filter.Options{
	MultiError:            true,
	IncludeResponseStatus: true,
	AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
}

// Check returns how one exchange departs from the document, nil when it
// does not. A request the document refuses is fine when the server refused
// it too (any 4xx); the refusal itself must then be documented.
func (c *Checker) Check(req *http.Request, requestBody []byte, status int, header http.Header, body []byte) error {
	req = req.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(requestBody))
	if len(requestBody) > 0 && req.Header.Get("Content-Type") == "" {
		// creditd reads a body as JSON whatever its Content-Type, and its
		// document says so.
		req.Header.Set("Content-Type", "application/json")
	}
	route, pathParams, err := c.router.FindRoute(req)
	if err != nil {
		if status < 400 {
			return fmt.Errorf("answered %d on a route the document does not have: %w", status, err)
		}
		return nil // an unknown route's 404 or 405 is no operation's answer
	}
	input := &openapi3filter.RequestValidationInput{Request: req, PathParams: pathParams, Route: route, Options: options}
	var errs []error
	if err := openapi3filter.ValidateRequest(context.Background(), input); err != nil && status < 400 {
		errs = append(errs, fmt.Errorf("answered %d to a request the document refuses: %w", status, err))
	}
	response := &openapi3filter.ResponseValidationInput{RequestValidationInput: input, Status: status, Header: header, Options: options}
	response.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), response); err != nil {
		errs = append(errs, fmt.Errorf("the %d answer is not what the document describes: %w", status, err))
	}
	return errors.Join(errs...)
}

// Handler serves h and reports every exchange that departs from the
// document to report, which must be safe for concurrent use.
func (c *Checker) Handler(h http.Handler, report func(error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requestBody, err := io.ReadAll(r.Body)
		if err != nil {
			report(fmt.Errorf("%s %s: read the request body: %w", r.Method, r.URL, err))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(requestBody))
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		if err := c.Check(r, requestBody, rec.status, w.Header(), rec.body.Bytes()); err != nil {
			report(fmt.Errorf("%s %s: %w", r.Method, r.URL, err))
		}
	})
}

// recorder passes an answer through and keeps a copy.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

// checkers caches one Checker per document text: every server of a test
// process serves the same document, and loading it costs milliseconds.
var (
	checkersMu sync.Mutex
	checkers   = map[string]*Checker{}
)

// reportMax bounds how many departures a failed test lists.
const reportMax = 20

// Wrap returns h checked against the document h itself serves at
// /openapi.json; t fails at cleanup, after its servers closed, listing the
// exchanges that departed from it.
func Wrap(t testing.TB, h http.Handler) http.Handler {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /openapi.json: status %d: %s", rec.Code, rec.Body)
	}
	doc := rec.Body.String()
	checkersMu.Lock()
	c, ok := checkers[doc]
	if !ok {
		var err error
		if c, err = New([]byte(doc)); err != nil {
			checkersMu.Unlock()
			t.Fatalf("openapi.json: %v", err)
		}
		checkers[doc] = c
	}
	checkersMu.Unlock()

	var mu sync.Mutex
	var departures []string
	total := 0
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if total > 0 {
			t.Errorf("%d exchanges depart from /openapi.json (the first %d):\n%s", total, len(departures), joinLines(departures))
		}
	})
	return c.Handler(h, func(err error) {
		mu.Lock()
		defer mu.Unlock()
		total++
		if len(departures) < reportMax {
			departures = append(departures, err.Error())
		}
	})
}

func joinLines(lines []string) string {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString("  ")
		b.WriteString(l)
		b.WriteString("\n")
	}
	return b.String()
}
