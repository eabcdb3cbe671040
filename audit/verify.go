// Package audit checks creditd's numbers against the event log alone:
// verify recomputes every line from the events with the domain's own rules
// (not the projection code) and compares the read models, and checks the
// hash chain that links each commit to the one before it on its subject.
package audit

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// Log is what verify reads; *eventstore.Store satisfies it.
type Log interface {
	ReadAll(ctx context.Context, afterSeq, upTo uint64, fn func(eventstore.StoredMsg) error) error
	ReadSubject(ctx context.Context, subject string, afterSeq uint64, fn func(eventstore.StoredMsg) error) error
	PartitionOf(tenantID int64) int
	LastPosition(ctx context.Context) (uint64, error)
	Quarantined(ctx context.Context) (eventstore.Quarantined, error)
}

// Difference is one number that does not match.
type Difference struct {
	CreditType string `json:"credit_type,omitempty"`
	Field      string `json:"field"`
	FromEvents string `json:"from_events"`
	ReadModel  string `json:"read_model"`
}

// TenantReport is one tenant's result.
type TenantReport struct {
	TenantID    int64        `json:"tenant_id"`
	OK          bool         `json:"ok"`
	Lines       int          `json:"lines"`
	Events      int          `json:"events"`
	Differences []Difference `json:"differences"`
}

// BrokenLink is the first commit of a subject that does not name the hash
// of the commit before it.
type BrokenLink struct {
	Subject  string `json:"subject"`
	Position uint64 `json:"position"`
	Expected string `json:"expected_prev"`
	Found    string `json:"found_prev"`
	Detail   string `json:"detail,omitempty"`
	// SHA256 is the hash of the message's bytes, which `creditd
	// quarantine` asks for; empty for a line's impossible event.
	SHA256 string `json:"sha256,omitempty"`
}

// SetAside is a foreign message an operator set aside (creditd
// quarantine): passed over, and listed so it stays visible.
type SetAside struct {
	Subject  string `json:"subject"`
	Position uint64 `json:"position"`
}

// CheckpointReport is the check of one stored checkpoint: its heads are
// the hashes of the commits at those positions, and its balances digest
// is the digest recomputed from the log at those heads.
type CheckpointReport struct {
	Position       uint64 `json:"position"`
	OK             bool   `json:"ok"`
	BalancesDigest string `json:"balances_digest"`
	Problem        string `json:"problem,omitempty"`
}

// Report is the result of a verification.
type Report struct {
	OK bool `json:"ok"`
	// Position is how far the log was verified: the read models' checkpoint.
	Position    uint64             `json:"position"`
	Commits     int                `json:"commits"`
	Chains      []BrokenLink       `json:"broken_chains"`
	SetAside    []SetAside         `json:"set_aside,omitempty"`
	Checkpoints []CheckpointReport `json:"checkpoints"`
	Tenants     []TenantReport     `json:"tenants"`
}

type lineKey struct {
	tenantID   int64
	creditType string
}

type usageTotals struct {
	requests int64
	credits  decimal.Decimal
}

// state is what verify recomputes from the events.
type state struct {
	lines    map[lineKey]*domain.Line
	ledger   map[lineKey][]decimal.Decimal // movement amounts, in order
	usage    map[int64]*usageTotals
	events   map[int64]int
	tenants  map[int64]bool
	lastHash map[string]string
	broken   map[string]bool
	report   *Report
	// quarantined are the messages set aside.
	quarantined eventstore.Quarantined
	// checkpoints to check, with what the log says at their heads.
	checkpoints []pendingCheckpoint
	partitionOf func(int64) int
}

type pendingCheckpoint struct {
	position uint64
	cp       eventstore.Checkpoint
	// heads not reached yet, by subject
	waiting  map[string]eventstore.Head
	snapshot map[domain.LineRef]*domain.Line
	problem  string
}

