package projections

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"time"
)

// A batch's flush writes its rows through statements prepared on the
// SQLite driver's connection and executed past database/sql. Those
// statements bind hundreds of values each (a multi-row INSERT of 128
// ledger rows binds 777), and database/sql copies every execution's
// arguments into a fresh []driver.NamedValue first: 31 KiB per ledger
// statement, written once and thrown away. In a rebuild that copy took a
// fifth of the applying goroutine's CPU (BenchmarkCatchUp, README); here
// one slice per statement is reused.
//
// The rest of a batch (its reads, and the rare writes made while applying)
// goes through the database/sql transaction on the same connection.
// sql.Conn.Raw lends the driver connection while the transaction is open:
// the transaction holds the connection between its statements, not its
// lock, and a batch runs on one goroutine, so the two never overlap.

// errFlushOutsideTransaction: the batch's transaction is no longer open.
var errFlushOutsideTransaction = errors.New("projection: the batch's transaction ended before its flush")

// flushScope is one sql.Conn.Raw call. Its statements are the writer's
// cache (flushStmtCache); a batch without one closes the statements it
// prepared when the scope ends.
type flushScope struct {
	ctx   context.Context
	conn  driver.ConnPrepareContext
	stmts map[string]*flushStmt
	cache *flushStmtCache
}

// flushStmtCache keeps the writer's flush statements prepared from one
// flush to the next. Prepared afresh in every flush, they cost the live
// projection 7–9% of its CPU in `creditd bench`: SQLite compiles a ledger
// INSERT of 128 rows in about 0.3 ms, and a flush used several. They are
// prepared for a long life (preparePersistent), which is what makes
// keeping them pay. A statement belongs to the driver connection that
// prepared it, and may be used or closed only while database/sql lends
// that connection (Raw), so the cache is used inside Raw only, and
// remembers its connection.
type flushStmtCache struct {
	mu    sync.Mutex
	conn  any
	stmts map[string]*flushStmt
	// flushes counts the flushes that used the cache; a statement's
	// lastFlush orders evictions, least recently used first.
	flushes uint64
}

// flushStmtsKept bounds the statements the cache keeps. The flushes can
// prepare about 220 shapes (multi-row INSERTs by row count), 79–97 KiB of
// SQLite's memory each for the largest: 10 MiB for all of them. Live
// batches use a few, mostly the same ones.
const flushStmtsKept = 64

// closeStmtsWait bounds how long DB.Close waits for the writer's
// connection to close the cached statements.
const closeStmtsWait = 2 * time.Second

// on returns the cache's statements for a flush on dc. Statements of
// another connection are dropped, not closed: the pool gave that
// connection up (a driver error), and they may not be used without it.
func (c *flushStmtCache) on(dc any) map[string]*flushStmt {
	if c.conn != dc || c.stmts == nil {
		c.conn, c.stmts = dc, map[string]*flushStmt{}
	}
	c.flushes++
	return c.stmts
}

// trim closes the least recently used statements past flushStmtsKept.
func (c *flushStmtCache) trim() error {
	if len(c.stmts) <= flushStmtsKept {
		return nil
	}
	queries := make([]string, 0, len(c.stmts))
	for q := range c.stmts {
		queries = append(queries, q)
	}
	slices.SortFunc(queries, func(a, b string) int { return cmp.Compare(c.stmts[a].lastFlush, c.stmts[b].lastFlush) })
	var err error
	for _, q := range queries[:len(queries)-flushStmtsKept] {
		err = errors.Join(err, c.stmts[q].close())
		delete(c.stmts, q)
	}
	return err
}

