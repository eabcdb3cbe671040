package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/creditd/creditd/httpapi/internal/web"
	"github.com/creditd/creditd/queries"
)

type ledgerEntryJSON struct {
	ID           int64           `json:"id"`
	CreditType   string          `json:"credit_type"`
	Type         string          `json:"type" enum:"credit,debit,adjustment,expiry"`
	Amount       Number          `json:"amount"`
	BalanceAfter Number          `json:"balance_after"`
	SourceID     string          `json:"source_id"`
	Description  string          `json:"description"`
	Reference    string          `json:"reference"`
	Metadata     json.RawMessage `json:"metadata" types:"object,null"`
	CreatedAt    time.Time       `json:"created_at"`
	Position     uint64          `json:"position"`
}

type ledgerJSON struct {
	Entries    []ledgerEntryJSON `json:"entries"`
	Total      int               `json:"total"`
	Limit      int               `json:"limit"`
	Offset     int               `json:"offset"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// ledgerFilter reads the ledger's query parameters.
func ledgerFilter(r *http.Request) (queries.LedgerFilter, error) {
	var errs []error
	f := queries.LedgerFilter{
		Types:      listParam(r, "type"),
		CreditType: creditTypeParam(r, &errs),
		From:       web.InstantParam(r, "from", false, &errs),
		To:         web.InstantParam(r, "to", true, &errs),
		Limit:      web.IntParam(r, "limit", &errs),
		Offset:     web.IntParam(r, "offset", &errs),
		Cursor:     r.URL.Query().Get("cursor"),
	}
	// limit=abc is already "must be an integer": only a limit that parsed
	// as 0 is out of range here, so one mistake is one error.
	if limit, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && limit == 0 {
		errs = append(errs, &queries.ParamError{Param: "limit", Message: "must be between 1 and 100", Value: "0"})
	}
	// A cursor is a position of its own: with an offset too, the page
	// would depend on which one won.
	if f.Cursor != "" && r.URL.Query().Has("offset") {
		errs = append(errs, &queries.ParamError{Param: "offset", Message: "cannot be combined with cursor; follow next_cursor instead"})
	}
	if err := joinErrs(errs); err != nil {
		return f, err
	}
	return f, queries.ValidateLedgerFilter(&f)
}

func (a *API) ledger(w http.ResponseWriter, r *http.Request, tenantID int64) {
	f, err := ledgerFilter(r)
	if err != nil {
		a.writeReadError(w, r, err)
		return
	}
	page, err := a.reader.Ledger(r.Context(), tenantID, f)
	if err != nil {
		a.writeReadError(w, r, err)
		return
	}
	out := ledgerJSON{Entries: []ledgerEntryJSON{}, Total: page.Total, Limit: page.Limit, Offset: page.Offset, NextCursor: page.NextCursor}
	for _, e := range page.Entries {
		out.Entries = append(out.Entries, ledgerEntryJSON{ID: e.ID, CreditType: e.CreditType, Type: e.Type, Amount: Number(e.Amount),
			BalanceAfter: Number(e.BalanceAfter), SourceID: e.SourceID, Description: e.Description, Reference: e.Reference,
			Metadata: e.Metadata, CreatedAt: e.CreatedAt, Position: e.Position})
	}
	writeJSON(w, http.StatusOK, out)
}
