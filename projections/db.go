// Package projections builds creditd's read models: it consumes the event
// log with Watermill and applies each commit to SQLite in one transaction
// together with the log position it reached, so a restart resumes exactly
// where the last transaction ended.
package projections

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"github.com/shopspring/decimal"
)

//go:embed schema.sql
var schemaSQL string

// readerConnsMax bounds the read pool: SQLite readers in WAL mode do not
// block the writer, and two cores gain nothing from more.
const readerConnsMax = 8

// readerStmtsKept is how many statements each reader connection keeps
// prepared (the driver's _stmt_cache_size, least recently used out
// first). The queries are a few dozen shapes, and compiling one cost a
// balance read a quarter of its time: p50 0.034–0.037 ms against 0.046
// in each of four alternated pairs, the other reads within the noise
// (CREDITD_BENCH_EVENTS=1000000 go test -run '^$' -bench . -benchtime
// 3000x ./queries/). The driver resets a statement as it takes it back,
// so a kept one holds no snapshot that would keep the WAL from
// restarting (TestKeptReadStatementsHoldNoSnapshot).
const readerStmtsKept = 32

// DB is a read-model database: one writer connection (SQLite allows one
// writer; a single connection avoids SQLITE_BUSY) and a read-only pool.
type DB struct {
	Path   string
	writer *sql.DB
	reader *sql.DB
	// flushStmts are the projection's statements, prepared on the writer's
	// connection and kept from one batch to the next (flush_stmt.go).
	flushStmts *flushStmtCache
}

// dsnCommon is what every connection to the read models sets.
const dsnCommon = "_synchronous=NORMAL&_busy_timeout=5000&_foreign_keys=off&cache=private"

// Open opens or creates the database at path and its schema.
func Open(path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	// The read models hold every tenant's ledger: owner only. SQLite gives
	// its -wal and -shm files the database file's mode, so creating the
	// file first with 0600 covers all three.
	if f, err := os.OpenFile(abs, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	// synchronous=NORMAL in WAL mode: a power loss may drop the last
	// transactions but never corrupts; the checkpoint rolls back with them
	// and the projection re-applies them from the log.
	common := dsnCommon
	writer, err := sql.Open("sqlite3", "file:"+url.PathEscape(abs)+"?"+common+"&_txlock=immediate&_mutex=no")
	if err != nil {
		return nil, err
	}
	writer.SetMaxOpenConns(1)
	writer.SetConnMaxLifetime(0)
	// A new database gets 16 KiB pages before WAL mode fixes its page size:
	// the cube's long keys and the ledger's rows make fewer, shallower
	// B-tree pages and fewer writes per transaction (a quarter faster bulk
	// load than 4 KiB, measured on a million events). The writer's page
	// cache holds the right edges of the ledger indexes and the recent days
	// of the cube; a WAL checkpoint every ~160 MiB instead of every 4 MiB
	// keeps bulk applies from stalling on fsyncs.
	if _, err := writer.Exec(`PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; PRAGMA cache_size = -` + strconv.Itoa(writerCacheKiB) + `;
		PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = ` + strconv.Itoa(walAutocheckpointPages)); err != nil {
		writer.Close()
		return nil, fmt.Errorf("configure %s: %w", path, err)
	}
	if err := checkFormat(writer, path); err != nil {
		writer.Close()
		return nil, err
	}
	if _, err := writer.Exec(schemaSQL + fmt.Sprintf("; PRAGMA user_version = %d", formatVersion)); err != nil {
		writer.Close()
		return nil, fmt.Errorf("create schema in %s: %w", path, err)
	}
	reader, err := sql.Open("sqlite3", "file:"+url.PathEscape(abs)+"?"+common+"&_journal_mode=WAL&mode=ro&_stmt_cache_size="+strconv.Itoa(readerStmtsKept))
	if err != nil {
		writer.Close()
		return nil, err
	}
	reader.SetMaxOpenConns(readerConnsMax)
	reader.SetMaxIdleConns(readerConnsMax)
	return &DB{Path: abs, writer: writer, reader: reader, flushStmts: &flushStmtCache{}}, nil
}

// formatVersion numbers the read models' format, kept in SQLite's
// user_version. It goes up with every change to the projection that makes
// rows an older one wrote wrong or incomplete (a column an older projection
// left empty, a table it never filled), since schema.sql's CREATE ... IF NOT
// EXISTS would add such a table empty and the answers built on it would be
// silently wrong, and with every change to the schema that an older
// creditd's queries could not run on. The read models are a projection of
// the log, so an older format is rebuilt, never migrated by hand.
//
//	1: reversal rows carry their usage's time; ledger_occurred_counts.
//	2: the ledger's type index leaves debits out. An older creditd names
//	   that index in queries that do not state its condition, which SQLite
//	   refuses to plan: it now refuses the file instead (a newer format),
//	   and serve builds a format 1 database afresh, giving it the index.
const formatVersion = 2

// ErrFormatOutdated is returned by Open for read models an older
// projection wrote: rebuild them from the log (creditd serve does).
var ErrFormatOutdated = errors.New("read models of an older format")

// checkFormat refuses a database of another format than formatVersion; a
// database with no table yet is new and takes this format.
func checkFormat(writer *sql.DB, path string) error {
	var tables, version int
	if err := writer.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table'`).Scan(&tables); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := writer.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	switch {
	case tables == 0, version == formatVersion:
		return nil
	case version < formatVersion:
		return fmt.Errorf("%w: %s is format %d, this creditd writes format %d: rebuild it from the log", ErrFormatOutdated, path, version, formatVersion)
	default:
		return fmt.Errorf("%s is read-model format %d, newer than this creditd's %d: run the newer creditd, or rebuild the read models", path, version, formatVersion)
	}
}