// Verify recomputes every tenant (or one, tenantID > 0) from the log up to
// the read models' checkpoint and compares them.
func Verify(ctx context.Context, log Log, readModels *sql.DB, tenantID int64) (Report, error) {
	// One read transaction holds one snapshot of the read models from the
	// checkpoint to the last comparison: the projector keeps writing while
	// the log is replayed, and rows newer than the checkpoint would read as
	// differences. In WAL mode this delays WAL checkpoints until it ends.
	tx, err := readModels.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Report{}, fmt.Errorf("read models: %w", err)
	}
	defer tx.Rollback()
	var position uint64
	if err := tx.QueryRowContext(ctx, `SELECT coalesce((SELECT position FROM checkpoint WHERE id = 1), 0)`).Scan(&position); err != nil {
		return Report{}, fmt.Errorf("read models' checkpoint: %w", err)
	}
	report := Report{Position: position}
	st := &state{lines: map[lineKey]*domain.Line{}, ledger: map[lineKey][]decimal.Decimal{}, usage: map[int64]*usageTotals{},
		events: map[int64]int{}, tenants: map[int64]bool{}, lastHash: map[string]string{}, broken: map[string]bool{}, report: &report,
		partitionOf: log.PartitionOf}
	if st.quarantined, err = log.Quarantined(ctx); err != nil {
		return report, err
	}
	if tenantID == 0 {
		if err := st.loadCheckpoints(ctx, log, position); err != nil {
			return report, err
		}
	}
	apply := func(m eventstore.StoredMsg) error {
		if m.Sequence > position {
			return errStop
		}
		report.Commits++
		st.commit(m, tenantID)
		return nil
	}
	if tenantID > 0 {
		err = log.ReadSubject(ctx, eventstore.PartitionSubject(log.PartitionOf(tenantID)), 0, apply)
		if err == nil || err == errStop {
			err = log.ReadSubject(ctx, eventstore.RegistrySubject, 0, func(m eventstore.StoredMsg) error {
				if m.Sequence > position {
					return errStop
				}
				st.commit(m, tenantID)
				return nil
			})
		}
	} else {
		err = log.ReadAll(ctx, 0, position, apply)
	}
	if err != nil && err != errStop {
		return report, err
	}
	if tenantID == 0 {
		// The read models may have stopped short of the log's end, at a
		// message they cannot apply: check the links of the rest too, so
		// such a message is named.
		last, err := log.LastPosition(ctx)
		if err != nil {
			return report, err
		}
		if err := log.ReadAll(ctx, position, last, func(m eventstore.StoredMsg) error {
			st.link(m)
			return nil
		}); err != nil {
			return report, err
		}
	}
	if err := st.compare(ctx, tx, tenantID); err != nil {
		return report, err
	}
	st.finishCheckpoints()
	report.OK = len(report.Chains) == 0
	for _, c := range report.Checkpoints {
		report.OK = report.OK && c.OK
	}
	for _, t := range report.Tenants {
		report.OK = report.OK && t.OK
	}
	return report, nil
}

var errStop = fmt.Errorf("stop")

// commit checks a commit's link and applies its events.
func (st *state) commit(m eventstore.StoredMsg, only int64) {
	if m.Subject == eventstore.CheckpointSubject {
		return // checked by loadCheckpoints and finishCheckpoints
	}
	defer st.reachHeads(m.Subject, m.Sequence)
	c, ok := st.link(m)
	if !ok {
		return
	}
	for _, env := range c.Events {
		if only > 0 && env.TenantID != only {
			continue
		}
		st.event(env, m.Sequence)
	}
}

// link checks that a commit decodes and links to the one before it on its
// subject; ok is false when it holds no events to apply.
func (st *state) link(m eventstore.StoredMsg) (c eventstore.Commit, ok bool) {
	if !eventstore.IsCommitSubject(m.Subject) {
		return c, false
	}
	if st.quarantined.Holds(m) {
		// Set aside: the next commit links to the one before it.
		st.report.SetAside = append(st.report.SetAside, SetAside{Subject: m.Subject, Position: m.Sequence})
		return c, false
	}
	c, err := eventstore.DecodeCommit(m.Data)
	expected := st.lastHash[m.Subject]
	st.lastHash[m.Subject] = eventstore.Hash(m.Data)
	if err != nil {
		st.breakChain(BrokenLink{Subject: m.Subject, Position: m.Sequence, Expected: expected, Detail: "undecodable: " + err.Error(), SHA256: eventstore.Hash(m.Data)})
		return c, false
	}
	if c.Prev != expected {
		st.breakChain(BrokenLink{Subject: m.Subject, Position: m.Sequence, Expected: expected, Found: c.Prev, SHA256: eventstore.Hash(m.Data)})
	}
	return c, true
}

func (st *state) breakChain(b BrokenLink) {
	if st.broken[b.Subject] {
		return // the first broken link of a subject is the one to report
	}
	st.broken[b.Subject] = true
	st.report.Chains = append(st.report.Chains, b)
}

