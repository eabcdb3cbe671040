package commands

import (
	"context"
	"fmt"

	"github.com/creditd/creditd/domain"
)

// Line returns a copy of a line's write-side state, current as of the
// returned position. Reads for users come from the read models; this is
// for tests, tools and decisions that need the authoritative state.
func (e *Engine) Line(ctx context.Context, tenantID int64, creditType string) (*domain.Line, uint64, error) {
	var line *domain.Line
	var position uint64
	r := &request{tenantID: tenantID, done: make(chan error, 1), inspect: func(p *partition) {
		if l, ok := p.lines[lineRef{tenantID, creditType}]; ok {
			line = l.Clone()
		} else {
			line = domain.NewLine(creditType)
		}
		position = p.chain.lastSeq
	}}
	if err := e.submit(ctx, r); err != nil {
		return nil, 0, err
	}
	return line, position, nil
}

// reservationLine returns the credit type of the line a reservation was
// made on, or DefaultCreditType for an unknown reservation (the capture or
// release then answers not found).
func (e *Engine) reservationLine(ctx context.Context, tenantID int64, reservationID string) (string, error) {
	return e.lineOf(ctx, tenantID, kindReservation, reservationID)
}

func (e *Engine) lineOf(ctx context.Context, tenantID int64, kind, id string) (string, error) {
	creditType := domain.DefaultCreditType
	var lookupErr error
	r := &request{tenantID: tenantID, done: make(chan error, 1), inspect: func(p *partition) {
		ct, ok, err := p.lineOfKey(makeKey(tenantID, kind, id))
		if ok {
			creditType = ct
		}
		lookupErr = err
	}}
	if err := e.submit(ctx, r); err != nil {
		return "", err
	}
	if lookupErr != nil {
		return "", fmt.Errorf("%w: %v", ErrUnavailable, lookupErr)
	}
	return creditType, nil
}