// writerCacheKiB is the writer's page cache (PRAGMA cache_size), in KiB.
const writerCacheKiB = 64 << 10

// bulkIndexCacheKiB is the writer's page cache while a bulk load's indexes
// are built. SQLite's sorter fills runs as large as the page cache (but
// at least 250 pages, 4 MiB at 16 KiB) before it sorts each on a helper
// thread and merges them: runs of 4 MiB sort within the CPU's caches and
// keep both threads busy, where runs of 64 MiB did not. The four ledger
// indexes of 10M events over 1,000 tenants (`creditd rebuild`) built in
// 12.6–21.5 s, median 16.3, with runs of 2–16 MiB (twelve builds),
// against 21.2–23.6 s with 64 MiB and 28.4–29.1 s with 256 MiB. Building
// an index writes it in order, and the table is read mapped or once
// through, so a small cache costs nothing else.
const bulkIndexCacheKiB = 4 << 10

// bulkIndexMmapBytes is the mapping asked for while the indexes are built
// (SQLite lowers it to its own limit, 2 GiB as built here).
const bulkIndexMmapBytes = 1 << 40

// bulkIndexes are dropped during a bulk load; schema.sql recreates them.
var bulkIndexes = []string{"ledger_tenant_time", "ledger_tenant_type_time", "ledger_line_time", "ledger_usage_time", "reservations_open"}

