package projections

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// ErrOutOfOrder: a commit arrived that is not the next position. Nothing is
// applied; the commit is redelivered after the ones before it.
var ErrOutOfOrder = errors.New("projection: commit out of order")

// batch applies commits inside one SQLite transaction. Hot aggregates (line
// totals, the usage cube, counters, grant remainders) are summed in memory
// and written once per batch, so a commit of hundreds of usage events costs
// a handful of statements per touched row, not per event.
type batch struct {
	ctx      context.Context
	tx       *sql.Tx
	position uint64
	lines    map[lineKey]*lineRow
	// known is the projector's cache of committed line rows; the batch
	// reads it and never writes it (a rolled-back batch leaves no trace).
	known   map[lineKey]lineRow
	cube    map[cubeKey]*cubeDelta
	totals  map[int64]*totalsDelta
	byRoute map[endpointKey]*countDelta
	grants  map[grantKey]*grantDelta
	// conn is the connection tx runs on; scope, while a flush runs, its
	// driver connection (flush_stmt.go).
	conn  *sql.Conn
	scope *flushScope
	// stmtCache keeps the flush statements from one batch to the next on
	// the writer's connection; nil, each flush prepares its own.
	stmtCache  *flushStmtCache
	ledgerRows []ledgerRow
	// The last line and grant looked up: consecutive events mostly touch
	// the same ones, and a hit spares hashing their keys.
	lastLineKey  lineKey
	lastLine     *lineRow
	lastGrantKey grantKey
	lastGrant    *grantDelta
	// carryFrom: flushCube leaves the cells of this day and later in cube,
	// for the next batch (a bulk load; math.MaxInt64 otherwise). dayMax is
	// the latest usage day met.
	carryFrom, dayMax int64
	// preparedDims is the event being applied's dimension texts when the
	// decoder looked them up (see prepareDims), else nil.
	preparedDims *dimsText
	// dims is the projector's cache of usage dimensions' texts.
	dims map[dimsKey]*dimsText
	// thresholds caches tenants' notice thresholds for the batch (read from
	// the projector's cache, or the tenants table).
	thresholds        map[int64][]int64
	thresholdsChanged bool
	noticesWritten    int
	// commitAt is the recording time of the commit being applied.
	commitAt int64
}

func newBatch(ctx context.Context, conn *sql.Conn, tx *sql.Tx, position uint64, known map[lineKey]lineRow, dims map[dimsKey]*dimsText) *batch {
	return &batch{
		ctx: ctx, conn: conn, tx: tx, position: position, known: known, dims: dims, carryFrom: math.MaxInt64,
		lines: map[lineKey]*lineRow{}, cube: map[cubeKey]*cubeDelta{}, totals: map[int64]*totalsDelta{},
		byRoute: map[endpointKey]*countDelta{}, grants: map[grantKey]*grantDelta{}, thresholds: map[int64][]int64{},
	}
}

// applyCommit applies one commit at seq. It refuses a commit that is not the
// next position: projections never skip and never apply twice.
func (b *batch) applyCommit(seq uint64, commit eventstore.Commit, dims []*dimsText) error {
	if seq != b.position+1 {
		return fmt.Errorf("%w: got %d, next is %d", ErrOutOfOrder, seq, b.position+1)
	}
	at := Micros(commit.RecordedAt)
	b.commitAt = at
	for i, env := range commit.Events {
		b.preparedDims = nil
		if dims != nil {
			b.preparedDims = dims[i]
		}
		if err := b.applyEvent(env, seq, at); err != nil {
			return fmt.Errorf("commit %d event %d (%s): %w", seq, i, env.Event.EventType(), err)
		}
	}
	b.position = seq
	return nil
}

func (b *batch) applyEvent(env domain.Envelope, seq uint64, at int64) error {
	switch env.Event.(type) {
	case domain.TenantCreated, domain.APIKeyIssued, domain.APIKeyRevoked, domain.SettingsChanged, domain.NoticesConfigured:
		return b.applyRegistry(env.Event)
	case domain.UsageBatchRecorded:
		// A key for the write side's index; no read model shows it, and it
		// must not touch the line (a batch of duplicates would stamp it).
		return nil
	}
	line, err := b.line(env.TenantID, env.CreditType, at)
	if err != nil {
		return err
	}
	line.lastUpdated = at
	before := line.balance() - line.reserved
	if err := b.applyLineEvent(env, line, seq, at); err != nil {
		return err
	}
	return b.checkNotices(env, before, line.balance()-line.reserved, seq, at)
}

