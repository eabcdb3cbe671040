package projections

import "database/sql"

type lineKey struct {
	tenantID   int64
	creditType string
}

// lineRow is one row of the balances read model.
type lineRow struct {
	granted, adjusted, used, expired, reserved int64
	overdraftLimit                             int64
	autoReloadEnabled                          bool
	autoReloadThreshold, autoReloadAmount      int64
	lastUpdated                                int64
}

func (l *lineRow) balance() int64 { return l.granted + l.adjusted - l.used - l.expired }

// line returns the batch's working copy of a line row: from the batch, the
// committed cache, the database, or new.
func (b *batch) line(tenantID int64, creditType string, at int64) (*lineRow, error) {
	key := lineKey{tenantID, creditType}
	if b.lastLine != nil && b.lastLineKey == key {
		return b.lastLine, nil
	}
	l, err := b.lookupLine(key, at)
	if err == nil {
		b.lastLineKey, b.lastLine = key, l
	}
	return l, err
}

func (b *batch) lookupLine(key lineKey, at int64) (*lineRow, error) {
	tenantID, creditType := key.tenantID, key.creditType
	if l, ok := b.lines[key]; ok {
		return l, nil
	}
	if l, ok := b.known[key]; ok {
		b.lines[key] = &l
		return &l, nil
	}
	var l lineRow
	var enabled int
	err := b.tx.QueryRowContext(b.ctx, `SELECT granted, adjusted, used, expired, reserved, overdraft_limit,
		auto_reload_enabled, auto_reload_threshold, auto_reload_amount, last_updated
		FROM lines WHERE tenant_id = ? AND credit_type = ?`, tenantID, creditType).Scan(
		&l.granted, &l.adjusted, &l.used, &l.expired, &l.reserved, &l.overdraftLimit,
		&enabled, &l.autoReloadThreshold, &l.autoReloadAmount, &l.lastUpdated)
	switch {
	case err == sql.ErrNoRows:
		l = lineRow{lastUpdated: at}
	case err != nil:
		return nil, err
	}
	l.autoReloadEnabled = enabled != 0
	b.lines[key] = &l
	return &l, nil
}

func (b *batch) flushLines() error {
	stmt, err := b.stmt(`INSERT INTO lines (tenant_id, credit_type, granted, adjusted, used, expired, reserved,
		overdraft_limit, auto_reload_enabled, auto_reload_threshold, auto_reload_amount, last_updated)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, credit_type) DO UPDATE SET granted = excluded.granted, adjusted = excluded.adjusted,
		used = excluded.used, expired = excluded.expired, reserved = excluded.reserved, overdraft_limit = excluded.overdraft_limit,
		auto_reload_enabled = excluded.auto_reload_enabled, auto_reload_threshold = excluded.auto_reload_threshold,
		auto_reload_amount = excluded.auto_reload_amount, last_updated = excluded.last_updated`)
	if err != nil {
		return err
	}
	for key, l := range b.lines {
		if err := stmt.exec(key.tenantID, key.creditType, l.granted, l.adjusted, l.used, l.expired, l.reserved,
			l.overdraftLimit, l.autoReloadEnabled, l.autoReloadThreshold, l.autoReloadAmount, l.lastUpdated); err != nil {
			return err
		}
	}
	return nil
}
