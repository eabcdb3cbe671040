package projections

import (
	"context"
	"database/sql"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestFlushBindsInOneCall: a flush statement on the writer executes in one
// cgo call, and stores exactly what go-sqlite3's own execution stores, for
// every kind of value, including text with NUL bytes and invalid UTF-8,
// empty text and blobs, and the integer and float edges. It fails if a new
// go-sqlite3 no longer lets the flush read its statement's handle.
func TestFlushBindsInOneCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t)
	if _, err := db.writer.ExecContext(ctx, `CREATE TABLE kinds (path TEXT, a, b, c, d, e, f, g)`); err != nil {
		t.Fatal(err)
	}
	rows := [][]any{
		{int64(0), int64(math.MaxInt64), int64(math.MinInt64), -1, uint32(7), true, false},
		{"", "plain", "nul\x00inside", "\xff\xfe invalid", strings.Repeat("é", 300), "", "end"},
		{[]byte{}, []byte{0, 1, 2}, []byte(nil), nil, 1.5, math.Inf(-1), -0.0},
		{time.Date(2026, 12, 4, 17, 0, 0, 123456789, time.FixedZone("x", 3600)), int8(-3), "x", []byte("y"), nil, float32(0.25), math.SmallestNonzeroFloat64},
	}
	insert := `INSERT INTO kinds VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	for _, oneCall := range []bool{true, false} {
		path := map[bool]string{true: "one call", false: "driver"}[oneCall]
		err := inBatchTx(t, db, true, func(b *batch, _ *sql.Tx) error {
			return b.inFlush(func() error {
				s, err := b.stmt(insert)
				if err != nil {
					return err
				}
				if s.oneCall == nil {
					t.Fatal("the flush statement does not execute in one call: go-sqlite3's statement handle was not found")
				}
				if !oneCall {
					s.oneCall = nil
				} else if err := s.exec(path, 1, 2); err == nil || !strings.Contains(err.Error(), "3 values for 8 parameters") {
					// Stricter than the driver, which binds NULL to the
					// parameters left. The statement stays usable.
					t.Errorf("3 values for 8 parameters: %v", err)
				}
				if oneCall {
					// SQLite's own errors come back with its message.
					check, err := b.stmt(`INSERT INTO checkpoint (id, position) VALUES (?, ?)`)
					if err != nil {
						return err
					}
					if err := check.exec(2, 1); err == nil || !strings.Contains(err.Error(), "CHECK constraint failed") {
						t.Errorf("a row the table refuses: %v", err)
					}
				}
				for _, r := range rows {
					if err := s.exec(append([]any{path}, r...)...); err != nil {
						return err
					}
				}
				return nil
			})
		})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	read := func(path string) [][]any {
		return typedRows(t, db, `SELECT typeof(a), a, typeof(b), b, typeof(c), c, typeof(d), d, typeof(e), e, typeof(f), f, typeof(g), g FROM kinds WHERE path = ? ORDER BY rowid`, 14, path)
	}
	one, drv := read("one call"), read("driver")
	if len(one) != len(rows) || !reflect.DeepEqual(one, drv) {
		t.Fatalf("one call stored\n%v\nthe driver stored\n%v", one, drv)
	}
}

// TestTypedValuesBindAsBoxedOnes: values laid out one by one (begin, int,
// text, null, run), as the ledger's flush does, store exactly what exec
// stores for the same values boxed, on the one-call path and on the
// driver's, and the typed one-call path allocates nothing per value.
func TestTypedValuesBindAsBoxedOnes(t *testing.T) {
	// Not parallel: testing.AllocsPerRun refuses to run in a parallel test.
	ctx := context.Background()
	db := openDB(t)
	if _, err := db.writer.ExecContext(ctx, `CREATE TABLE typed (path TEXT, a, b, c, d, e, f)`); err != nil {
		t.Fatal(err)
	}
	type value struct {
		text   string
		int    int64
		isText bool
		isNull bool
	}
	ints := func(v int64) value { return value{int: v} }
	texts := func(v string) value { return value{text: v, isText: true} }
	rows := [][]value{
		{ints(0), ints(math.MaxInt64), ints(math.MinInt64), ints(-1), ints(255), ints(256)},
		{texts(""), texts("plain"), texts("nul\x00inside"), texts("\xff\xfe invalid"), texts(strings.Repeat("é", 300)), {isNull: true}},
	}
	insert := `INSERT INTO typed VALUES (?, ?, ?, ?, ?, ?, ?)`
	paths := []string{"boxed one call", "typed one call", "boxed driver", "typed driver"}
	for _, path := range paths {
		err := inBatchTx(t, db, true, func(b *batch, _ *sql.Tx) error {
			return b.inFlush(func() error {
				s, err := b.stmt(insert)
				if err != nil {
					return err
				}
				if s.oneCall == nil {
					t.Fatal("the flush statement does not execute in one call")
				}
				if strings.HasSuffix(path, "driver") {
					s.oneCall = nil
				}
				typed := strings.HasPrefix(path, "typed")
				for _, r := range rows {
					if !typed {
						args := []any{path}
						for _, v := range r {
							switch {
							case v.isNull:
								args = append(args, nil)
							case v.isText:
								args = append(args, v.text)
							default:
								args = append(args, v.int)
							}
						}
						if err := s.exec(args...); err != nil {
							return err
						}
						continue
					}
					s.begin()
					s.text(path)
					for _, v := range r {
						switch {
						case v.isNull:
							s.null()
						case v.isText:
							s.text(v.text)
						default:
							s.int(v.int)
						}
					}
					if err := s.run(); err != nil {
						return err
					}
				}
				if path == "typed one call" {
					// Warmed up above: the arrays are reused, and no value
					// is boxed. (Its rows are not read below.)
					if allocs := testing.AllocsPerRun(20, func() {
						s.begin()
						s.text("alloc probe")
						for _, v := range rows[1] {
							s.text(v.text)
						}
						_ = s.run()
					}); allocs != 0 {
						t.Errorf("a typed one-call execution allocates %.0f times, want 0", allocs)
					}
				}
				return nil
			})
		})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	read := func(path string) [][]any {
		return typedRows(t, db, `SELECT typeof(a), a, typeof(b), b, typeof(c), c, typeof(d), d, typeof(e), e, typeof(f), f FROM typed WHERE path = ? ORDER BY rowid`, 12, path)
	}
	want := read(paths[0])
	if len(want) != len(rows) {
		t.Fatalf("%d rows stored, want %d", len(want), len(rows))
	}
	for _, path := range paths[1:] {
		if got := read(path); !reflect.DeepEqual(got, want) {
			t.Errorf("%s stored\n%v\nboxed one call stored\n%v", path, got, want)
		}
	}
}

// typedRows reads query's rows of columns values each, as stored (the
// tests above select each column with its typeof).
func typedRows(t *testing.T, db *DB, query string, columns int, args ...any) (got [][]any) {
	t.Helper()
	rs, err := db.writer.QueryContext(context.Background(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		row := make([]any, columns)
		ptrs := make([]any, columns)
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		got = append(got, row)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}