func (b *batch) applyLineEvent(env domain.Envelope, line *lineRow, seq uint64, at int64) error {
	switch e := env.Event.(type) {
	case domain.CreditsGranted:
		line.granted += Micro(e.Amount)
		metadata := metadataJSON(e.Metadata)
		if err := b.insertGrant(env, e, metadata, seq, at); err != nil {
			return err
		}
		b.ledger(env, line, ledgerCredit, Micro(e.Amount), e.GrantID, grantDescription(e), e.Reference, metadata, seq, at)
		return nil
	case domain.UsageDebited:
		amount := Micro(e.Amount)
		line.used += amount
		b.burn(env, e.Burned)
		dims := b.preparedDims
		if dims == nil {
			dims = b.dimsText(env.CreditType, e.Dimensions)
		}
		b.countUsage(env, dims, e.Dimensions, amount, Day(e.OccurredAt), Micros(e.OccurredAt))
		if amount == 0 {
			return nil
		}
		description := e.Description
		if description == "" {
			description = dims.description
		}
		b.usageLedger(env, line, -amount, e.UsageID, description, dims.metadata, seq, at, Micros(e.OccurredAt))
		return nil
	case domain.DebitRejected:
		b.total(env.TenantID).rejected++
		return nil
	case domain.ReservationRejected:
		// On record for auditors and idempotency; it moves nothing.
		return nil
	case domain.CreditsReserved:
		line.reserved += Micro(e.Amount)
		return b.insertReservation(env, e, at)
	case domain.ReservationCaptured:
		held := e.Amount.Add(e.Released)
		line.reserved -= Micro(held)
		line.used += Micro(e.Amount)
		b.burn(env, e.Burned)
		dims, err := b.closeReservation(env.TenantID, e.ReservationID, "captured", Micro(e.Amount), at)
		if err != nil {
			return err
		}
		text := b.dimsText(env.CreditType, dims)
		b.countUsage(env, text, dims, Micro(e.Amount), at/(86400*1e6), at)
		if e.Amount.IsZero() {
			return nil
		}
		b.usageLedger(env, line, -Micro(e.Amount), e.ReservationID, text.description, text.metadata, seq, at, at)
		return nil
	case domain.ReservationReleased:
		line.reserved -= Micro(e.Amount)
		_, err := b.closeReservation(env.TenantID, e.ReservationID, string(e.Reason), 0, at)
		return err
	case domain.CreditsAdjusted:
		line.adjusted += Micro(e.Amount)
		b.burn(env, e.Burned)
		b.ledger(env, line, ledgerAdjustment, Micro(e.Amount), e.AdjustmentID, e.Reason, e.Reference, "{}", seq, at)
		return nil
	case domain.GrantExpired:
		line.expired += Micro(e.Amount)
		g := b.grant(env, e.GrantID)
		g.remaining -= Micro(e.Amount)
		g.expired += Micro(e.Amount)
		b.ledger(env, line, ledgerExpiry, -Micro(e.Amount), e.GrantID, expiryDescription(e.Trigger), "", "{}", seq, at)
		return nil
	case domain.UsageReversed:
		line.used -= Micro(e.Amount)
		for _, r := range e.Returned {
			b.grant(env, r.GrantID).remaining += Micro(r.Amount)
		}
		dims := b.dimsText(env.CreditType, e.Dimensions)
		b.uncountUsage(env, dims, Micro(e.Amount), Day(e.OccurredAt))
		b.ledger(env, line, ledgerAdjustment, Micro(e.Amount), e.UsageID, "usage reversed: "+e.Reason, "", dims.metadata, seq, at)
		b.occurred(Micros(e.OccurredAt))
		return nil
	case domain.GrantVoided:
		line.adjusted -= Micro(e.Amount)
		g := b.grant(env, e.GrantID)
		g.remaining -= Micro(e.Amount)
		g.voided += Micro(e.Amount)
		b.ledger(env, line, ledgerAdjustment, -Micro(e.Amount), e.GrantID, "grant voided: "+e.Reason, "", "{}", seq, at)
		return nil
	case domain.GrantExpiryChanged:
		var expires any
		if e.ExpiresAt != nil {
			expires = Micros(*e.ExpiresAt)
		}
		_, err := b.tx.ExecContext(b.ctx, `UPDATE grants SET expires_at = ? WHERE tenant_id = ? AND credit_type = ? AND grant_id = ?`,
			expires, env.TenantID, env.CreditType, e.GrantID)
		return err
	case domain.AutoReloadConfigured:
		line.autoReloadEnabled = e.Enabled
		line.autoReloadThreshold = Micro(e.Threshold)
		line.autoReloadAmount = Micro(e.Amount)
		return nil
	case domain.CreditLineConfigured:
		line.overdraftLimit = Micro(e.OverdraftLimit)
		return nil
	case domain.SubscriptionStarted:
		var price any
		if e.PriceAmount != nil {
			price = Micro(*e.PriceAmount)
		}
		_, err := b.tx.ExecContext(b.ctx, `INSERT INTO subscriptions (tenant_id, subscription_id, credit_type, credits_per_period, period,
			starts_at, price_amount, price_currency, rollover) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			env.TenantID, e.SubscriptionID, env.CreditType, Micro(e.CreditsPerPeriod), string(e.Period), Micros(e.StartsAt), price, e.PriceCurrency, e.Rollover)
		return err
	case domain.SubscriptionCanceled:
		_, err := b.tx.ExecContext(b.ctx, `UPDATE subscriptions SET cancel_at = ? WHERE tenant_id = ? AND subscription_id = ?`,
			Micros(e.EndsAt), env.TenantID, e.SubscriptionID)
		return err
	}
	return fmt.Errorf("no projection for %T", env.Event)
}

// flush writes the batch's aggregates and the checkpoint.
func (b *batch) flush() error {
	err := b.inFlush(func() error {
		for _, step := range []func() error{b.flushLedger, b.flushLines, b.flushGrants, b.flushCube, b.flushTotals} {
			if err := step(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, err = b.tx.ExecContext(b.ctx, `INSERT INTO checkpoint (id, position) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET position = excluded.position`, b.position)
	return err
}

// expiryDescription says why expired credits went: at the grant's expiry,
// or later, given back to an expired grant by a hold's end or a reversal.
func expiryDescription(trigger string) string {
	if trigger == "" {
		return "grant expired"
	}
	return "grant expired: credits given back by " + trigger
}

func grantDescription(e domain.CreditsGranted) string {
	if e.Description != "" {
		return e.Description
	}
	return string(e.Source) + " grant"
}

// usageDescription is the ledger description of a usage that has none.
func usageDescription(d domain.Dimensions) string {
	switch {
	case d.Module != "" && d.Endpoint != "":
		return "usage: " + d.Module + " " + d.Endpoint
	case d.Module != "":
		return "usage: " + d.Module
	case d.Endpoint != "":
		return "usage: " + d.Endpoint
	}
	return "usage"
}
