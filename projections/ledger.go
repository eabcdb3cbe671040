package projections

import (
	"strings"

	"github.com/creditd/creditd/domain"
)

// Ledger entry types.
const (
	ledgerCredit     = "credit"
	ledgerDebit      = "debit"
	ledgerAdjustment = "adjustment"
	ledgerExpiry     = "expiry"
)

// ledgerRowsPerInsert bounds the rows of one multi-row INSERT, far below
// SQLite's variable limit: ledgerShared values bound once, ledgerOwn each.
const (
	ledgerRowsPerInsert = 128
	ledgerShared        = 9
	ledgerOwn           = 6
)

// Rows of a group (sharesGroup) shorter than ledgerGroupMin go into
// statements of up to ledgerWholeRowsPerInsert rows, every column bound per
// row (ledgerColumns). A statement's execution costs far more than a
// value's binding: rows of different lines in a row (a commit of many
// producers' small batches, the log `creditd bench generate` writes) were
// one statement each, 274,000 rows/s without the ledger's indexes and
// 60,000 with them, 803,000 and 148,000 in statements of 64
// (BenchmarkFlushLedgerInterleaved). A group's own statement binds its
// shared values once, and pays from about 8 rows on: runs of 4 rows of a
// line went at 505,000 rows/s as groups and 839,000 bound whole, runs of 8
// and 16 alike either way, runs of 100 at 1.2 million as groups and 662,000
// bound whole.
const (
	ledgerGroupMin           = 8
	ledgerWholeRowsPerInsert = 64
	ledgerColumns            = 16
)

// ledgerRow is one ledger entry waiting for the batch's flush. Rows stay
// typed until then: boxing 16 values per event as they are recorded would
// allocate for rows a failed batch throws away.
type ledgerRow struct {
	tenantID                                          int64
	creditType, entryType                             string
	amount, balance, granted, adjusted, used, expired int64
	sourceID, description, reference, metadata        string
	createdAt                                         int64
	position                                          uint64
	// occurredAt is set on usage debits and their reversals (NULL
	// otherwise).
	occurredAt    int64
	hasOccurredAt bool
}

// ledger records one credit movement with the line's totals after it. The
// line row must already include the movement. Rows are written at flush,
// many per statement, in the order recorded (entry ids follow it).
func (b *batch) ledger(env domain.Envelope, line *lineRow, entryType string, amount int64, sourceID, description, reference, metadata string, seq uint64, at int64) {
	b.ledgerRows = append(b.ledgerRows, ledgerRow{tenantID: env.TenantID, creditType: env.CreditType, entryType: entryType,
		amount: amount, balance: line.balance(), granted: line.granted, adjusted: line.adjusted, used: line.used, expired: line.expired,
		sourceID: sourceID, description: description, reference: reference, metadata: metadata, createdAt: at, position: seq})
}

// usageLedger records a usage debit with the time it occurred.
func (b *batch) usageLedger(env domain.Envelope, line *lineRow, amount int64, sourceID, description, metadata string, seq uint64, at, occurredAt int64) {
	b.ledger(env, line, ledgerDebit, amount, sourceID, description, "", metadata, seq, at)
	b.occurred(occurredAt)
}

// occurred stamps the entry recorded last with the time of the usage it
// moves credits for. A reversal carries the reversed debit's time, so that
// sums of usage by occurred_at net it against that debit, on the same day
// and in the same instant, as the usage cube does.
func (b *batch) occurred(at int64) {
	row := &b.ledgerRows[len(b.ledgerRows)-1]
	row.occurredAt, row.hasOccurredAt = at, true
}

type ledgerCountKey struct {
	tenantID   int64
	creditType string
	entryType  string
	day        int64
}

// occurredCountKey is a row of ledger_occurred_counts.
type occurredCountKey struct {
	tenantID  int64
	entryType string
	day       int64
}

// occurredDay is the UTC day of when what row records happened: its
// occurred_at, else its created_at. Usage may be dated before 1970, so the
// division rounds down, not towards zero.
func (row *ledgerRow) occurredDay() int64 {
	const dayMicros = 86400 * 1e6
	at := row.createdAt
	if row.hasOccurredAt {
		at = row.occurredAt
	}
	day := at / dayMicros
	if at%dayMicros < 0 {
		day--
	}
	return day
}