// close closes the cached statements on the writer's connection, before
// the database closes: a statement left open keeps SQLite's connection
// alive past its close, and with it the WAL, which is then neither
// checkpointed nor removed. A writer busy past closeStmtsWait keeps them.
func (c *flushStmtCache) close(writer *sql.DB) error {
	ctx, cancel := context.WithTimeout(context.Background(), closeStmtsWait)
	defer cancel()
	conn, err := writer.Conn(ctx)
	if err != nil {
		return nil // closed already, or busy: nothing more can be done
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.conn != dc {
			return nil
		}
		var err error
		for q, s := range c.stmts {
			err = errors.Join(err, s.close())
			delete(c.stmts, q)
		}
		return err
	})
}

// flushStmt is a statement of a flushScope.
type flushStmt struct {
	stmt driver.StmtExecContext
	ctx  context.Context
	args []driver.NamedValue
	// oneCall executes the statement in one cgo call (sqlite_exec.go); nil
	// when the driver's statement does not allow it.
	oneCall *sqliteExec
	// lastFlush is the cache's flush that last used the statement.
	lastFlush uint64
	// persistent: a statement of the cache, which preparePersistent made
	// and oneCall alone executes (stmt is nil).
	persistent bool
	// boxed collects the values of begin/int/text/null without oneCall.
	boxed []any
}

// inFlush runs f with b.scope set to a scope over the writer's driver
// connection.
//
// A panic in f is caught inside Raw and raised again once Raw has
// returned. Raw, seeing its function panic, closes the sql.Conn, and
// closing waits for the transaction open on it to end, while the
// rollback that ends it (a deferred call of the batch's caller) runs only
// after Raw: the goroutine hung for good, the process alive and the read
// models falling behind unnoticed (TestAPanicInAFlushUnwindsWithoutHanging).
// Raised outside Raw, the panic unwinds through the rollback like any
// other, with the stack where it began.
func (b *batch) inFlush(f func() error) error {
	if b.scope != nil {
		return f()
	}
	var panicked *flushPanic
	err := b.conn.Raw(func(dc any) (err error) {
		defer func() {
			if r := recover(); r != nil {
				panicked = &flushPanic{value: r, stack: debug.Stack()}
				err = panicked
			}
		}()
		conn, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("sqlite driver connection %T cannot prepare with a context", dc)
		}
		// The transaction may have ended behind the batch (database/sql
		// rolls back on its own when the context is cancelled): on the
		// bare connection each statement would commit by itself, without
		// the checkpoint, and the batch would be applied twice.
		if tc, ok := dc.(interface{ AutoCommit() bool }); !ok || tc.AutoCommit() {
			return errFlushOutsideTransaction
		}
		scope := &flushScope{ctx: b.ctx, conn: conn, cache: b.stmtCache}
		if scope.cache != nil {
			scope.cache.mu.Lock()
			defer scope.cache.mu.Unlock()
			scope.stmts = scope.cache.on(dc)
		} else {
			scope.stmts = map[string]*flushStmt{}
		}
		b.scope = scope
		defer func() {
			if scope.cache != nil {
				err = errors.Join(err, scope.cache.trim())
			} else {
				for _, s := range scope.stmts {
					err = errors.Join(err, s.close())
				}
			}
			b.scope = nil
		}()
		return f()
	})
	if panicked != nil {
		panic(panicked)
	}
	return err
}

// flushPanic is a panic caught inside a flush, raised again outside it.
type flushPanic struct {
	value any
	stack []byte
}

func (p *flushPanic) Error() string {
	return fmt.Sprintf("panic in a read-model flush: %v\n\n%s", p.value, p.stack)
}

