package projections

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"
)

// The WAL's checkpoints while the projection runs live. SQLite's automatic
// checkpoint runs inside the commit that crosses its threshold: every
// ~160 MiB of WAL (walAutocheckpointPages), one commit copied it all into
// the database file and synced it, 220–260 ms in `creditd bench`, and
// every commit queued behind it waited as long (the projection lag's
// tail). Live consumption instead checkpoints from a connection of its own
// (checkpointWAL), beside the writer: a passive checkpoint takes no lock
// a writer waits on.
const (
	// walAutocheckpointPages is the writer's automatic checkpoint (16 KiB
	// pages), in force when nothing checkpoints beside it: rebuild,
	// replay, the tools.
	walAutocheckpointPages = 10000
	// walCheckpointBytes is the WAL size past which checkpointWAL copies
	// it into the database file, at most every walCheckpointEvery.
	walCheckpointBytes = 32 << 20
	walCheckpointEvery = time.Second
)

// checkpointWAL checkpoints the WAL from a connection of its own until ctx
// ends, with the writer's automatic checkpoints off meanwhile. It returns
// at once, the writer's own checkpoints kept, if it cannot start.
func (db *DB) checkpointWAL(ctx context.Context, log *slog.Logger) {
	conn, err := sql.Open("sqlite3", "file:"+url.PathEscape(db.Path)+"?"+dsnCommon)
	if err != nil {
		log.Warn("read models: no WAL checkpoints beside the writer", "err", err)
		return
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)
	if err := conn.PingContext(ctx); err != nil {
		log.Warn("read models: no WAL checkpoints beside the writer", "err", err)
		return
	}
	if err := db.Exec(ctx, `PRAGMA wal_autocheckpoint = 0`); err != nil {
		log.Warn("read models: no WAL checkpoints beside the writer", "err", err)
		return
	}
	defer func() {
		if err := db.Exec(context.WithoutCancel(ctx), fmt.Sprintf(`PRAGMA wal_autocheckpoint = %d`, walAutocheckpointPages)); err != nil {
			log.Warn("read models: restore the writer's WAL checkpoints", "err", err)
		}
	}()
	ticker := time.NewTicker(walCheckpointEvery)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		info, err := os.Stat(db.Path + "-wal")
		if err != nil || info.Size() < walCheckpointBytes {
			continue
		}
		// The WAL restarts from its beginning at the first write after a
		// checkpoint that copied every frame and no reader still needs
		// them; until then its file keeps its size, and each passive
		// checkpoint copies only the frames added since the last.
		var busy, frames, copied int
		if err := conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied); err != nil && ctx.Err() == nil {
			log.Warn("read models: WAL checkpoint", "err", err)
		}
	}
}
