package sim

import (
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// OpKind names one kind of simulation step.
type OpKind string

// Kinds of steps. Every write of the commands API has one; OpTick only moves
// the simulated clock.
const (
	OpTick         OpKind = "tick"
	OpGrant        OpKind = "grant"
	OpUsage        OpKind = "usage"
	OpReserve      OpKind = "reserve"
	OpCapture      OpKind = "capture"
	OpRelease      OpKind = "release"
	OpAdjust       OpKind = "adjust"
	OpAutoReload   OpKind = "auto_reload"
	OpOverdraft    OpKind = "overdraft"
	OpSubscribe    OpKind = "subscribe"
	OpCancel       OpKind = "cancel"
	OpVoid         OpKind = "void"
	OpChangeExpiry OpKind = "change_expiry"
	OpReverse      OpKind = "reverse"
	// OpSweep runs the engine's due work on every line (see sweepSupported).
	OpSweep OpKind = "sweep"
)

// Op is one step. Tenant is an index into the seed's tenants; Line is the
// credit type the request names ("" lets the engine find the line of the
// reservation, grant or subscription, as the HTTP API does).
type Op struct {
	Kind   OpKind
	Tenant int
	Line   string
	ID     string

	// OpTick: the instant the clock moves to.
	At time.Time

	// OpGrant.
	Amount      decimal.Decimal
	Source      string
	Priority    int
	EffectiveAt time.Time // zero: now
	ExpiresAt   *time.Time

	// OpUsage: one RecordUsage call; each event names its own line.
	Usage []UsageOp

	// OpReserve.
	TTL time.Duration // zero: the default
	// OpCapture: nil captures all held.
	CaptureAmount *decimal.Decimal

	// OpAdjust uses Amount; OpVoid and OpReverse use Reason.
	Reason string

	// OpAutoReload uses Enabled, Threshold and Amount; OpOverdraft uses Amount.
	Enabled   bool
	Threshold decimal.Decimal

	// OpSubscribe uses Amount (credits per period), StartsAt and Rollover.
	StartsAt time.Time // zero: now
	Rollover bool

	// OpChangeExpiry uses ExpiresAt (nil: never).
}

// UsageOp is one usage event of a RecordUsage call.
type UsageOp struct {
	ID         string
	Line       string
	Amount     decimal.Decimal
	OccurredAt time.Time // zero: now
}

// idempotent reports whether the op carries an id whose outcome the engine
// keeps (settings and expiry changes are idempotent by their value).
func (o Op) idempotent() bool {
	switch o.Kind {
	case OpTick, OpSweep, OpAutoReload, OpOverdraft, OpChangeExpiry:
		return false
	}
	return true
}

// body is the op's request body as the idempotency fingerprint sees it:
// every field the client sent, and the line it named.
func (o Op) body() string {
	var b strings.Builder
	fmt.Fprintf(&b, "line=%s", o.Line)
	switch o.Kind {
	case OpGrant:
		fmt.Fprintf(&b, " amount=%s source=%s priority=%d effective=%s expires=%s", o.Amount, o.Source, o.Priority, stamp(o.EffectiveAt), stampPtr(o.ExpiresAt))
	case OpReserve:
		fmt.Fprintf(&b, " amount=%s ttl=%s", o.Amount, o.TTL)
	case OpCapture:
		if o.CaptureAmount == nil {
			b.WriteString(" amount=all")
		} else {
			fmt.Fprintf(&b, " amount=%s", o.CaptureAmount)
		}
	case OpAdjust:
		fmt.Fprintf(&b, " amount=%s reason=%s", o.Amount, o.Reason)
	case OpSubscribe:
		fmt.Fprintf(&b, " credits=%s starts=%s rollover=%t", o.Amount, stamp(o.StartsAt), o.Rollover)
	case OpVoid, OpReverse:
		fmt.Fprintf(&b, " reason=%s", o.Reason)
	}
	return b.String()
}

func (u UsageOp) body() string {
	return fmt.Sprintf("line=%s amount=%s occurred=%s", u.Line, u.Amount, stamp(u.OccurredAt))
}

// String is how a failure message shows the op.
func (o Op) String() string {
	switch o.Kind {
	case OpTick:
		return "tick to " + stamp(o.At)
	case OpSweep:
		return "sweep"
	}
	head := fmt.Sprintf("%s tenant=%d", o.Kind, o.Tenant)
	switch o.Kind {
	case OpUsage:
		parts := make([]string, len(o.Usage))
		for i, u := range o.Usage {
			parts[i] = fmt.Sprintf("{id=%s %s}", u.ID, u.body())
		}
		return head + " " + strings.Join(parts, " ")
	case OpAutoReload:
		return fmt.Sprintf("%s line=%s enabled=%t threshold=%s amount=%s", head, o.Line, o.Enabled, o.Threshold, o.Amount)
	case OpOverdraft:
		return fmt.Sprintf("%s line=%s limit=%s", head, o.Line, o.Amount)
	case OpChangeExpiry:
		return fmt.Sprintf("%s id=%s line=%s expires=%s", head, o.ID, o.Line, stampPtr(o.ExpiresAt))
	case OpRelease, OpCancel:
		return fmt.Sprintf("%s id=%s line=%s", head, o.ID, o.Line)
	}
	return fmt.Sprintf("%s id=%s %s", head, o.ID, o.body())
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func stampPtr(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return stamp(*t)
}
