-- creditd read models. Amounts and quantities are INTEGER micro-units
-- (value × 10^6) so SUM stays exact; times are INTEGER Unix microseconds
-- (UTC); days are INTEGER days since 1970-01-01 (UTC).

CREATE TABLE IF NOT EXISTS checkpoint (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  position INTEGER NOT NULL
);

-- The last commit applied on each commit subject (credits.registry,
-- credits.events.<n>), written with the checkpoint: the next commit on the
-- subject must link to hash (projections/chain.go). A database made before
-- this table learns it from the log once (Projector.learnHeads).
CREATE TABLE IF NOT EXISTS chain_heads (
  subject  TEXT    PRIMARY KEY,
  position INTEGER NOT NULL,
  hash     TEXT    NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS tenants (
  tenant_id       INTEGER PRIMARY KEY,
  name            TEXT    NOT NULL,
  email           TEXT    NOT NULL,
  currency        TEXT    NOT NULL,
  currency_config TEXT    NOT NULL DEFAULT '{}',
  created_at      INTEGER NOT NULL,
  -- notice thresholds: JSON array of micro-credit integers, highest first
  notice_thresholds TEXT  NOT NULL DEFAULT '[]',
  webhook_url     TEXT    NOT NULL DEFAULT ''
);

-- The notice outbox: written in the same transaction as the event that
-- crossed a threshold (so each crossing is recorded exactly once), then
-- delivered on NATS and to the webhook by the dispatcher.
CREATE TABLE IF NOT EXISTS notices (
  notice_id    INTEGER PRIMARY KEY,
  tenant_id    INTEGER NOT NULL,
  credit_type  TEXT    NOT NULL,
  kind         TEXT    NOT NULL, -- low_balance | depleted
  threshold    INTEGER NOT NULL,
  available    INTEGER NOT NULL,
  position     INTEGER NOT NULL,
  created_at   INTEGER NOT NULL,
  delivered_at INTEGER,
  attempts     INTEGER NOT NULL DEFAULT 0,
  next_attempt INTEGER NOT NULL DEFAULT 0,
  last_error   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS notices_pending ON notices (notice_id) WHERE delivered_at IS NULL;
-- The tenants with pending notices, read in tenant order past the ones
-- another instance owns (Dispatcher.Owns).
CREATE INDEX IF NOT EXISTS notices_pending_tenant ON notices (tenant_id) WHERE delivered_at IS NULL;
-- A notice's equals, which rank it for its key (NoticeKey).
CREATE INDEX IF NOT EXISTS notices_position ON notices (position);
-- A tenant's latest notices for GET /v1/notices.
CREATE INDEX IF NOT EXISTS notices_tenant ON notices (tenant_id, notice_id);

CREATE TABLE IF NOT EXISTS subscriptions (
  tenant_id          INTEGER NOT NULL,
  subscription_id    TEXT    NOT NULL,
  credit_type        TEXT    NOT NULL,
  credits_per_period INTEGER NOT NULL,
  period             TEXT    NOT NULL,
  starts_at          INTEGER NOT NULL,
  price_amount       INTEGER,
  price_currency     TEXT    NOT NULL,
  rollover           INTEGER NOT NULL,
  cancel_at          INTEGER,
  PRIMARY KEY (tenant_id, subscription_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS api_keys (
  key_id     TEXT    PRIMARY KEY,
  tenant_id  INTEGER NOT NULL,
  prefix     TEXT    NOT NULL,
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);

CREATE TABLE IF NOT EXISTS lines (
  tenant_id             INTEGER NOT NULL,
  credit_type           TEXT    NOT NULL,
  granted               INTEGER NOT NULL DEFAULT 0,
  adjusted              INTEGER NOT NULL DEFAULT 0,
  used                  INTEGER NOT NULL DEFAULT 0,
  expired               INTEGER NOT NULL DEFAULT 0,
  reserved              INTEGER NOT NULL DEFAULT 0,
  overdraft_limit       INTEGER NOT NULL DEFAULT 0,
  auto_reload_enabled   INTEGER NOT NULL DEFAULT 0,
  auto_reload_threshold INTEGER NOT NULL DEFAULT 0,
  auto_reload_amount    INTEGER NOT NULL DEFAULT 0,
  last_updated          INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, credit_type)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS grants (
  tenant_id       INTEGER NOT NULL,
  credit_type     TEXT    NOT NULL,
  grant_id        TEXT    NOT NULL,
  source          TEXT    NOT NULL,
  priority        INTEGER NOT NULL,
  amount          INTEGER NOT NULL,
  remaining       INTEGER NOT NULL,
  expired         INTEGER NOT NULL DEFAULT 0,
  voided          INTEGER NOT NULL DEFAULT 0,
  effective_at    INTEGER NOT NULL,
  expires_at      INTEGER,
  cost_per_credit INTEGER,
  currency        TEXT    NOT NULL,
  description     TEXT    NOT NULL,
  reference       TEXT    NOT NULL,
  metadata        TEXT    NOT NULL,
  granted_at      INTEGER NOT NULL,
  position        INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, credit_type, grant_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS reservations (
  tenant_id      INTEGER NOT NULL,
  reservation_id TEXT    NOT NULL,
  credit_type    TEXT    NOT NULL,
  amount         INTEGER NOT NULL,
  captured       INTEGER NOT NULL DEFAULT 0,
  state          TEXT    NOT NULL, -- held | captured | released | expired
  dimensions     TEXT    NOT NULL, -- JSON of domain.Dimensions
  reserved_at    INTEGER NOT NULL,
  expires_at     INTEGER NOT NULL,
  closed_at      INTEGER,
  PRIMARY KEY (tenant_id, reservation_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reservations_open ON reservations (tenant_id, credit_type, reserved_at);

-- One row per credit movement. The *_after columns are the line's running
-- totals after the entry, so a balance at any past instant is one lookup.
CREATE TABLE IF NOT EXISTS ledger (
  entry_id       INTEGER PRIMARY KEY,
  tenant_id      INTEGER NOT NULL,
  credit_type    TEXT    NOT NULL,
  type           TEXT    NOT NULL, -- credit | debit | adjustment | expiry
  amount         INTEGER NOT NULL, -- signed: debits and expiries are negative
  balance_after  INTEGER NOT NULL,
  granted_after  INTEGER NOT NULL,
  adjusted_after INTEGER NOT NULL,
  used_after     INTEGER NOT NULL,
  expired_after  INTEGER NOT NULL,
  source_id      TEXT    NOT NULL, -- grant, usage, reservation or adjustment id
  description    TEXT    NOT NULL,
  reference      TEXT    NOT NULL,
  metadata       TEXT    NOT NULL,
  created_at     INTEGER NOT NULL,
  position       INTEGER NOT NULL,
  -- occurred_at is the usage's own time, on debits (captures: the capture
  -- time) and on reversals (the reversed debit's), NULL on other entries;
  -- exact range sums over usage read it at the range edges, where a
  -- reversal nets against its debit.
  occurred_at    INTEGER
);
-- Every index of a rowid table ends with the rowid, which entry_id is: the
-- indexes below are ordered by (..., created_at, entry_id) and cover
-- entry_id without naming it. Named, it was stored twice in every entry
-- (a fifth of each index; databases created before keep that definition,
-- which orders and answers alike).
CREATE INDEX IF NOT EXISTS ledger_tenant_time ON ledger (tenant_id, created_at);
-- The type index leaves debits out. They are nearly every row, and each
-- index keyed by tenant costs a live insert a page per tenant its
-- transaction touches, written whole to the WAL at the commit: on a ledger
-- of 5M rows over 10,000 tenants, 100,000 more debits cost 37,641 bytes of
-- WAL a row instead of 50,777 and went in at 5,269 rows/s instead of 3,338
-- (BenchmarkLedgerInsertLargeHistory). Debits are found by
-- ledger_tenant_time and ledger_usage_time instead. A query reaches this
-- index only by stating its condition, type != 'debit', word for word
-- (queries.notDebit): SQLite proves a partial index usable from the
-- query's terms, not from a bound type. Databases made before hold the
-- whole index; they are of format 1 and built afresh (formatVersion).
CREATE INDEX IF NOT EXISTS ledger_tenant_type_time ON ledger (tenant_id, type, created_at) WHERE type != 'debit';
CREATE INDEX IF NOT EXISTS ledger_line_time ON ledger (tenant_id, credit_type, created_at);
CREATE INDEX IF NOT EXISTS ledger_usage_time ON ledger (tenant_id, occurred_at) WHERE occurred_at IS NOT NULL;

-- Ledger entries counted per line, type and UTC day of created_at, so a
-- page's total costs a few rows, not a scan of millions of entries.
CREATE TABLE IF NOT EXISTS ledger_counts (
  tenant_id   INTEGER NOT NULL,
  credit_type TEXT    NOT NULL,
  type        TEXT    NOT NULL,
  day         INTEGER NOT NULL,
  entries     INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, type, day, credit_type)
) WITHOUT ROWID;

-- Ledger entries counted per type and UTC day of when what they record
-- happened: occurred_at where the entry has one (usage debits and their
-- reversals), created_at otherwise. The account profile dates its ledger
-- so, and a total over a range of that time costs a few rows here, as
-- ledger_counts makes one over created_at cost.
CREATE TABLE IF NOT EXISTS ledger_occurred_counts (
  tenant_id INTEGER NOT NULL,
  type      TEXT    NOT NULL,
  day       INTEGER NOT NULL,
  entries   INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, type, day)
) WITHOUT ROWID;

-- The usage cube: one row per tenant, UTC day and combination of
-- dimensions. custom is '' or the canonical JSON object of the custom map,
-- queried with json_extract.
CREATE TABLE IF NOT EXISTS usage_daily (
  tenant_id       INTEGER NOT NULL,
  day             INTEGER NOT NULL,
  credit_type     TEXT    NOT NULL,
  module          TEXT    NOT NULL,
  service         TEXT    NOT NULL,
  user_id         TEXT    NOT NULL,
  workflow_id     TEXT    NOT NULL,
  workflow_run_id TEXT    NOT NULL,
  endpoint        TEXT    NOT NULL,
  success         INTEGER NOT NULL,
  custom          TEXT    NOT NULL,
  credits         INTEGER NOT NULL,
  quantity        INTEGER NOT NULL,
  requests        INTEGER NOT NULL,
  successes       INTEGER NOT NULL,
  failures        INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, day, credit_type, module, service, user_id, workflow_id, workflow_run_id, endpoint, success, custom)
) WITHOUT ROWID;

-- Rollups of the cube by one dimension (and by none: dimension ''), for
-- the reads that group or filter by at most one of them: stats, dashboards,
-- monthly reports. A few rows per day whatever the cube's cardinality.
CREATE TABLE IF NOT EXISTS usage_rollup (
  tenant_id INTEGER NOT NULL,
  dimension TEXT    NOT NULL, -- '' | credit_type | module | service | user_id | endpoint
  day       INTEGER NOT NULL,
  value     TEXT    NOT NULL,
  credits   INTEGER NOT NULL,
  quantity  INTEGER NOT NULL,
  requests  INTEGER NOT NULL,
  successes INTEGER NOT NULL,
  failures  INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, dimension, day, value)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS tenant_totals (
  tenant_id     INTEGER PRIMARY KEY,
  requests      INTEGER NOT NULL,
  successes     INTEGER NOT NULL,
  failures      INTEGER NOT NULL,
  credits       INTEGER NOT NULL,
  quantity      INTEGER NOT NULL,
  rejected      INTEGER NOT NULL,
  last_usage_at INTEGER
);

CREATE TABLE IF NOT EXISTS endpoint_totals (
  tenant_id INTEGER NOT NULL,
  endpoint  TEXT    NOT NULL,
  requests  INTEGER NOT NULL,
  successes INTEGER NOT NULL,
  failures  INTEGER NOT NULL,
  PRIMARY KEY (tenant_id, endpoint)
) WITHOUT ROWID;