// event applies one event with the domain's rules and notes the ledger
// movements and usage it makes. Apply panics on an impossible event (a
// tampered history can hold one); that is reported, not fatal.
func (st *state) event(env domain.Envelope, position uint64) {
	switch e := env.Event.(type) {
	case domain.TenantCreated:
		st.tenants[e.TenantID] = true
		return
	case domain.APIKeyIssued, domain.APIKeyRevoked, domain.SettingsChanged, domain.NoticesConfigured:
		return
	}
	key := lineKey{env.TenantID, env.CreditType}
	st.tenants[env.TenantID] = true
	st.events[env.TenantID]++
	line := st.lines[key]
	if line == nil {
		line = domain.NewLine(env.CreditType)
		st.lines[key] = line
	}
	defer func() {
		if r := recover(); r != nil {
			st.breakChain(BrokenLink{Subject: fmt.Sprintf("tenant %d line %s", env.TenantID, env.CreditType), Position: position,
				Detail: fmt.Sprintf("an event the rules cannot apply: %v", r)})
		}
	}()
	line.Apply(env.Event)
	u := st.usage[env.TenantID]
	if u == nil {
		u = &usageTotals{}
		st.usage[env.TenantID] = u
	}
	move := func(amount decimal.Decimal) { st.ledger[key] = append(st.ledger[key], amount) }
	switch e := env.Event.(type) {
	case domain.CreditsGranted:
		move(e.Amount)
	case domain.UsageDebited:
		u.requests++
		u.credits = u.credits.Add(e.Amount)
		if !e.Amount.IsZero() {
			move(e.Amount.Neg())
		}
	case domain.ReservationCaptured:
		u.requests++
		u.credits = u.credits.Add(e.Amount)
		if !e.Amount.IsZero() {
			move(e.Amount.Neg())
		}
	case domain.CreditsAdjusted:
		move(e.Amount)
	case domain.GrantExpired:
		move(e.Amount.Neg())
	case domain.GrantVoided:
		move(e.Amount.Neg())
	case domain.UsageReversed:
		u.credits = u.credits.Sub(e.Amount)
		move(e.Amount)
	}
}

func micro(v int64) decimal.Decimal { return decimal.New(v, -6) }

// loadCheckpoints reads the checkpoints up to position; a head at position
// 0 (an empty subject) is reached from the start.
func (st *state) loadCheckpoints(ctx context.Context, log Log, position uint64) error {
	err := log.ReadSubject(ctx, eventstore.CheckpointSubject, 0, func(m eventstore.StoredMsg) error {
		if m.Sequence > position {
			return errStop
		}
		cp, err := eventstore.DecodeCheckpoint(m.Data)
		pc := pendingCheckpoint{position: m.Sequence, cp: cp, waiting: map[string]eventstore.Head{}, snapshot: map[domain.LineRef]*domain.Line{}}
		if err != nil {
			pc.problem = err.Error()
		}
		for _, h := range cp.Heads {
			if h.Position == 0 {
				if h.Hash != "" {
					pc.problem = fmt.Sprintf("%s: an empty subject with hash %s", h.Subject, h.Hash)
				}
				continue
			}
			pc.waiting[h.Subject] = h
		}
		st.checkpoints = append(st.checkpoints, pc)
		return nil
	})
	if err == errStop {
		return nil
	}
	return err
}

// reachHeads, after the commit at seq on subject, checks the checkpoints
// whose head of that subject is this commit, and takes their snapshot of
// the subject's lines.
func (st *state) reachHeads(subject string, seq uint64) {
	for i := range st.checkpoints {
		pc := &st.checkpoints[i]
		h, ok := pc.waiting[subject]
		if !ok || h.Position != seq {
			continue
		}
		delete(pc.waiting, subject)
		if got := st.lastHash[subject]; got != h.Hash && pc.problem == "" {
			pc.problem = fmt.Sprintf("%s at %d hashes to %s, the checkpoint says %s", subject, seq, got, h.Hash)
		}
		var p int
		if _, err := fmt.Sscanf(subject, "credits.events.%d", &p); err != nil {
			continue // the registry holds no lines
		}
		for key, line := range st.lines {
			if st.partitionOf(key.tenantID) == p {
				snap := *line
				pc.snapshot[domain.LineRef{TenantID: key.tenantID, CreditType: key.creditType}] = &snap
			}
		}
	}
}

func (st *state) finishCheckpoints() {
	st.report.Checkpoints = []CheckpointReport{}
	for _, pc := range st.checkpoints {
		r := CheckpointReport{Position: pc.position, BalancesDigest: pc.cp.BalancesDigest, Problem: pc.problem}
		for subject, h := range pc.waiting {
			if r.Problem == "" {
				r.Problem = fmt.Sprintf("%s has no commit at %d", subject, h.Position)
			}
		}
		if r.Problem == "" {
			if got := domain.BalancesDigest(pc.snapshot); got != pc.cp.BalancesDigest {
				r.Problem = fmt.Sprintf("balances digest recomputed from the log is %s", got)
			}
		}
		r.OK = r.Problem == ""
		st.report.Checkpoints = append(st.report.Checkpoints, r)
	}
}

