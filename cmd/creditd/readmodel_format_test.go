package main

import (
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	_ "github.com/mattn/go-sqlite3"
)

// Read models an older creditd wrote are rebuilt from the log when serve
// starts, not served as they are: the database is stamped with an older
// format and its ledger emptied (rows an older projection never wrote), and
// after the restart the ledger, the balance and the format are whole again.
func TestServeRebuildsReadModelsOfAnOlderFormat(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin, dataDir, addr := newBinaryRun(t)
	base := "http://" + addr
	stop := startServer(t, bin, dataDir, addr)
	tenant := createTenant(t, base, dataDir)
	post(t, base+"/v1/grants", tenant.APIKey, `{"grant_id":"g1","amount":"10"}`, http.StatusCreated, nil)
	var usage struct{ Position uint64 }
	post(t, base+"/v1/usage", tenant.APIKey, `{"events":[{"id":"u1","amount":"2.5"}]}`, http.StatusOK, &usage)
	get(t, fmt.Sprintf("%s/v1/balance?min_position=%d", base, usage.Position), tenant.APIKey)
	stop()

	path := filepath.Join(dataDir, readModelFile)
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM ledger; PRAGMA user_version = 0`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	stop = startServer(t, bin, dataDir, addr)
	defer stop()
	ledger := get(t, base+"/v1/ledger", tenant.APIKey)
	if entries, _ := ledger["entries"].([]any); len(entries) != 2 {
		t.Fatalf("ledger after the restart: %v, want the grant and the usage", ledger)
	}
	balance := get(t, base+"/v1/balance", tenant.APIKey)
	if got := fmt.Sprint(balance["total"].(map[string]any)["available"]); got != "7.5" {
		t.Fatalf("available after the rebuild = %s, want 7.5", got)
	}
	stop()
	db, err = sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var version int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil || version < 1 {
		t.Fatalf("format after the rebuild: %d %v", version, err)
	}
}
