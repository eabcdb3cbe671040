package queries

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Page size bounds of list queries.
const (
	PageLimitDefault = 50
	PageLimitMax     = 100
	// offsetMax bounds offset paging; deeper pages use the cursor, which
	// costs the same at any depth.
	offsetMax = 100_000
)

// Ledger entry types.
var ledgerTypes = map[string]bool{"credit": true, "debit": true, "adjustment": true, "expiry": true}

// LedgerEntry is one credit movement.
type LedgerEntry struct {
	ID           int64
	CreditType   string
	Type         string
	Amount       decimal.Decimal
	BalanceAfter decimal.Decimal
	SourceID     string
	Description  string
	Reference    string
	Metadata     json.RawMessage
	CreatedAt    time.Time
	Position     uint64
}

// LedgerFilter selects ledger entries. Types empty means every type.
type LedgerFilter struct {
	Types      []string
	From, To   *time.Time
	CreditType string
	Limit      int
	Offset     int
	// Cursor continues after the last entry of a previous page.
	Cursor string
}

// LedgerPage is one page of entries, newest first.
type LedgerPage struct {
	Entries    []LedgerEntry
	Total      int
	Limit      int
	Offset     int
	NextCursor string
}

// ValidateLedgerFilter checks types, limit, offset and cursor; it fills the
// default limit, and names each type once: the occurrence ledger reads one
// run of entries per type named, and a type named twice listed its
// entries twice.
func ValidateLedgerFilter(f *LedgerFilter) error {
	var errs []error
	for _, t := range f.Types {
		if !ledgerTypes[t] {
			errs = append(errs, &ParamError{Param: "type", Message: "must be credit, debit, adjustment or expiry", Value: t})
		}
	}
	if len(f.Types) > 1 {
		types := slices.Clone(f.Types)
		slices.Sort(types)
		f.Types = slices.Compact(types)
	}
	switch {
	case f.Limit == 0:
		f.Limit = PageLimitDefault
	case f.Limit < 0 || f.Limit > PageLimitMax:
		errs = append(errs, &ParamError{Param: "limit", Message: fmt.Sprintf("must be between 1 and %d", PageLimitMax), Value: strconv.Itoa(f.Limit)})
	}
	if f.Offset < 0 || f.Offset > offsetMax {
		errs = append(errs, &ParamError{Param: "offset", Message: fmt.Sprintf("must be between 0 and %d (use cursor for deeper pages)", offsetMax), Value: strconv.Itoa(f.Offset)})
	}
	if f.Cursor != "" {
		if _, _, err := decodeCursor(f.Cursor); err != nil {
			errs = append(errs, &ParamError{Param: "cursor", Message: "is not a cursor this API returned", Value: f.Cursor})
		}
	}
	if f.From != nil && f.To != nil && f.From.After(*f.To) {
		errs = append(errs, &ParamError{Param: "from", Message: "must not be after to", Value: f.From.Format(time.RFC3339)})
	}
	return joinParams(errs)
}

// Ledger returns a page of the tenant's entries, newest first, and how many
// match in all.
func (r *Reader) Ledger(ctx context.Context, tenantID int64, f LedgerFilter) (LedgerPage, error) {
	if err := ValidateLedgerFilter(&f); err != nil {
		return LedgerPage{}, err
	}
	page := LedgerPage{Limit: f.Limit, Offset: f.Offset}
	total, err := r.ledgerTotal(ctx, tenantID, f)
	if err != nil {
		return page, err
	}
	page.Total = total
	query, args := ledgerPageQuery(tenantID, f)
	rows, err := r.db.QueryContext(ctx, query, args...)
	if err != nil {
		return page, err
	}
	defer rows.Close()
	var lastAt int64
	for rows.Next() {
		var e LedgerEntry
		var amount, balance, at int64
		var metadata string
		if err := rows.Scan(&e.ID, &e.CreditType, &e.Type, &amount, &balance, &e.SourceID, &e.Description, &e.Reference, &metadata, &at, &e.Position); err != nil {
			return page, err
		}
		e.Amount, e.BalanceAfter, e.CreatedAt, e.Metadata = fromMicro(amount), fromMicro(balance), fromMicros(at), json.RawMessage(metadata)
		page.Entries = append(page.Entries, e)
		lastAt = at
	}
	if err := rows.Err(); err != nil {
		return page, err
	}
	if len(page.Entries) == f.Limit {
		page.NextCursor = encodeCursor(lastAt, page.Entries[len(page.Entries)-1].ID)
	}
	return page, nil
}

