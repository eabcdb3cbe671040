package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
)

// idempotencyKeyHeader keys a write. One rule on every POST that has an
// id: when the header and the write's id (in the body or the path) are both
// given they must be equal, else 400; the header alone is the id. A repeat
// of an id with the same request answers the original outcome; with a
// different request it is a 409 (per event inside a usage batch: status
// "conflict"). README "Idempotency" states the rule for clients.
const idempotencyKeyHeader = "Idempotency-Key"

// writeID picks a write's id: the body's, else the header, else a fresh
// random one; a header unlike the body's id is reported on check.
func writeID(check *fieldCheck, r *http.Request, bodyID, field, prefix string) string {
	key := r.Header.Get(idempotencyKeyHeader)
	switch {
	case key != "" && bodyID != "" && key != bodyID:
		check.add("header."+idempotencyKeyHeader, "must equal body."+field+" when both are given", key)
		return bodyID
	case bodyID != "":
		return bodyID
	case key != "":
		return key
	}
	b := make([]byte, 12)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// pathIDMatchesKey answers a 400 and reports false when the header names
// another write than the path's id (capture, release, void, reverse).
func (a *API) pathIDMatchesKey(w http.ResponseWriter, r *http.Request, wildcard string) bool {
	key, id := r.Header.Get(idempotencyKeyHeader), r.PathValue(wildcard)
	if key == "" || key == id {
		return true
	}
	p := newProblem(http.StatusBadRequest, "invalid-request", "the Idempotency-Key header names another write than the path")
	p.Errors = []ProblemError{{Location: "header." + idempotencyKeyHeader, Message: "must equal path." + wildcard + " when both are given", Value: key}}
	writeProblem(w, r, a.log, p)
	return false
}
