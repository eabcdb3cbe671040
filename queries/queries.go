// Package queries answers reads from the SQLite read models that package
// projections builds. Every query is scoped to one tenant by its caller (the
// API key's tenant); no query takes a tenant from user input.
package queries

import (
	"database/sql"
	"errors"
	"time"

	"github.com/shopspring/decimal"
)

// Reader runs queries on the read-only pool.
type Reader struct {
	db *sql.DB
}

// New returns a Reader on a read-only connection pool.
func New(db *sql.DB) *Reader { return &Reader{db: db} }

// ErrInvalidQuery wraps a *ParamError set: a parameter is malformed.
var ErrInvalidQuery = errors.New("invalid query")

// ParamError names one bad query parameter.
type ParamError struct {
	Param   string
	Message string
	Value   string
}

func (e *ParamError) Error() string { return e.Param + ": " + e.Message }

// Unwrap makes errors.Is(err, ErrInvalidQuery) hold.
func (e *ParamError) Unwrap() error { return ErrInvalidQuery }

func fromMicro(v int64) decimal.Decimal { return decimal.New(v, -6) }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func dayStart(day int64) time.Time { return time.Unix(day*86400, 0).UTC() }

// dayOf is t's UTC day from the epoch, floored: before 1970 it is negative.
func dayOf(t time.Time) int64 { return floorDiv(t.Unix(), 86400) }

func joinParams(errs []error) error { return errors.Join(errs...) }

// ParamErrors lists the *ParamError values joined in err.
func ParamErrors(err error) []*ParamError {
	switch e := err.(type) {
	case nil:
		return nil
	case *ParamError:
		return []*ParamError{e}
	case interface{ Unwrap() []error }:
		var out []*ParamError
		for _, inner := range e.Unwrap() {
			out = append(out, ParamErrors(inner)...)
		}
		return out
	}
	var pe *ParamError
	if errors.As(err, &pe) {
		return []*ParamError{pe}
	}
	return nil
}
