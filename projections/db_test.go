package projections

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/shopspring/decimal"
)

func TestMicroIsExact(t *testing.T) {
	t.Parallel()
	for _, text := range []string{"0", "1", "-1", "0.000001", "-0.000001", "1.5", "1.500000", "1.5000000000", "999999999999.999999",
		"-999999999999.999999", "123456", "1e6", "1.2e-5", "100.50", "0.1000000000000000000000"} {
		d := decimal.RequireFromString(text)
		want := d.Shift(6).IntPart()
		if got := Micro(d); got != want {
			t.Errorf("Micro(%s) = %d, want %d", text, got, want)
		}
		if !FromMicro(Micro(d)).Equal(d) {
			t.Errorf("FromMicro(Micro(%s)) = %s", text, FromMicro(Micro(d)))
		}
	}
}

// Read models written by an older projection (a database without this
// version's format number) are refused with ErrFormatOutdated, so that no
// one serves rows an older projection left incomplete: creditd serve
// rebuilds them from the log. A new database is stamped, and opens again.
func TestOpenRefusesReadModelsOfAnOlderFormat(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rm.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(path); err != nil {
		t.Fatalf("reopening a database of this format: %v", err)
	}
	// What every database made before the format number looks like.
	if _, err := db.writer.Exec(`PRAGMA user_version = 0`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path); !errors.Is(err, ErrFormatOutdated) {
		t.Fatalf("an older format opened: %v, want ErrFormatOutdated", err)
	}
	// A newer format than this binary's is refused too: it cannot know
	// what the newer projection wrote.
	raw, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, formatVersion+1)); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if _, err := Open(path); err == nil || errors.Is(err, ErrFormatOutdated) {
		t.Fatalf("a newer format: %v, want a refusal other than ErrFormatOutdated", err)
	}
}
