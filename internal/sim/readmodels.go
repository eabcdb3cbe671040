package sim

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/creditd/creditd/audit"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/projections"
)

// liveProjection is a projector fed as the log grows, in steps, the way the
// consumer applies commits as they come.
type liveProjection struct {
	db        *projections.DB
	projector *projections.Projector
}

func openProjection(ctx context.Context, path string) (*liveProjection, error) {
	db, err := projections.Open(path)
	if err != nil {
		return nil, err
	}
	p, err := projections.NewProjector(ctx, db, nil)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &liveProjection{db: db, projector: p}, nil
}

func (l *liveProjection) catchUp(ctx context.Context, store *eventstore.Store) error {
	return l.projector.CatchUp(ctx, store, 0)
}

func (l *liveProjection) close() { l.db.Close() }

// rebuild replays the whole log into a fresh database, as `creditd rebuild`
// does.
func rebuild(ctx context.Context, store *eventstore.Store, dir string) (*liveProjection, error) {
	p, err := openProjection(ctx, filepath.Join(dir, "rebuilt.db"))
	if err != nil {
		return nil, err
	}
	if err := p.projector.Replay(ctx, store, projections.ReplayOptions{Bulk: true}); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

type lineKey struct {
	tenant int
	line   string
}

// readTotals reads every line of the lines read model, by model tenant.
func readTotals(ctx context.Context, db *sql.DB, tenantIndex map[int64]int) (map[lineKey]Totals, error) {
	rows, err := db.QueryContext(ctx, `SELECT tenant_id, credit_type, granted, adjusted, used, expired, reserved FROM lines`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[lineKey]Totals{}
	for rows.Next() {
		var tenantID, granted, adjusted, used, expired, reserved int64
		var line string
		if err := rows.Scan(&tenantID, &line, &granted, &adjusted, &used, &expired, &reserved); err != nil {
			return nil, err
		}
		tenant, ok := tenantIndex[tenantID]
		if !ok {
			return nil, fmt.Errorf("the read model has a line of tenant %d, which the simulation never created", tenantID)
		}
		t := Totals{Granted: projections.FromMicro(granted), Adjusted: projections.FromMicro(adjusted), Used: projections.FromMicro(used),
			Expired: projections.FromMicro(expired), Reserved: projections.FromMicro(reserved)}
		t.Balance = t.Granted.Add(t.Adjusted).Sub(t.Used).Sub(t.Expired)
		out[lineKey{tenant, line}] = t
	}
	return out, rows.Err()
}

// compareReadModel checks that every line of the read model equals the
// model's, committed or with its due work applied (a refused write may or
// may not have stored the due work before it), and that no line is missing
// or extra.
func compareReadModel(ctx context.Context, name string, db *sql.DB, model *Model, tenantIDs []int64, now time.Time) error {
	index := map[int64]int{}
	for i, id := range tenantIDs {
		index[id] = i
	}
	got, err := readTotals(ctx, db, index)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	keys := map[lineKey]bool{}
	for k := range got {
		keys[k] = true
	}
	for tenant := range tenantIDs {
		for _, line := range model.Lines(tenant) {
			keys[lineKey{tenant, line}] = true
		}
	}
	var problems []string
	for _, k := range slices.SortedFunc(maps.Keys(keys), func(a, b lineKey) int {
		if a.tenant != b.tenant {
			return a.tenant - b.tenant
		}
		return strings.Compare(a.line, b.line)
	}) {
		committed := model.State(k.tenant, k.line).totals()
		due := model.StateAfterDue(k.tenant, k.line, now).totals()
		have := got[k] // zero when the read model has no such line
		if len(diffTotals(committed, have)) == 0 || len(diffTotals(due, have)) == 0 {
			continue
		}
		problems = append(problems, fmt.Sprintf("tenant %d line %s: model != %s: %s (model %s; %s %s)",
			k.tenant, k.line, name, joinProblems(diffTotals(committed, have)), committed, name, have))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "\n"))
	}
	return nil
}

// verify runs the audit's verification of the log against a read model.
func verify(ctx context.Context, name string, store *eventstore.Store, db *sql.DB) error {
	report, err := audit.Verify(ctx, store, db, 0)
	if err != nil {
		return fmt.Errorf("verify against the %s: %w", name, err)
	}
	if report.OK {
		return nil
	}
	var problems []string
	for _, c := range report.Chains {
		problems = append(problems, fmt.Sprintf("broken chain %s at %d: %s", c.Subject, c.Position, c.Detail))
	}
	for _, t := range report.Tenants {
		for _, d := range t.Differences {
			problems = append(problems, fmt.Sprintf("tenant %d %s %s: events %s, read model %s", t.TenantID, d.CreditType, d.Field, d.FromEvents, d.ReadModel))
		}
	}
	return fmt.Errorf("verify against the %s fails: %s", name, strings.Join(problems, "; "))
}
