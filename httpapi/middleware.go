package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"time"
)

type contextKey int

const (
	requestIDKey contextKey = iota
	tenantKey
	previousUseKey
	profileErrorsKey
)

// requestIDHeader carries the request id in and out; a client's own id is
// kept when it is short and printable.
const (
	requestIDHeader    = "X-Request-Id"
	requestIDLengthMax = 128
)

func (a *API) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(requestIDHeader)
		if id == "" || len(id) > requestIDLengthMax || strings.ContainsFunc(id, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
			b := make([]byte, 12)
			rand.Read(b)
			id = hex.EncodeToString(b)
		}
		w.Header().Set(requestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

// withProfileErrors marks a request under a compat profile's prefix with
// the profile's error conventions, which writeProblem follows. It wraps
// everything below the request id, so that every error of such a request
// follows them: a failed authentication, an unknown path or method, a
// panic.
func (a *API) withProfileErrors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if errs, ok := a.profileErrors[profileOf(r.URL.Path)]; ok {
			r = r.WithContext(context.WithValue(r.Context(), profileErrorsKey, errs))
		}
		next.ServeHTTP(w, r)
	})
}

// previousUse is when the tenant's key was last used before this request
// (since this process started), nil for a first use.
func previousUse(r *http.Request) *time.Time {
	if t, ok := r.Context().Value(previousUseKey).(time.Time); ok {
		return &t
	}
	return nil
}

func requestIDOf(r *http.Request) string {
	id, _ := r.Context().Value(requestIDKey).(string)
	return id
}

// withAccessLog logs each request with its request id, route, status and
// duration.
func (a *API) withAccessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		a.log.Info("request", "request_id", requestIDOf(r), "method", r.Method, "path", r.URL.Path,
			"status", rec.status, "duration_ms", float64(time.Since(start).Microseconds())/1000)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(status int) {
	s.status = status
	s.ResponseWriter.WriteHeader(status)
}

// withRecover turns a panic in a handler into a 500 problem; the stack goes
// to the log, never to the client.
func (a *API) withRecover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.log.Error("panic", "request_id", requestIDOf(r), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				writeProblem(w, r, a.log, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// bareOrBearer reads "Bearer <key>" or the bare key.
func bareOrBearer(r *http.Request) string {
	if key := bearer(r); key != "" {
		return key
	}
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if strings.ContainsAny(h, " \t") {
		return ""
	}
	return h
}

// tenantAuth authenticates the request's API key: every tenant route is
// scoped to that key's tenant and nothing else.
func (a *API) tenantAuth(bare bool, next func(w http.ResponseWriter, r *http.Request, tenantID int64)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := bearer(r)
		if bare {
			key = bareOrBearer(r)
		}
		if key == "" {
			writeProblem(w, r, a.log, unauthorized("send the tenant's API key as Authorization: Bearer <key>"))
			return
		}
		tenantID, ok := a.writer.Authenticate(key)
		if !ok {
			writeProblem(w, r, a.log, unauthorized("the API key is not valid"))
			return
		}
		ctx := context.WithValue(r.Context(), tenantKey, tenantID)
		if previous, ok := a.lastUsed.Swap(tenantID, a.cfg.Clock().UTC()); ok {
			ctx = context.WithValue(ctx, previousUseKey, previous.(time.Time))
		}
		next(w, r.WithContext(ctx), tenantID)
	})
}

// admin checks the admin token in constant time. Tenant keys are refused.
func (a *API) admin(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := bearer(r)
		if token == "" || a.cfg.AdminToken == "" || subtle.ConstantTimeCompare([]byte(token), []byte(a.cfg.AdminToken)) != 1 {
			writeProblem(w, r, a.log, unauthorized("this route needs the admin token as Authorization: Bearer <token>"))
			return
		}
		next(w, r)
	})
}

func unauthorized(detail string) *Problem {
	return newProblem(http.StatusUnauthorized, "unauthorized", detail)
}