// bulkLoad prepares a fresh database for loading the whole log, and
// returns what ends it. Measured on a million events, each step pays:
//   - The ledger's secondary indexes are dropped while loading and built
//     once at the end: one sort each, half the cost of millions of index
//     updates.
//   - The journal is kept in memory with no fsync, and the WAL is off: each
//     page is written once, to the database file, instead of to the WAL and
//     again at every checkpoint. Transactions still roll back; a crash can
//     leave a torn file, which is fine for a database that is rebuilt from
//     scratch (rebuild and replay start by deleting it).
//   - Index builds read the table through a memory mapping: the four
//     ledger indexes of 10M events built in 14.4 s instead of 16.5 s
//     (BenchmarkCatchUp), at 2M in 2.7–3.0 s instead of 3.1–3.3.
//   - They sort on a second thread, the decoding goroutine being idle by
//     then, which SQLite does only with its temporary files on disk (see
//     end): 10M events over 1,000 tenants, `creditd replay` spent 19.1 /
//     21.7 s after applying instead of 28.2 / 29.4 (two alternated pairs);
//     BenchmarkCatchUp's one tenant at 2M, 3.2–3.4 s instead of 4.2–4.4.
//
// The end rebuilds the indexes and returns to WAL with synchronous=NORMAL.
// It is returned even with an error, to undo what was done. lowMemory
// leaves the database unmapped (ReplayOptions.LowMemory).
func (db *DB) bulkLoad(ctx context.Context, lowMemory bool) (end func() error, err error) {
	end = func() error {
		// SQLite's sorter hands work to helper threads (PRAGMA threads)
		// only when its temporary files are files: with temp_store =
		// MEMORY it sorts on the calling thread alone. In files (the page
		// cache, which the kernel reclaims; SQLITE_TMPDIR or the system's
		// temporary directory), the four ledger indexes of 10M events over
		// 1,000 tenants built in 19 s instead of 36 on two cores.
		if _, err := db.writer.ExecContext(context.Background(), `PRAGMA temp_store = FILE`); err != nil {
			return err
		}
		defer db.writer.ExecContext(context.Background(), `PRAGMA temp_store = MEMORY`)
		if !lowMemory {
			// Each index build scans the whole ledger: mapped, its pages
			// are read in place rather than copied through the page cache
			// (SQLite caps the mapping at 2 GiB; the rest is read).
			if _, err := db.writer.ExecContext(context.Background(), `PRAGMA mmap_size = `+strconv.FormatInt(bulkIndexMmapBytes, 10)); err != nil {
				return err
			}
			defer db.writer.ExecContext(context.Background(), `PRAGMA mmap_size = 0`)
		}
		if _, err := db.writer.ExecContext(context.Background(), `PRAGMA cache_size = -`+strconv.Itoa(bulkIndexCacheKiB)); err != nil {
			return err
		}
		defer db.writer.ExecContext(context.Background(), `PRAGMA cache_size = -`+strconv.Itoa(writerCacheKiB))
		if _, err := db.writer.ExecContext(context.Background(), schemaSQL); err != nil {
			return err
		}
		if err := db.journalMode(context.Background(), "wal"); err != nil {
			return err
		}
		_, err := db.writer.ExecContext(context.Background(), `PRAGMA synchronous = NORMAL; PRAGMA threads = 0`)
		return err
	}
	for _, index := range bulkIndexes {
		if _, err := db.writer.ExecContext(ctx, "DROP INDEX IF EXISTS "+index); err != nil {
			return end, err
		}
	}
	if err := db.journalMode(ctx, "memory"); err != nil {
		return end, err
	}
	_, err = db.writer.ExecContext(ctx, `PRAGMA synchronous = OFF; PRAGMA threads = 2`)
	return end, err
}

// journalMode switches the writer's journal mode. SQLite answers a switch
// it cannot make (another connection holds the file) with the mode it
// stayed in, not an error.
func (db *DB) journalMode(ctx context.Context, mode string) error {
	var got string
	if err := db.writer.QueryRowContext(ctx, "PRAGMA journal_mode = "+mode).Scan(&got); err != nil {
		return err
	}
	if got != mode {
		return fmt.Errorf("journal mode is %s, not %s", got, mode)
	}
	return nil
}

// Reader is the read-only pool, for queries.
func (db *DB) Reader() *sql.DB { return db.reader }

// Close closes both pools.
func (db *DB) Close() error {
	return errors.Join(db.flushStmts.close(db.writer), db.reader.Close(), db.writer.Close())
}

// Checkpoint is the last log position applied.
func (db *DB) Checkpoint(ctx context.Context) (uint64, error) {
	var position uint64
	err := db.writer.QueryRowContext(ctx, `SELECT position FROM checkpoint WHERE id = 1`).Scan(&position)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	return position, err
}

// Micro converts an amount to micro-units. Amounts carry at most 6 decimal
// places (domain.ValidateAmount), so the conversion is exact. The common
// case (a coefficient that fits an int64) avoids big.Int arithmetic: it
// runs several times per event on the apply path.
func Micro(d decimal.Decimal) int64 {
	exp := d.Exponent()
	if d.NumDigits() > 18 || exp > 6 || exp < -18 {
		return d.Shift(6).IntPart()
	}
	c := d.CoefficientInt64()
	for ; exp > -6; exp-- {
		c *= 10
	}
	for ; exp < -6; exp++ {
		c /= 10 // only trailing zeros: the amount has at most 6 places
	}
	return c
}

// FromMicro converts micro-units back to a decimal.
func FromMicro(v int64) decimal.Decimal { return decimal.New(v, -6) }

// Micros converts a time to Unix microseconds.
func Micros(t time.Time) int64 { return t.UnixMicro() }

// Day is the UTC day number of t.
func Day(t time.Time) int64 { return t.UTC().Unix() / 86400 }

// Exec runs a statement on the writer connection, for operations and tests
// that tune SQLite (PRAGMA) on the running database.
func (db *DB) Exec(ctx context.Context, query string, args ...any) error {
	_, err := db.writer.ExecContext(ctx, query, args...)
	return err
}

// WriterForTests exposes the writer pool, for tests that must alter a read
// model behind the projection's back (to prove verification notices).
func WriterForTests(db *DB) *sql.DB { return db.writer }
