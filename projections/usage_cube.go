package projections

import (
	"cmp"
	"maps"
	"math"
	"slices"

	"github.com/creditd/creditd/domain"
)

// dimsCacheMax bounds the projector's cache of dimension texts; usage
// dimensions repeat (the cube's cardinality is far below the event count),
// so a few thousand entries usually cover everything a batch meets.
const dimsCacheMax = 1 << 16

// dimsKey identifies a combination of usage dimensions, custom map included
// (as its canonical JSON), with the line's credit type and the usage's
// outcome: with those, one *dimsText and a tenant and day name a cube cell,
// and the cell's key is three words, hashed and compared as plain memory
// rather than field by field with a string among them (the cube lookup was
// a replay writer's costliest step after SQLite). Quantity is per event.
type dimsKey struct {
	creditType, module, service, userID, workflowID, runID, endpoint, custom string
	success                                                                  bool
}

// dimsText is what the read models store for one combination of
// dimensions: computed once per combination instead of once per event,
// which keeps JSON building and string concatenation off the apply path.
type dimsText struct {
	dimsKey
	description string // the ledger description of a usage that has none
	metadata    string // the ledger metadata: the dimensions as JSON
}

// dimsText returns the cached texts of d on a line of creditType. Equal
// keys share one *dimsText within a batch, so cube cells can be keyed by
// the pointer.
func (b *batch) dimsText(creditType string, d domain.Dimensions) *dimsText {
	return lookupDims(b.dims, creditType, d)
}

func lookupDims(cache map[dimsKey]*dimsText, creditType string, d domain.Dimensions) *dimsText {
	key := dimsKey{creditType: creditType, module: d.Module, service: d.Service, userID: d.UserID, workflowID: d.WorkflowID,
		runID: d.WorkflowRunID, endpoint: d.Endpoint, custom: customJSON(d.Custom), success: d.Success}
	if t, ok := cache[key]; ok {
		return t
	}
	t := &dimsText{dimsKey: key, description: usageDescription(d), metadata: dimensionsJSON(d)}
	cache[key] = t
	return t
}

// prepareDims looks up the dimension texts of the commits' usage debits
// ahead of the writer, on the goroutine that decodes them: a replay's
// SQLite writer is its bottleneck, the decoder has time to spare. cache is
// the decoder's own, emptied between calls once full; a batch may then
// hold two *dimsText for equal dimensions (one from the writer's cache),
// which costs a second upsert of the same cube row, never a wrong sum.
func prepareDims(commits []Decoded, cache map[dimsKey]*dimsText) {
	if len(cache) > dimsCacheMax {
		clear(cache)
	}
	for i := range commits {
		events := commits[i].Commit.Events
		var dims []*dimsText
		for j, env := range events {
			if e, ok := env.Event.(domain.UsageDebited); ok {
				if dims == nil {
					dims = make([]*dimsText, len(events))
				}
				dims[j] = lookupDims(cache, env.CreditType, e.Dimensions)
			}
		}
		commits[i].dims = dims
	}
}

// cubeKey is one cell of the usage cube.
type cubeKey struct {
	tenantID int64
	day      int64
	dims     *dimsText // credit type and outcome included
}

type cubeDelta struct {
	credits, quantity, requests, successes, failures int64
	// total and route are the batch's counters of the cell's tenant and
	// endpoint, looked up once per cell and batch rather than once per
	// event: a replay counts each cell a few times a batch, and the two
	// lookups were a third of counting. A carried cell's copy starts
	// without them (cloneCells), since they belong to the batch.
	total *totalsDelta
	route *countDelta
}

type totalsDelta struct {
	requests, successes, failures, credits, quantity, rejected int64
	lastUsageAt                                                int64
}

type endpointKey struct {
	tenantID int64
	endpoint string
}

type countDelta struct{ requests, successes, failures int64 }

// cell is the batch's pending change to one cube cell.
func (b *batch) cell(env domain.Envelope, dims *dimsText, day int64) *cubeDelta {
	key := cubeKey{tenantID: env.TenantID, day: day, dims: dims}
	c, ok := b.cube[key]
	if !ok {
		c = &cubeDelta{}
		b.cube[key] = c
	}
	return c
}

