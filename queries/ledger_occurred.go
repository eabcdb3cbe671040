package queries

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math"
	"strings"
)

// The ledger as one account sees it, dated when things happened: the
// account profile's ledger (docs/compat.md). Every entry's time is when
// what it records happened:
//   - a usage debit, when the usage occurred (a capture: when captured);
//   - a reversal, when the usage it reverses occurred, where /usage nets it;
//   - every other entry (grants, adjustments, expiries, voids), when it was
//     recorded.
//
// That is the ledger's occurred_at where it has one, else its created_at.
// Entries are listed newest first by that time, then by entry id (the
// order recorded), and each entry's balance is the sum of the amounts of
// every entry of every line up to it in that order.

// microsPerDay is a UTC day in microseconds.
const microsPerDay = 86400 * 1e6

// occurredKey is an entry's place in the occurrence ledger's order.
type occurredKey struct{ at, id int64 }

// querier is a connection pool or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// OccurrenceLedger returns a page of the tenant's entries in the order
// above, and how many match in all: f.Types, and f.From and f.To over the
// entries' times. Each entry's CreatedAt is its time in that order and
// its BalanceAfter the balance of all the tenant's lines after it, in that
// order. f.CreditType and f.Cursor must be empty: one account, paged by
// offset. Errors: *ParamError as ValidateLedgerFilter.
//
// Usage reported late sits at its own time, before credits recorded
// between its occurrence and its recording, so balance_after may dip
// below what the lines held when it was recorded; the newest entry's is
// the balance now.
func (r *Reader) OccurrenceLedger(ctx context.Context, tenantID int64, f LedgerFilter) (LedgerPage, error) {
	if f.CreditType != "" || f.Cursor != "" {
		return LedgerPage{}, errors.New("occurrence ledger: one account, paged by offset: no credit type, no cursor")
	}
	if err := ValidateLedgerFilter(&f); err != nil {
		return LedgerPage{}, err
	}
	// One snapshot of the read models for the page, its total and its
	// balances, which add up only if no commit lands between them.
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return LedgerPage{}, err
	}
	defer tx.Rollback()
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if f.From != nil {
		from = f.From.UnixMicro()
	}
	if f.To != nil {
		to = f.To.UnixMicro()
	}
	page := LedgerPage{Limit: f.Limit, Offset: f.Offset}
	if page.Total, err = occurredTotal(ctx, tx, tenantID, f.Types, from, to); err != nil {
		return page, err
	}
	keys, err := occurredPage(ctx, tx, tenantID, f, from, to, &page)
	if err != nil {
		return page, err
	}
	return page, occurredBalances(ctx, tx, tenantID, page.Entries, keys)
}

// occurredTypes splits the types asked (all when empty) into those of
// entries that carry an occurred_at (debits; adjustments, for reversals)
// and those of entries that do not (every type but debit).
func occurredTypes(types []string) (withOccurred, withoutOccurred []string) {
	if len(types) == 0 {
		types = []string{"credit", "debit", "adjustment", "expiry"}
	}
	for _, t := range types {
		if t == "debit" || t == "adjustment" {
			withOccurred = append(withOccurred, t)
		}
		if t != "debit" {
			withoutOccurred = append(withoutOccurred, t)
		}
	}
	return withOccurred, withoutOccurred
}

// occurredTotal counts the entries of types whose time is in [from, to]:
// whole UTC days from ledger_occurred_counts, the partial days at the edges
// from the ledger (at most two days of entries).
func occurredTotal(ctx context.Context, q querier, tenantID int64, types []string, from, to int64) (int, error) {
	firstFull, lastFull := int64(math.MinInt32), int64(math.MaxInt32)
	if from != math.MinInt64 {
		firstFull = ceilDiv(from, microsPerDay)
	}
	if to != math.MaxInt64 {
		lastFull = floorDiv(to+1, microsPerDay) - 1
	}
	typeTerm, typeArgs := "", []any{}
	if len(types) > 0 {
		typeTerm = " AND type IN (" + placeholders(len(types)) + ")"
		for _, t := range types {
			typeArgs = append(typeArgs, t)
		}
	}
	var total int
	if firstFull <= lastFull {
		args := append(append([]any{tenantID}, typeArgs...), firstFull, lastFull)
		if err := q.QueryRowContext(ctx, `SELECT coalesce(sum(entries), 0) FROM ledger_occurred_counts WHERE tenant_id = ?`+typeTerm+
			` AND day BETWEEN ? AND ?`, args...).Scan(&total); err != nil {
			return 0, err
		}
	}
	var edges [][2]int64
	if firstFull > lastFull {
		edges = append(edges, [2]int64{from, to})
	} else {
		if from != math.MinInt64 && from < firstFull*microsPerDay {
			edges = append(edges, [2]int64{from, firstFull*microsPerDay - 1})
		}
		if to != math.MaxInt64 && to >= (lastFull+1)*microsPerDay {
			edges = append(edges, [2]int64{(lastFull + 1) * microsPerDay, to})
		}
	}
	withOccurred, withoutOccurred := occurredTypes(types)
	for _, e := range edges {
		for _, source := range occurredSources(withOccurred, withoutOccurred) {
			var n int
			args := append(append([]any{tenantID}, source.args...), e[0], e[1])
			if err := q.QueryRowContext(ctx, `SELECT count(*) FROM ledger `+source.index+` WHERE tenant_id = ? AND `+source.where+
				` AND `+source.time+` BETWEEN ? AND ?`, args...).Scan(&n); err != nil {
				return 0, err
			}
			total += n
		}
	}
	return total, nil
}