// querier is the part of a read transaction the comparison uses.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// compare holds the recomputation against the read models.
func (st *state) compare(ctx context.Context, db querier, only int64) error {
	ids := make([]int64, 0, len(st.tenants))
	for id := range st.tenants {
		if only == 0 || id == only {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		tr := TenantReport{TenantID: id, Events: st.events[id]}
		diff := func(ct, field string, fromEvents, readModel decimal.Decimal) {
			if !fromEvents.Equal(readModel) {
				tr.Differences = append(tr.Differences, Difference{CreditType: ct, Field: field, FromEvents: fromEvents.String(), ReadModel: readModel.String()})
			}
		}
		seen := map[string]bool{}
		for key, line := range st.lines {
			if key.tenantID != id {
				continue
			}
			tr.Lines++
			seen[key.creditType] = true
			var granted, adjusted, used, expired, reserved int64
			err := db.QueryRowContext(ctx, `SELECT granted, adjusted, used, expired, reserved FROM lines WHERE tenant_id = ? AND credit_type = ?`,
				id, key.creditType).Scan(&granted, &adjusted, &used, &expired, &reserved)
			if err != nil && err != sql.ErrNoRows {
				return err
			}
			diff(key.creditType, "granted", line.Granted, micro(granted))
			diff(key.creditType, "adjusted", line.Adjusted, micro(adjusted))
			diff(key.creditType, "used", line.Used, micro(used))
			diff(key.creditType, "expired", line.Expired, micro(expired))
			diff(key.creditType, "reserved", line.Reserved, micro(reserved))
			diff(key.creditType, "available", line.Available(), micro(granted+adjusted-used-expired-reserved))
			if err := st.compareLedger(ctx, db, key, diff); err != nil {
				return err
			}
		}
		rows, err := db.QueryContext(ctx, `SELECT credit_type FROM lines WHERE tenant_id = ?`, id)
		if err != nil {
			return err
		}
		for rows.Next() {
			var ct string
			rows.Scan(&ct)
			if !seen[ct] {
				tr.Differences = append(tr.Differences, Difference{CreditType: ct, Field: "line", FromEvents: "absent", ReadModel: "present"})
			}
		}
		rows.Close()
		u := st.usage[id]
		if u == nil {
			u = &usageTotals{}
		}
		var requests, credits int64
		if err := db.QueryRowContext(ctx, `SELECT coalesce((SELECT requests FROM tenant_totals WHERE tenant_id = ?), 0),
			coalesce((SELECT credits FROM tenant_totals WHERE tenant_id = ?), 0)`, id, id).Scan(&requests, &credits); err != nil {
			return err
		}
		diff("", "lifetime_requests", decimal.NewFromInt(u.requests), decimal.NewFromInt(requests))
		diff("", "lifetime_credits", u.credits, micro(credits))
		tr.OK = len(tr.Differences) == 0
		if tr.Differences == nil {
			tr.Differences = []Difference{}
		}
		st.report.Tenants = append(st.report.Tenants, tr)
	}
	return nil
}

// compareLedger checks the line's ledger: the movements the events made,
// in order, and every balance_after equal to the running sum.
func (st *state) compareLedger(ctx context.Context, db querier, key lineKey, diff func(ct, field string, a, b decimal.Decimal)) error {
	rows, err := db.QueryContext(ctx, `SELECT amount, balance_after FROM ledger WHERE tenant_id = ? AND credit_type = ? ORDER BY entry_id`, key.tenantID, key.creditType)
	if err != nil {
		return err
	}
	defer rows.Close()
	want := st.ledger[key]
	var running int64
	i := 0
	for rows.Next() {
		var amount, after int64
		if err := rows.Scan(&amount, &after); err != nil {
			return err
		}
		running += amount
		if after != running {
			diff(key.creditType, fmt.Sprintf("ledger[%d].balance_after", i), micro(running), micro(after))
			return nil
		}
		if i < len(want) && !want[i].Equal(micro(amount)) {
			diff(key.creditType, fmt.Sprintf("ledger[%d].amount", i), want[i], micro(amount))
			return nil
		}
		i++
	}
	diff(key.creditType, "ledger_entries", decimal.NewFromInt(int64(len(want))), decimal.NewFromInt(int64(i)))
	return rows.Err()
}