// countUsage adds one usage (a debit, or a captured reservation) to the
// cube, on the UTC day it occurred, and to the tenant's counters.
func (b *batch) countUsage(env domain.Envelope, dims *dimsText, d domain.Dimensions, credits, day, occurredAt int64) {
	b.dayMax = max(b.dayMax, day)
	c := b.cell(env, dims, day)
	quantity := Micro(d.Quantity)
	c.credits += credits
	c.quantity += quantity
	c.requests++
	if c.route == nil {
		c.total = b.total(env.TenantID)
		c.route = b.route(env.TenantID, d.Endpoint)
	}
	t, e := c.total, c.route
	t.requests++
	t.credits += credits
	t.quantity += quantity
	t.lastUsageAt = max(t.lastUsageAt, occurredAt)
	e.requests++
	if d.Success {
		c.successes++
		t.successes++
		e.successes++
	} else {
		c.failures++
		t.failures++
		e.failures++
	}
}

// uncountUsage takes a reversed debit's credits off the cube cell and day
// it was counted on; the request itself happened and stays counted.
func (b *batch) uncountUsage(env domain.Envelope, dims *dimsText, credits, day int64) {
	c := b.cell(env, dims, day)
	c.credits -= credits
	b.total(env.TenantID).credits -= credits
}

func (b *batch) route(tenantID int64, endpoint string) *countDelta {
	e, ok := b.byRoute[endpointKey{tenantID, endpoint}]
	if !ok {
		e = &countDelta{}
		b.byRoute[endpointKey{tenantID, endpoint}] = e
	}
	return e
}

func (b *batch) total(tenantID int64) *totalsDelta {
	t, ok := b.totals[tenantID]
	if !ok {
		t = &totalsDelta{}
		b.totals[tenantID] = t
	}
	return t
}

// RolledDimensions are the dimensions usage_rollup keeps; ” is the total.
var RolledDimensions = []string{"", "credit_type", "module", "service", "user_id", "endpoint"}

type rollupKey struct {
	tenantID  int64
	dimension string
	day       int64
	value     string
}

func (b *batch) flushRollups(keys []cubeKey) error {
	rollup := map[rollupKey]*cubeDelta{}
	for _, k := range keys {
		c := b.cube[k]
		for _, dim := range [...]struct{ name, value string }{{"", ""}, {"credit_type", k.dims.creditType}, {"module", k.dims.module},
			{"service", k.dims.service}, {"user_id", k.dims.userID}, {"endpoint", k.dims.endpoint}} {
			key := rollupKey{k.tenantID, dim.name, k.day, dim.value}
			r, ok := rollup[key]
			if !ok {
				r = &cubeDelta{}
				rollup[key] = r
			}
			r.credits += c.credits
			r.quantity += c.quantity
			r.requests += c.requests
			r.successes += c.successes
			r.failures += c.failures
		}
	}
	stmt, err := b.stmt(`INSERT INTO usage_rollup (tenant_id, dimension, day, value, credits, quantity, requests, successes, failures)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO UPDATE SET credits = credits + excluded.credits, quantity = quantity + excluded.quantity,
		requests = requests + excluded.requests, successes = successes + excluded.successes, failures = failures + excluded.failures`)
	if err != nil {
		return err
	}
	for k, r := range rollup {
		if err := stmt.exec(k.tenantID, k.dimension, k.day, k.value, r.credits, r.quantity, r.requests, r.successes, r.failures); err != nil {
			return err
		}
	}
	return nil
}