// stmt prepares query once per flush scope; only flush steps call it.
func (b *batch) stmt(query string) (*flushStmt, error) {
	if b.scope == nil {
		return nil, errors.New("projection: a flush statement outside a flush")
	}
	if s, ok := b.scope.stmts[query]; ok {
		s.ctx = b.scope.ctx
		if b.scope.cache != nil {
			s.lastFlush = b.scope.cache.flushes
		}
		return s, nil
	}
	if cache := b.scope.cache; cache != nil {
		if db, ok := sqliteConnHandle(b.scope.conn); ok {
			handle, err := preparePersistent(db, query)
			if err != nil {
				return nil, err
			}
			s := &flushStmt{ctx: b.scope.ctx, oneCall: &sqliteExec{stmt: handle}, persistent: true, lastFlush: cache.flushes}
			b.scope.stmts[query] = s
			return s, nil
		}
	}
	prepared, err := b.scope.conn.PrepareContext(b.scope.ctx, query)
	if err != nil {
		return nil, err
	}
	exec, ok := prepared.(driver.StmtExecContext)
	if !ok {
		prepared.Close()
		return nil, fmt.Errorf("sqlite statement %T cannot execute with a context", prepared)
	}
	s := &flushStmt{stmt: exec, ctx: b.scope.ctx}
	if handle, ok := sqliteHandle(prepared); ok {
		s.oneCall = &sqliteExec{stmt: handle}
	}
	b.scope.stmts[query] = s
	if b.scope.cache != nil {
		s.lastFlush = b.scope.cache.flushes
	}
	return s, nil
}

// exec runs the statement with args, converted as database/sql would
// (driver.DefaultParameterConverter) where they are not already values
// the driver takes.
func (s *flushStmt) exec(args ...any) error {
	if s.oneCall != nil {
		// One statement is at most a few hundred rows: the context is
		// checked between statements, not during one.
		if err := s.ctx.Err(); err != nil {
			return err
		}
		return s.oneCall.exec(args)
	}
	nv := s.args[:0]
	for i, a := range args {
		v, err := driverValue(i, a)
		if err != nil {
			return err
		}
		nv = append(nv, driver.NamedValue{Ordinal: i + 1, Value: v})
	}
	_, err := s.stmt.ExecContext(s.ctx, nv)
	clear(nv) // the values' strings are the batch's, not the statement's
	s.args = nv[:0]
	return err
}

// close finalizes the statement. Only while the driver connection is lent.
func (s *flushStmt) close() error {
	if s.persistent {
		stmt := s.oneCall.stmt
		s.oneCall.stmt = nil
		return finalize(stmt)
	}
	return s.stmt.(driver.Stmt).Close()
}

// begin, int, text and null lay out one execution's values unboxed, for
// the statements that run once per row (the ledger's), and run executes
// them: boxing each int64 and string into the []any of exec allocated five
// times per ledger row. Without the one-call path they are boxed and go
// through exec.
func (s *flushStmt) begin() {
	if s.oneCall != nil {
		s.oneCall.begin()
		return
	}
	s.boxed = s.boxed[:0]
}

func (s *flushStmt) int(v int64) {
	if s.oneCall != nil {
		s.oneCall.int(v)
		return
	}
	s.boxed = append(s.boxed, v)
}

func (s *flushStmt) text(v string) {
	if s.oneCall != nil {
		s.oneCall.text(v)
		return
	}
	s.boxed = append(s.boxed, v)
}

func (s *flushStmt) null() {
	if s.oneCall != nil {
		s.oneCall.null()
		return
	}
	s.boxed = append(s.boxed, nil)
}

func (s *flushStmt) run() error {
	if s.oneCall == nil {
		err := s.exec(s.boxed...)
		clear(s.boxed)
		return err
	}
	if err := s.ctx.Err(); err != nil {
		return err
	}
	return s.oneCall.run()
}

// driverValue is argument i as database/sql would convert it
// (driver.DefaultParameterConverter), where it is not already a value the
// driver takes.
func driverValue(i int, a any) (any, error) {
	if driver.IsValue(a) {
		return a, nil
	}
	v, err := driver.DefaultParameterConverter.ConvertValue(a)
	if err != nil {
		return nil, fmt.Errorf("argument %d: %w", i+1, err)
	}
	return v, nil
}

// writerConn takes the writer's connection for one batch.
func writerConn(ctx context.Context, db *sql.DB) (*sql.Conn, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("writer connection: %w", err)
	}
	return conn, nil
}
