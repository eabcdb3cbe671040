package projections

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"runtime/debug"
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

// flushScope is one sql.Conn.Raw call: the statements it prepared are
// closed when it ends, since the driver connection may not be used after.
type flushScope struct {
	ctx   context.Context
	conn  driver.ConnPrepareContext
	stmts map[string]*flushStmt
}

// flushStmt is a statement of a flushScope.
type flushStmt struct {
	stmt driver.StmtExecContext
	ctx  context.Context
	args []driver.NamedValue
	// oneCall executes the statement in one cgo call (sqlite_exec.go); nil
	// when the driver's statement does not allow it.
	oneCall *sqliteExec
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
		b.scope = &flushScope{ctx: b.ctx, conn: conn, stmts: map[string]*flushStmt{}}
		defer func() {
			for _, s := range b.scope.stmts {
				err = errors.Join(err, s.stmt.(driver.Stmt).Close())
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
		return s, nil
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