func (b *batch) flushCube() error {
	keys := slices.Collect(maps.Keys(b.cube))
	// A bulk load keeps the cells of the last days it met in memory for
	// the next batch, which will likely add to them: a day's cells are then
	// written once, whole, rather than once per batch the day spans. Older
	// days (late usage included) are written now.
	keys = slices.DeleteFunc(keys, func(k cubeKey) bool { return k.day >= b.carryFrom })
	if err := b.flushRollups(keys); err != nil {
		return err
	}
	// Upserts in primary-key order touch the cube's B-tree sequentially, so
	// each lands on the page the last one left in the cache; many rows per
	// statement spare a statement execution per cell.
	slices.SortFunc(keys, compareCubeKeys)
	flushed := keys
	args := make([]any, 0, cubeRowsPerUpsert*cubeColumns)
	for len(keys) > 0 {
		n := min(len(keys), cubeRowsPerUpsert)
		stmt, err := b.stmt(cubeUpserts[n])
		if err != nil {
			return err
		}
		args = args[:0]
		for _, k := range keys[:n] {
			c, d := b.cube[k], k.dims
			args = append(args, k.tenantID, k.day, d.creditType, d.module, d.service, d.userID, d.workflowID,
				d.runID, d.endpoint, d.success, d.custom, c.credits, c.quantity, c.requests, c.successes, c.failures)
		}
		if err := stmt.exec(args...); err != nil {
			return err
		}
		keys = keys[n:]
	}
	if b.carryFrom != math.MaxInt64 {
		for _, k := range flushed {
			delete(b.cube, k)
		}
	}
	return nil
}

// cubeRowsPerUpsert bounds the cells of one upsert (cubeColumns values
// each, far below SQLite's variable limit).
const (
	cubeRowsPerUpsert = 32
	cubeColumns       = 16
)

var cubeUpserts = func() (q [cubeRowsPerUpsert + 1]string) {
	for n := 1; n <= cubeRowsPerUpsert; n++ {
		q[n] = `INSERT INTO usage_daily (tenant_id, day, credit_type, module, service, user_id, workflow_id,
		workflow_run_id, endpoint, success, custom, credits, quantity, requests, successes, failures) VALUES ` +
			valueRows(n, cubeColumns) + `
		ON CONFLICT DO UPDATE SET credits = credits + excluded.credits, quantity = quantity + excluded.quantity,
		requests = requests + excluded.requests, successes = successes + excluded.successes, failures = failures + excluded.failures`
	}
	return q
}()

func (b *batch) flushTotals() error {
	totals, err := b.stmt(`INSERT INTO tenant_totals (tenant_id, requests, successes, failures, credits, quantity, rejected, last_usage_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, NULLIF(?, 0))
		ON CONFLICT (tenant_id) DO UPDATE SET requests = requests + excluded.requests, successes = successes + excluded.successes,
		failures = failures + excluded.failures, credits = credits + excluded.credits, quantity = quantity + excluded.quantity,
		rejected = rejected + excluded.rejected, last_usage_at = max(coalesce(last_usage_at, 0), coalesce(excluded.last_usage_at, 0))`)
	if err != nil {
		return err
	}
	for id, t := range b.totals {
		if err := totals.exec(id, t.requests, t.successes, t.failures, t.credits, t.quantity, t.rejected, t.lastUsageAt); err != nil {
			return err
		}
	}
	routes, err := b.stmt(`INSERT INTO endpoint_totals (tenant_id, endpoint, requests, successes, failures) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, endpoint) DO UPDATE SET requests = requests + excluded.requests,
		successes = successes + excluded.successes, failures = failures + excluded.failures`)
	if err != nil {
		return err
	}
	for k, e := range b.byRoute {
		if err := routes.exec(k.tenantID, k.endpoint, e.requests, e.successes, e.failures); err != nil {
			return err
		}
	}
	return nil
}

// compareCubeKeys orders cells as usage_daily's primary key does.
func compareCubeKeys(a, b cubeKey) int {
	if c := cmp.Compare(a.tenantID, b.tenantID); c != 0 {
		return c
	}
	if c := cmp.Compare(a.day, b.day); c != 0 {
		return c
	}
	x, y := a.dims, b.dims
	if c := cmp.Compare(x.creditType, y.creditType); c != 0 {
		return c
	}
	for _, pair := range [...][2]string{{x.module, y.module}, {x.service, y.service}, {x.userID, y.userID},
		{x.workflowID, y.workflowID}, {x.runID, y.runID}, {x.endpoint, y.endpoint}} {
		if c := cmp.Compare(pair[0], pair[1]); c != 0 {
			return c
		}
	}
	if x.success != y.success {
		if !x.success {
			return -1
		}
		return 1
	}
	return cmp.Compare(x.custom, y.custom)
}
