package projections

/*
#include <stdint.h>
#include <stdio.h>
#include <string.h>

// The SQLite C API, compiled into this binary by github.com/mattn/go-sqlite3:
// only the declarations this file uses, so that it needs no header.
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;
int sqlite3_bind_null(sqlite3_stmt*, int);
int sqlite3_bind_int64(sqlite3_stmt*, int, long long);
int sqlite3_bind_double(sqlite3_stmt*, int, double);
int sqlite3_bind_text64(sqlite3_stmt*, int, const char*, unsigned long long, void(*)(void*), unsigned char);
int sqlite3_bind_blob64(sqlite3_stmt*, int, const void*, unsigned long long, void(*)(void*));
int sqlite3_bind_parameter_count(sqlite3_stmt*);
int sqlite3_step(sqlite3_stmt*);
int sqlite3_reset(sqlite3_stmt*);
int sqlite3_clear_bindings(sqlite3_stmt*);
sqlite3 *sqlite3_db_handle(sqlite3_stmt*);
const char *sqlite3_errmsg(sqlite3*);
int sqlite3_prepare_v3(sqlite3*, const char*, int, unsigned int, sqlite3_stmt**, const char**);
int sqlite3_finalize(sqlite3_stmt*);

// creditd_prepare prepares the n bytes of sql as a statement kept for reuse
// (SQLITE_PREPARE_PERSISTENT: 0x01), and sets *rest to the bytes after its
// first statement. SQLite copies the text it keeps.
static int creditd_prepare(sqlite3 *db, const char *sql, int n, sqlite3_stmt **out, int *rest) {
	const char *tail = 0;
	int rc = sqlite3_prepare_v3(db, sql, n, 0x01, out, &tail);
	*rest = tail ? n - (int)(tail - sql) : 0;
	return rc;
}

enum { kindNull, kindInt, kindFloat, kindText, kindBlob };

// creditd_exec binds n values, steps the statement to its end, then resets
// it and clears its bindings, all in one call. The values are bound
// SQLITE_STATIC (0: SQLite neither copies nor frees them): they are Go
// memory, which C may not keep once the call returns, and here it does not.
// It returns SQLite's result code (SQLITE_DONE: 101 on success) and, on an
// error, copies the message into msg.
static int creditd_exec(sqlite3_stmt *s, int n, const unsigned char *kinds, const int64_t *ints,
		const char *bytes, char *msg, int msgcap) {
	int rc = 0;
	double f;
	if (sqlite3_bind_parameter_count(s) != n) {
		snprintf(msg, msgcap, "%d values for %d parameters", n, sqlite3_bind_parameter_count(s));
		return 25; // SQLITE_RANGE
	}
	for (int i = 0; i < n && rc == 0; i++) {
		switch (kinds[i]) {
		case kindNull: rc = sqlite3_bind_null(s, i+1); break;
		case kindInt: rc = sqlite3_bind_int64(s, i+1, ints[i]); break;
		case kindFloat: memcpy(&f, &ints[i], sizeof f); rc = sqlite3_bind_double(s, i+1, f); break;
		case kindText: rc = sqlite3_bind_text64(s, i+1, bytes + (ints[i] >> 32), ints[i] & 0xffffffff, 0, 1); break;
		case kindBlob: rc = sqlite3_bind_blob64(s, i+1, bytes + (ints[i] >> 32), ints[i] & 0xffffffff, 0); break;
		}
	}
	if (rc == 0) {
		do { rc = sqlite3_step(s); } while (rc == 100); // SQLITE_ROW
	}
	if (rc != 101) {
		snprintf(msg, msgcap, "%s", sqlite3_errmsg(sqlite3_db_handle(s)));
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}
*/
import "C"

import (
	"database/sql/driver"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"
	"unsafe"
)

// A flush statement's execution in one cgo call (sqliteExec), instead of
// the driver's one call per bound value. Binding was the largest part of a
// flush: a rebuild of 2M events spent 2.0 s of its 5.4 s applying in
// go-sqlite3's binds (one cgo call per value, and for text a copy that
// SQLite mallocs and frees), more than in SQLite's own inserts (1.5 s).
// Here the values are laid out in two Go arrays and a byte arena, bound
// without copies and stepped in one call.
//
// The statement is still go-sqlite3's: it prepares, caches and finalizes
// it; only its handle is read, from the driver's unexported field (there is
// no API for it). A driver whose statement lacks that field, or holds it
// under another type, is used the ordinary way (sqliteHandle's false);
// TestFlushBindsInOneCall fails then, so an upgrade of the driver cannot
// lose this silently.

// sqliteHandle is the handle of a go-sqlite3 statement.
func sqliteHandle(stmt driver.Stmt) (*C.sqlite3_stmt, bool) {
	p, ok := driverHandle(stmt, "s", "*sqlite3._Ctype_struct_sqlite3_stmt")
	return (*C.sqlite3_stmt)(p), ok
}

// sqliteConnHandle is the handle of a go-sqlite3 connection.
func sqliteConnHandle(conn any) (*C.sqlite3, bool) {
	p, ok := driverHandle(conn, "db", "*sqlite3._Ctype_struct_sqlite3")
	return (*C.sqlite3)(p), ok
}

// driverHandle is the C pointer in x's field name, when x points to a
// struct with that field, of go-sqlite3's cgo type typ for the C struct:
// the same C type as this package's, under another Go name.
func driverHandle(x any, name, typ string) (unsafe.Pointer, bool) {
	v := reflect.ValueOf(x)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	f := v.Elem().FieldByName(name)
	if !f.IsValid() || f.Type().String() != typ || f.IsNil() {
		return nil, false
	}
	return f.UnsafePointer(), true
}