// ledgerPageQuery is the query of a ledger page and its arguments.
func ledgerPageQuery(tenantID int64, f LedgerFilter) (string, []any) {
	where, args := ledgerFilterTerms(tenantID, f)
	if f.From != nil {
		where = append(where, "created_at >= ?")
		args = append(args, f.From.UnixMicro())
	}
	if f.To != nil {
		where = append(where, "created_at <= ?")
		args = append(args, f.To.UnixMicro())
	}
	offset := f.Offset
	if f.Cursor != "" {
		at, id, _ := decodeCursor(f.Cursor)
		where = append(where, "(created_at < ? OR (created_at = ? AND entry_id < ?))")
		args = append(args, at, at, id)
		offset = 0
	}
	return `SELECT entry_id, credit_type, type, amount, balance_after, source_id, description,
		reference, metadata, created_at, position FROM ledger` + ledgerIndex(f) + ` WHERE ` + strings.Join(where, " AND ") + `
		ORDER BY created_at DESC, entry_id DESC LIMIT ? OFFSET ?`, append(args, f.Limit, offset)
}

// notDebit is the condition of the ledger's type index
// (projections/schema.sql: debits, nearly every row, are left out of it),
// word for word: SQLite uses a partial index only for a query that states
// its condition, and cannot prove it from a bound type.
const notDebit = "type != 'debit'"

// ledgerIndex names the index a ledger query of f searches when it asks
// for one type other than debit: the type index, which holds that type's
// entries in time order and none of the debits. Without statistics SQLite
// otherwise took, with a credit type or a time range beside the type, the
// line's or the tenant's index, and read past every debit to find the
// entries of the type. Several types are left to SQLite: read from the
// type index, they would have to be sorted together.
func ledgerIndex(f LedgerFilter) string {
	if len(f.Types) == 1 && f.Types[0] != "debit" {
		return " INDEXED BY ledger_tenant_type_time"
	}
	return ""
}

// ledgerFilterTerms are the terms of a ledger filter's tenant, types and
// credit type. Types that leave debits out state notDebit too, so that one
// type is found through the type index rather than by reading the tenant's
// every entry.
func ledgerFilterTerms(tenantID int64, f LedgerFilter) ([]string, []any) {
	where, args := []string{"tenant_id = ?"}, []any{tenantID}
	if len(f.Types) > 0 {
		where = append(where, "type IN ("+placeholders(len(f.Types))+")")
		if !slices.Contains(f.Types, "debit") {
			where = append(where, notDebit)
		}
		for _, t := range f.Types {
			args = append(args, t)
		}
	}
	if f.CreditType != "" {
		where = append(where, "credit_type = ?")
		args = append(args, f.CreditType)
	}
	return where, args
}

// ledgerTotal counts the entries a filter matches: whole days from the
// daily counts, and the partial days at the edges of a time range from the
// ledger itself (at most two days of entries).
func (r *Reader) ledgerTotal(ctx context.Context, tenantID int64, f LedgerFilter) (int, error) {
	const dayMicros = 86400 * 1e6
	// Days wholly inside [from, to]; an open end reaches every day.
	fromMicros, toMicros := int64(math.MinInt64), int64(math.MaxInt64)
	firstFull, lastFull := int64(math.MinInt32), int64(math.MaxInt32)
	if f.From != nil {
		fromMicros = f.From.UnixMicro()
		firstFull = ceilDiv(fromMicros, dayMicros)
	}
	if f.To != nil {
		toMicros = f.To.UnixMicro()
		lastFull = floorDiv(toMicros+1, dayMicros) - 1
	}
	where, args := ledgerFilterTerms(tenantID, f)
	var total int
	if firstFull <= lastFull {
		full := append(append([]any(nil), args...), firstFull, lastFull)
		if err := r.db.QueryRowContext(ctx, `SELECT coalesce(sum(entries), 0) FROM ledger_counts WHERE `+strings.Join(where, " AND ")+
			` AND day BETWEEN ? AND ?`, full...).Scan(&total); err != nil {
			return 0, err
		}
	}
	edges := [][2]int64{}
	if firstFull > lastFull {
		edges = append(edges, [2]int64{fromMicros, toMicros})
	} else {
		if f.From != nil && fromMicros < firstFull*dayMicros {
			edges = append(edges, [2]int64{fromMicros, firstFull*dayMicros - 1})
		}
		if f.To != nil && toMicros >= (lastFull+1)*dayMicros {
			edges = append(edges, [2]int64{(lastFull + 1) * dayMicros, toMicros})
		}
	}
	for _, e := range edges {
		var n int
		edge := append(append([]any(nil), args...), e[0], e[1])
		if err := r.db.QueryRowContext(ctx, `SELECT count(*) FROM ledger`+ledgerIndex(f)+` WHERE `+strings.Join(where, " AND ")+
			` AND created_at BETWEEN ? AND ?`, edge...).Scan(&n); err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }

func encodeCursor(at, id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at, 10) + "." + strconv.FormatInt(id, 10)))
}

func decodeCursor(cursor string) (int64, int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return 0, 0, err
	}
	atText, idText, ok := strings.Cut(string(raw), ".")
	if !ok {
		return 0, 0, fmt.Errorf("malformed cursor")
	}
	at, err := strconv.ParseInt(atText, 10, 64)
	if err != nil {
		return 0, 0, err
	}
	id, err := strconv.ParseInt(idText, 10, 64)
	return at, id, err
}