func (b *batch) flushLedger() error {
	counts := map[ledgerCountKey]int64{}
	occurredCounts := map[occurredCountKey]int64{}
	for i := range b.ledgerRows {
		row := &b.ledgerRows[i]
		counts[ledgerCountKey{row.tenantID, row.creditType, row.entryType, row.createdAt / (86400 * 1e6)}]++
		occurredCounts[occurredCountKey{row.tenantID, row.entryType, row.occurredDay()}]++
	}
	if len(counts) > 0 {
		stmt, err := b.stmt(`INSERT INTO ledger_counts (tenant_id, credit_type, type, day, entries) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT DO UPDATE SET entries = entries + excluded.entries`)
		if err != nil {
			return err
		}
		for k, n := range counts {
			if err := stmt.exec(k.tenantID, k.creditType, k.entryType, k.day, n); err != nil {
				return err
			}
		}
		stmt, err = b.stmt(`INSERT INTO ledger_occurred_counts (tenant_id, type, day, entries) VALUES (?, ?, ?, ?)
			ON CONFLICT DO UPDATE SET entries = entries + excluded.entries`)
		if err != nil {
			return err
		}
		for k, n := range occurredCounts {
			if err := stmt.exec(k.tenantID, k.entryType, k.day, n); err != nil {
				return err
			}
		}
	}
	for rows := b.ledgerRows; len(rows) > 0; {
		n := groupLen(rows, ledgerRowsPerInsert)
		if n < ledgerGroupMin {
			// A run of short groups, each row bound whole, up to the
			// next group long enough for its own statement.
			for k := n; n < len(rows); n += k {
				if k = groupLen(rows[n:], ledgerGroupMin); k >= ledgerGroupMin || n+k > ledgerWholeRowsPerInsert {
					break
				}
			}
			if err := b.insertLedgerWhole(rows[:n]); err != nil {
				return err
			}
			rows = rows[n:]
			continue
		}
		stmt, err := b.stmt(ledgerInserts[n])
		if err != nil {
			return err
		}
		// The order of ledgerInsert's parameters: ledgerShared, then
		// ledgerOwn per row.
		first := &rows[0]
		stmt.begin()
		stmt.int(first.tenantID)
		stmt.text(first.creditType)
		stmt.text(first.entryType)
		stmt.text(first.reference)
		stmt.int(first.createdAt)
		stmt.int(int64(first.position))
		stmt.int(first.granted)
		stmt.int(first.adjusted)
		stmt.int(first.expired)
		for i := range rows[:n] {
			r := &rows[i]
			stmt.int(r.amount)
			stmt.int(r.used)
			stmt.text(r.sourceID)
			stmt.text(r.description)
			stmt.text(r.metadata)
			r.bindOccurredAt(stmt)
		}
		if err := stmt.run(); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// insertLedgerWhole inserts rows that share no group with their neighbours
// in one statement, every column bound per row (ledgerWholeInserts).
func (b *batch) insertLedgerWhole(rows []ledgerRow) error {
	stmt, err := b.stmt(ledgerWholeInserts[len(rows)])
	if err != nil {
		return err
	}
	stmt.begin()
	for i := range rows {
		r := &rows[i]
		stmt.int(r.tenantID)
		stmt.text(r.creditType)
		stmt.text(r.entryType)
		stmt.int(r.amount)
		stmt.int(r.granted + r.adjusted - r.used - r.expired)
		stmt.int(r.granted)
		stmt.int(r.adjusted)
		stmt.int(r.used)
		stmt.int(r.expired)
		stmt.text(r.sourceID)
		stmt.text(r.description)
		stmt.text(r.reference)
		stmt.text(r.metadata)
		stmt.int(r.createdAt)
		stmt.int(int64(r.position))
		r.bindOccurredAt(stmt)
	}
	return stmt.run()
}

func (r *ledgerRow) bindOccurredAt(stmt *flushStmt) {
	if r.hasOccurredAt {
		stmt.int(r.occurredAt)
	} else {
		stmt.null()
	}
}

// groupLen counts the rows at the start of rows that share the first's
// group, up to limit.
func groupLen(rows []ledgerRow, limit int) int {
	n := 1
	for n < len(rows) && n < limit && rows[n].sharesGroup(&rows[0]) {
		n++
	}
	return n
}

// sharesGroup reports whether r can go in the same INSERT as first: one
// commit's entries on one line, of one type, bind those values once, and
// so do the line totals a run of debits leaves alone.
func (r *ledgerRow) sharesGroup(first *ledgerRow) bool {
	return r.tenantID == first.tenantID && r.creditType == first.creditType && r.entryType == first.entryType &&
		r.reference == first.reference && r.createdAt == first.createdAt && r.position == first.position &&
		r.granted == first.granted && r.adjusted == first.adjusted && r.expired == first.expired
}

// ledgerInsert inserts rows that share their line, type, reference,
// recording time, position and all line totals but used (bound once, as ?1
// to ?9), each row binding only its own values. Binding is most of the cost of writing a ledger row,
// so this nearly halves it for a commit of usage on one line. Rows are
// inserted in VALUES order, so entry ids follow the recorded order; the
// running balance_after is derived from the totals in SQL. Only groups of
// ledgerGroupMin rows and more get one.
var ledgerInserts = func() (q [ledgerRowsPerInsert + 1]string) {
	for n := ledgerGroupMin; n <= ledgerRowsPerInsert; n++ {
		q[n] = ledgerInsert(n)
	}
	return q
}()

// ledgerWholeInserts insert rows with every column bound per row, in
// VALUES order as ledgerInserts do.
var ledgerWholeInserts = func() (q [ledgerWholeRowsPerInsert + 1]string) {
	for n := 1; n <= ledgerWholeRowsPerInsert; n++ {
		q[n] = `INSERT INTO ledger (tenant_id, credit_type, type, amount, balance_after, granted_after, adjusted_after,
		used_after, expired_after, source_id, description, reference, metadata, created_at, position, occurred_at)
		VALUES ` + valueRows(n, ledgerColumns)
	}
	return q
}()

func ledgerInsert(rows int) string {
	// Each row's own values are anonymous parameters, which SQLite numbers
	// after the largest one the SELECT list named (?9).
	return `INSERT INTO ledger (tenant_id, credit_type, type, amount, balance_after, granted_after, adjusted_after,
		used_after, expired_after, source_id, description, reference, metadata, created_at, position, occurred_at)
		SELECT ?1, ?2, ?3, column1, ?7 + ?8 - column2 - ?9, ?7, ?8, column2, ?9,
		column3, column4, ?4, column5, ?5, ?6, column6 FROM (VALUES ` + valueRows(rows, ledgerOwn) + `)`
}

// valueRows is the VALUES list of a multi-row statement: rows tuples of
// columns parameters.
func valueRows(rows, columns int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", columns), ",") + ")"
	return strings.TrimSuffix(strings.Repeat(row+",", rows), ",")
}
