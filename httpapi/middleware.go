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
)

type contextKey int

const (
	requestIDKey contextKey = iota
	tenantKey
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

func requestIDOf(r *http.Request) string {
	id, _ := r.Context().Value(requestIDKey).(string)
	return id
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

// tenant authenticates the request's API key: every tenant route is
// scoped to that key's tenant and nothing else.
func (a *API) tenant(next func(w http.ResponseWriter, r *http.Request, tenantID int64)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := bearer(r)
		if key == "" {
			writeProblem(w, r, a.log, unauthorized("send the tenant's API key as Authorization: Bearer <key>"))
			return
		}
		tenantID, ok := a.writer.Authenticate(key)
		if !ok {
			writeProblem(w, r, a.log, unauthorized("the API key is not valid"))
			return
		}
		a.lastUsed.Store(tenantID, a.cfg.Clock().UTC())
		next(w, r.WithContext(context.WithValue(r.Context(), tenantKey, tenantID)), tenantID)
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