// preparePersistent prepares query on db for many executions over a long
// life (a flush statement kept in flushStmtCache). go-sqlite3 prepares
// for a few executions: SQLite then builds the statement in the
// connection's lookaside memory, a small store of fast allocations meant
// for short-lived objects. Kept statements held it, and every execution
// of every statement fell back to malloc: a flush's executions took a
// fifth longer, as much as the preparations spared (BenchmarkApplySmallBatches).
// The caller finalizes the statement (finalize) while the connection is
// lent to it.
func preparePersistent(db *C.sqlite3, query string) (*C.sqlite3_stmt, error) {
	if len(query) == 0 || len(query) > math.MaxInt32 {
		return nil, fmt.Errorf("a statement of %d bytes", len(query))
	}
	var stmt *C.sqlite3_stmt
	var rest C.int
	rc := C.creditd_prepare(db, (*C.char)(unsafe.Pointer(unsafe.StringData(query))), C.int(len(query)), &stmt, &rest)
	if rc != 0 {
		return nil, fmt.Errorf("sqlite: prepare: %s (%d)", C.GoString(C.sqlite3_errmsg(db)), int(rc))
	}
	if stmt == nil || strings.TrimSpace(query[len(query)-int(rest):]) != "" {
		finalize(stmt)
		return nil, fmt.Errorf("sqlite: prepare: not one statement: %.40q", query)
	}
	return stmt, nil
}

// finalize releases a statement preparePersistent made.
func finalize(stmt *C.sqlite3_stmt) error {
	if stmt == nil {
		return nil
	}
	if rc := C.sqlite3_finalize(stmt); rc != 0 {
		return fmt.Errorf("sqlite: finalize: %d", int(rc))
	}
	return nil
}

// sqliteExec is a statement's reusable argument layout.
type sqliteExec struct {
	stmt  *C.sqlite3_stmt
	kinds []byte
	ints  []int64 // integers; a float's bits; for text and blobs, offset << 32 | length
	bytes []byte
	// msg receives SQLite's error message; a field, since a local array
	// handed to C escapes to the heap on every execution.
	msg [256]C.char
}

// arenaMax bounds the text and blob bytes of one execution (offsets and
// lengths are packed in 32 bits each).
const arenaMax = math.MaxInt32

// exec binds args (driver values, or what database/sql would convert to
// them), runs the statement to its end and resets it.
func (e *sqliteExec) exec(args []any) error {
	e.begin()
	for i, a := range args {
		a, err := driverValue(i, a)
		if err != nil {
			return err
		}
		switch v := a.(type) {
		case nil:
			e.null()
		case int64:
			e.int(v)
		case bool:
			n := int64(0)
			if v {
				n = 1
			}
			e.int(n)
		case float64:
			e.add(C.kindFloat, int64(math.Float64bits(v)))
		case string:
			e.text(v)
		case []byte:
			if v == nil {
				e.null()
				break
			}
			e.add(C.kindBlob, int64(len(e.bytes))<<32|int64(len(v)))
			e.bytes = append(e.bytes, v...)
		case time.Time:
			start := len(e.bytes)
			e.bytes = v.AppendFormat(e.bytes, "2006-01-02 15:04:05.999999999-07:00")
			e.add(C.kindText, int64(start)<<32|int64(len(e.bytes)-start))
		default:
			return fmt.Errorf("argument %d: %T is not a value SQLite takes", i+1, a)
		}
	}
	return e.run()
}

// begin, null, int, text and run lay out one execution's values one by
// one, for callers that have them unboxed: a value boxed into an interface
// for exec allocates (an int64 past 255, every string).
func (e *sqliteExec) begin() { e.kinds, e.ints, e.bytes = e.kinds[:0], e.ints[:0], e.bytes[:0] }

func (e *sqliteExec) null() { e.add(C.kindNull, 0) }

func (e *sqliteExec) int(v int64) { e.add(C.kindInt, v) }

func (e *sqliteExec) text(v string) {
	e.add(C.kindText, int64(len(e.bytes))<<32|int64(len(v)))
	e.bytes = append(e.bytes, v...)
}

func (e *sqliteExec) add(kind int, n int64) {
	e.kinds = append(e.kinds, byte(kind))
	e.ints = append(e.ints, n)
}

// run binds the values laid out since begin, runs the statement to its end
// and resets it.
func (e *sqliteExec) run() error {
	if len(e.bytes) > arenaMax {
		return fmt.Errorf("more than %d bytes of text in one statement", arenaMax)
	}
	n := len(e.kinds)
	// Never empty, so each array has a first element to point at.
	e.kinds, e.ints, e.bytes = append(e.kinds, 0), append(e.ints, 0), append(e.bytes, 0)
	rc := C.creditd_exec(e.stmt, C.int(n), (*C.uchar)(unsafe.Pointer(&e.kinds[0])), (*C.int64_t)(unsafe.Pointer(&e.ints[0])),
		(*C.char)(unsafe.Pointer(&e.bytes[0])), &e.msg[0], C.int(len(e.msg)))
	if rc != 101 { // SQLITE_DONE
		return fmt.Errorf("sqlite: %s (%d)", C.GoString(&e.msg[0]), int(rc))
	}
	return nil
}
