package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/creditd/creditd/domain"
)

type reserveRequest struct {
	ReservationID string `json:"reservation_id"`
	CreditType    string `json:"credit_type"`
	Amount        Amount `json:"amount" required:"true"`
	TTLSeconds    int64  `json:"ttl_seconds"`
	dimensionsRequest
}

type reservationResponse struct {
	ReservationID string     `json:"reservation_id"`
	CreditType    string     `json:"credit_type,omitempty"`
	State         string     `json:"state" enum:"held,captured,released"`
	Amount        Number     `json:"amount"`
	Captured      *Number    `json:"captured,omitempty"`
	Released      *Number    `json:"released,omitempty"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	Status        string     `json:"status" enum:"accepted,duplicate"`
	Position      uint64     `json:"position"`
}

func (a *API) reserve(w http.ResponseWriter, r *http.Request, tenantID int64) {
	var req reserveRequest
	if err := decodeJSON(w, r, bodyMax, &req); err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	var check fieldCheck
	req.Amount.check(&check, "amount", true)
	dims := req.dimensions(&check, "")
	if req.TTLSeconds < 0 || req.TTLSeconds > int64(domain.ReservationTTLMax/time.Second) {
		check.add("ttl_seconds", "must be between 1 and 604800 (omit it for the 300 s default)", req.TTLSeconds)
	}
	reservationID := writeID(&check, r, req.ReservationID, "reservation_id", "res_")
	if err := check.err(); err != nil {
		writeProblem(w, r, a.log, validationProblem("body.", err))
		return
	}
	c := domain.Reserve{
		ReservationID: reservationID, Amount: req.Amount.Value, TTL: time.Duration(req.TTLSeconds) * time.Second,
		Dimensions: dims,
	}
	creditType := creditTypeOrDefault(req.CreditType)
	if err := errors.Join(domain.ValidateCreditType(creditType), c.Validate()); err != nil {
		writeProblem(w, r, a.log, validationProblem("body.", err))
		return
	}
	res, err := a.writer.Reserve(r.Context(), tenantID, creditType, c)
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	e := res.Events[0].(domain.CreditsReserved)
	writeJSON(w, createdStatus(res.Duplicate), reservationResponse{ReservationID: e.ReservationID, CreditType: creditType, State: "held",
		Amount: Number(e.Amount), ExpiresAt: &e.ExpiresAt, Status: string(res.Status), Position: res.Position})
}

type captureRequest struct {
	Amount     Amount `json:"amount"`
	CreditType string `json:"credit_type"`
}

func (a *API) capture(w http.ResponseWriter, r *http.Request, tenantID int64) {
	var req captureRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, bodyMax, &req); err != nil {
			writeProblem(w, r, a.log, err)
			return
		}
	}
	var check fieldCheck
	check.creditType("credit_type", req.CreditType, true)
	req.Amount.check(&check, "amount", false)
	if err := check.err(); err != nil {
		writeProblem(w, r, a.log, validationProblem("body.", err))
		return
	}
	c := domain.Capture{ReservationID: r.PathValue("reservation_id")}
	if req.Amount.Set {
		c.Amount = &req.Amount.Value
	}
	res, err := a.writer.Capture(r.Context(), tenantID, req.CreditType, c)
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	e := res.Events[0].(domain.ReservationCaptured)
	captured, released := Number(e.Amount), Number(e.Released)
	writeJSON(w, http.StatusOK, reservationResponse{ReservationID: e.ReservationID, State: "captured", Amount: Number(e.Amount.Add(e.Released)),
		Captured: &captured, Released: &released, Status: string(res.Status), Position: res.Position})
}

func (a *API) release(w http.ResponseWriter, r *http.Request, tenantID int64) {
	creditType, ok := a.queryCreditType(w, r)
	if !ok {
		return
	}
	res, err := a.writer.Release(r.Context(), tenantID, creditType, r.PathValue("reservation_id"))
	if err != nil {
		writeProblem(w, r, a.log, err)
		return
	}
	e := res.Events[0].(domain.ReservationReleased)
	released := Number(e.Amount)
	writeJSON(w, http.StatusOK, reservationResponse{ReservationID: e.ReservationID, State: "released", Amount: Number(e.Amount),
		Released: &released, Status: string(res.Status), Position: res.Position})
}