// occurredSource is one index-ordered run of the ledger in the occurrence
// order: the entries of some types that carry an occurred_at, or that do
// not, read by the index that lists them by their time.
type occurredSource struct {
	index, where, time string
	args               []any
}

// occurredSources are the runs that hold the types asked. Debits run by
// ledger_usage_time, which holds nothing but debits and reversals; the
// reversals (rarer than debits by far) and the entries without an
// occurred_at run by type, each type by ledger_tenant_type_time, which
// holds no debits (notDebit). The indexes are named: without statistics,
// SQLite would pick another index for the types and read past every
// debit.
func occurredSources(withOccurred, withoutOccurred []string) []occurredSource {
	var out []occurredSource
	for _, t := range withOccurred {
		if t == "debit" {
			out = append(out, occurredSource{index: "INDEXED BY ledger_usage_time", where: "occurred_at IS NOT NULL AND type = ?", time: "occurred_at", args: []any{t}})
		} else {
			out = append(out, occurredSource{index: "INDEXED BY ledger_tenant_type_time", where: notDebit + " AND type = ? AND occurred_at IS NOT NULL", time: "occurred_at", args: []any{t}})
		}
	}
	for _, t := range withoutOccurred {
		out = append(out, occurredSource{index: "INDEXED BY ledger_tenant_type_time", where: notDebit + " AND type = ? AND occurred_at IS NULL", time: "created_at", args: []any{t}})
	}
	return out
}

