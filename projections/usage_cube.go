package projections

import "github.com/creditd/creditd/domain"

// cubeKey is one cell of the usage cube.
type cubeKey struct {
	tenantID                                                   int64
	day                                                        int64
	creditType, module, service, userID, workflowID, runID, ep string
	success                                                    bool
	custom                                                     string
}

type cubeDelta struct {
	credits, quantity, requests, successes, failures int64
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
func (b *batch) cell(env domain.Envelope, d domain.Dimensions, day int64) *cubeDelta {
	key := cubeKey{tenantID: env.TenantID, day: day, creditType: env.CreditType, module: d.Module, service: d.Service,
		userID: d.UserID, workflowID: d.WorkflowID, runID: d.WorkflowRunID, ep: d.Endpoint, success: d.Success, custom: customJSON(d.Custom)}
	c, ok := b.cube[key]
	if !ok {
		c = &cubeDelta{}
		b.cube[key] = c
	}
	return c
}

// countUsage adds one usage (a debit, or a captured reservation) to the
// cube, on the UTC day it occurred, and to the tenant's counters.
func (b *batch) countUsage(env domain.Envelope, d domain.Dimensions, credits, day, occurredAt int64) {
	c := b.cell(env, d, day)
	quantity := Micro(d.Quantity)
	c.credits += credits
	c.quantity += quantity
	c.requests++
	t := b.total(env.TenantID)
	t.requests++
	t.credits += credits
	t.quantity += quantity
	t.lastUsageAt = max(t.lastUsageAt, occurredAt)
	e, ok := b.byRoute[endpointKey{env.TenantID, d.Endpoint}]
	if !ok {
		e = &countDelta{}
		b.byRoute[endpointKey{env.TenantID, d.Endpoint}] = e
	}
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
func (b *batch) uncountUsage(env domain.Envelope, d domain.Dimensions, credits, day int64) {
	c := b.cell(env, d, day)
	c.credits -= credits
	b.total(env.TenantID).credits -= credits
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

func (b *batch) flushRollups() error {
	rollup := map[rollupKey]*cubeDelta{}
	for k, c := range b.cube {
		for _, dim := range [...]struct{ name, value string }{{"", ""}, {"credit_type", k.creditType}, {"module", k.module},
			{"service", k.service}, {"user_id", k.userID}, {"endpoint", k.ep}} {
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
		if _, err := stmt.ExecContext(b.ctx, k.tenantID, k.dimension, k.day, k.value, r.credits, r.quantity, r.requests, r.successes, r.failures); err != nil {
			return err
		}
	}
	return nil
}

func (b *batch) flushCube() error {
	if err := b.flushRollups(); err != nil {
		return err
	}
	stmt, err := b.stmt(`INSERT INTO usage_daily (tenant_id, day, credit_type, module, service, user_id, workflow_id,
		workflow_run_id, endpoint, success, custom, credits, quantity, requests, successes, failures)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO UPDATE SET credits = credits + excluded.credits, quantity = quantity + excluded.quantity,
		requests = requests + excluded.requests, successes = successes + excluded.successes, failures = failures + excluded.failures`)
	if err != nil {
		return err
	}
	for k, c := range b.cube {
		if _, err := stmt.ExecContext(b.ctx, k.tenantID, k.day, k.creditType, k.module, k.service, k.userID, k.workflowID,
			k.runID, k.ep, k.success, k.custom, c.credits, c.quantity, c.requests, c.successes, c.failures); err != nil {
			return err
		}
	}
	return nil
}

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
		if _, err := totals.ExecContext(b.ctx, id, t.requests, t.successes, t.failures, t.credits, t.quantity, t.rejected, t.lastUsageAt); err != nil {
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
		if _, err := routes.ExecContext(b.ctx, k.tenantID, k.endpoint, e.requests, e.successes, e.failures); err != nil {
			return err
		}
	}
	return nil
}
