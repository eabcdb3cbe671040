package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/creditd/creditd/commands"
)

type createTenantRequest struct {
	Name     string `json:"name" required:"true"`
	Email    string `json:"email"`
	Currency string `json:"currency"`
}

type tenantResponse struct {
	TenantID  int64     `json:"tenant_id"`
	Name      string    `json:"name"`
	Email     string    `json:"email,omitempty"`
	Currency  string    `json:"currency"`
	CreatedAt time.Time `json:"created_at"`
	// APIKey is present only in the answer that created the tenant.
	APIKey   string `json:"api_key,omitempty"`
	KeyID    string `json:"key_id,omitempty"`
	Status   string `json:"status" enum:"accepted,duplicate"`
	Position uint64 `json:"position"`
}

func (a *API) createTenant(w http.ResponseWriter, r *http.Request) {
	var req createTenantRequest
	if err := decodeJSON(w, r, bodyMax, &req); err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	created, err := a.writer.CreateTenant(r.Context(), commands.CreateTenant{
		Name: req.Name, Email: req.Email, Currency: req.Currency, RequestKey: r.Header.Get("Idempotency-Key"),
	})
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	t := created.Tenant
	resp := tenantResponse{TenantID: t.ID, Name: t.Name, Email: t.Email, Currency: t.Currency, CreatedAt: t.CreatedAt,
		APIKey: created.APIKey, KeyID: created.KeyID, Status: statusText(created.Duplicate), Position: created.Position}
	writeJSON(w, createdStatus(created.Duplicate), resp)
}

func (a *API) issueAPIKey(w http.ResponseWriter, r *http.Request) {
	tenantID, err := pathTenant(r)
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	issued, err := a.writer.IssueAPIKey(r.Context(), tenantID)
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, apiKeyResponse{TenantID: tenantID, KeyID: issued.KeyID, APIKey: issued.APIKey, Position: issued.Position})
}

func (a *API) revokeAPIKey(w http.ResponseWriter, r *http.Request) {
	tenantID, err := pathTenant(r)
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	position, err := a.writer.RevokeAPIKey(r.Context(), tenantID, r.PathValue("key_id"))
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	writeJSON(w, http.StatusOK, revokedKeyResponse{TenantID: tenantID, KeyID: r.PathValue("key_id"), Revoked: true, Position: position})
}

func pathTenant(r *http.Request) (int64, error) {
	text := r.PathValue("tenant_id")
	id, err := strconv.ParseInt(text, 10, 64)
	if err != nil || id < 1 {
		p := newProblem(http.StatusBadRequest, "invalid-request", "the tenant id must be an integer ≥ 1")
		p.Errors = []ProblemError{{Location: "path.tenant_id", Message: "must be an integer ≥ 1", Value: text}}
		return 0, p
	}
	return id, nil
}

// apiKeyResponse answers POST /v1/tenants/{tenant_id}/api-keys.
type apiKeyResponse struct {
	TenantID int64  `json:"tenant_id"`
	KeyID    string `json:"key_id"`
	APIKey   string `json:"api_key"`
	Position uint64 `json:"position"`
}

// revokedKeyResponse answers DELETE /v1/tenants/{tenant_id}/api-keys/{key_id}.
type revokedKeyResponse struct {
	TenantID int64  `json:"tenant_id"`
	KeyID    string `json:"key_id"`
	Revoked  bool   `json:"revoked"`
	Position uint64 `json:"position"`
}

// statusText and createdStatus answer a repeat of a create with the
// original resource, as 200 "duplicate" instead of 201 "accepted".
func statusText(duplicate bool) string {
	if duplicate {
		return string(commands.StatusDuplicate)
	}
	return string(commands.StatusAccepted)
}

func createdStatus(duplicate bool) int {
	if duplicate {
		return http.StatusOK
	}
	return http.StatusCreated
}
