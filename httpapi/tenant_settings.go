package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/creditd/creditd/commands"
)

type settingsRequest struct {
	Currency       string          `json:"currency"`
	CurrencyConfig json.RawMessage `json:"currency_config" types:"object,null"`
}

type settingsResponse struct {
	Currency       string          `json:"currency"`
	CurrencyConfig json.RawMessage `json:"currency_config" types:"object,null"`
	Position       uint64          `json:"position"`
}

func (a *API) configureSettings(w http.ResponseWriter, r *http.Request, tenantID int64) {
	var req settingsRequest
	if err := decodeJSON(w, r, bodyMax, &req); err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	if string(req.CurrencyConfig) == "null" {
		req.CurrencyConfig = nil
	}
	t, position, err := a.writer.ConfigureSettings(r.Context(), tenantID, commands.Settings{Currency: req.Currency, CurrencyConfig: req.CurrencyConfig})
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	config := t.CurrencyConfig
	if config == nil {
		config = json.RawMessage("{}")
	}
	writeJSON(w, http.StatusOK, settingsResponse{Currency: t.Currency, CurrencyConfig: config, Position: position})
}