// occurredPage fills page.Entries (all but their balances) and returns
// their keys. Each run gives at most offset + limit entries, newest first,
// and the page is the merge's slice at offset: offset is bounded
// (ValidateLedgerFilter), and so is the work.
func occurredPage(ctx context.Context, q querier, tenantID int64, f LedgerFilter, from, to int64, page *LedgerPage) ([]occurredKey, error) {
	withOccurred, withoutOccurred := occurredTypes(f.Types)
	var parts []string
	var args []any
	for _, source := range occurredSources(withOccurred, withoutOccurred) {
		parts = append(parts, `SELECT * FROM (SELECT entry_id, credit_type, type, amount, source_id, description, reference, metadata, `+
			source.time+` AS at, position FROM ledger `+source.index+` WHERE tenant_id = ? AND `+source.where+` AND `+source.time+
			` BETWEEN ? AND ? ORDER BY `+source.time+` DESC, entry_id DESC LIMIT ?)`)
		args = append(append(append(args, tenantID), source.args...), from, to, f.Offset+f.Limit)
	}
	rows, err := q.QueryContext(ctx, strings.Join(parts, " UNION ALL ")+` ORDER BY at DESC, entry_id DESC LIMIT ? OFFSET ?`,
		append(args, f.Limit, f.Offset)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []occurredKey
	for rows.Next() {
		var e LedgerEntry
		var amount, at int64
		var metadata string
		if err := rows.Scan(&e.ID, &e.CreditType, &e.Type, &amount, &e.SourceID, &e.Description, &e.Reference, &metadata, &at, &e.Position); err != nil {
			return nil, err
		}
		e.Amount, e.CreatedAt, e.Metadata = fromMicro(amount), fromMicros(at), json.RawMessage(metadata)
		page.Entries = append(page.Entries, e)
		keys = append(keys, occurredKey{at, e.ID})
	}
	return keys, rows.Err()
}

// occurredBalances sets each entry's BalanceAfter: the amounts of every
// entry up to it in the occurrence order, split in two sums that the read
// models keep:
//   - entries without an occurred_at (credits, adjustments, expiries), whose
//     order is the order recorded: each line's granted + adjusted − expired
//     after the last entry recorded up to the key;
//   - usage and reversals, by occurred_at: the credits used in all (the
//     lines' used), less the usage cube's days after the key's day, less
//     what the ledger holds of the key's day after the key.
//
// keys are newest first, so the ledger is read once per day the page
// touches, from each key back to the one before it.
func occurredBalances(ctx context.Context, q querier, tenantID int64, entries []LedgerEntry, keys []occurredKey) error {
	if len(entries) == 0 {
		return nil
	}
	var lines []string
	var usedNow int64
	rows, err := q.QueryContext(ctx, `SELECT credit_type, used FROM lines WHERE tenant_id = ?`, tenantID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var ct string
		var used int64
		if err := rows.Scan(&ct, &used); err != nil {
			rows.Close()
			return err
		}
		lines, usedNow = append(lines, ct), usedNow+used
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// The cube's credits per day from the page's oldest day on; the usage
	// after a day is the sum of the days after it.
	oldestDay := floorDiv(keys[len(keys)-1].at, microsPerDay)
	rows, err = q.QueryContext(ctx, `SELECT day, credits FROM usage_rollup WHERE tenant_id = ? AND dimension = '' AND day > ? ORDER BY day DESC`,
		tenantID, oldestDay)
	if err != nil {
		return err
	}
	type dayCredits struct{ day, credits int64 }
	var days []dayCredits // newest first
	for rows.Next() {
		var d dayCredits
		if err := rows.Scan(&d.day, &d.credits); err != nil {
			rows.Close()
			return err
		}
		days = append(days, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var afterDays int64  // the cube's credits of the days after the current key's day
	var afterInDay int64 // the ledger's usage of the key's day after the key
	var previous occurredKey
	currentDay := int64(math.MaxInt64)
	for i, key := range keys {
		day := floorDiv(key.at, microsPerDay)
		if day != currentDay {
			for len(days) > 0 && days[0].day > day {
				afterDays += days[0].credits
				days = days[1:]
			}
			currentDay = day
			// From the day's end back to the key.
			previous, afterInDay = occurredKey{(day+1)*microsPerDay - 1, math.MaxInt64}, 0
		}
		used, err := usageBetween(ctx, q, tenantID, key, previous)
		if err != nil {
			return err
		}
		afterInDay += used
		previous = key
		credited, err := creditedUpTo(ctx, q, tenantID, lines, key)
		if err != nil {
			return err
		}
		entries[i].BalanceAfter = fromMicro(credited - (usedNow - afterDays - afterInDay))
	}
	return nil
}

// usageBetween is the credits used by the usage and reversals whose key is
// in (low, high]: the negated sum of their amounts.
func usageBetween(ctx context.Context, q querier, tenantID int64, low, high occurredKey) (int64, error) {
	var sum int64
	err := q.QueryRowContext(ctx, `SELECT coalesce(-sum(amount), 0) FROM ledger INDEXED BY ledger_usage_time
		WHERE tenant_id = ? AND occurred_at BETWEEN ? AND ? AND (occurred_at, entry_id) > (?, ?) AND (occurred_at, entry_id) <= (?, ?)`,
		tenantID, low.at, high.at, low.at, low.id, high.at, high.id).Scan(&sum)
	return sum, err
}

// creditedUpTo sums, over the lines, what the entries without an
// occurred_at recorded up to key moved: granted + adjusted − expired after
// the line's last entry at or before key in the order recorded. It relies
// on a tenant's created_at growing with its entry ids, as Balance's as-of
// reads do.
func creditedUpTo(ctx context.Context, q querier, tenantID int64, lines []string, key occurredKey) (int64, error) {
	var sum int64
	for _, ct := range lines {
		var credited int64
		err := q.QueryRowContext(ctx, `SELECT granted_after + adjusted_after - expired_after FROM ledger
			WHERE tenant_id = ? AND credit_type = ? AND (created_at, entry_id) <= (?, ?)
			ORDER BY created_at DESC, entry_id DESC LIMIT 1`, tenantID, ct, key.at, key.id).Scan(&credited)
		if err != nil && err != sql.ErrNoRows {
			return 0, err
		}
		sum += credited
	}
	return sum, nil
}
