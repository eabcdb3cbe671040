package domain

import (
	"strconv"
	"time"

	"github.com/shopspring/decimal"
)

// FutureSkewMax is how far ahead of the server's clock a usage event's
// occurred_at may be. Producers' clocks drift; events further ahead are a
// producer bug and are refused, recorded as DebitRejected.
const FutureSkewMax = 5 * time.Minute

// RecordUsage debits a line for metered consumption.
type RecordUsage struct {
	UsageID string
	Amount  decimal.Decimal
	// OccurredAt is when the usage happened; zero means now. It places the
	// usage on its day in the statistics; it does not choose the grants,
	// which are those active when the debit is decided.
	OccurredAt  time.Time
	Dimensions  Dimensions
	Description string
}

// Validate reports every malformed field at once.
func (c RecordUsage) Validate() error {
	var v validator
	v.id("id", c.UsageID, true)
	v.amount("amount", c.Amount, ValidateNonNegative)
	v.dimensions(c.Dimensions)
	v.text("description", c.Description, TextLengthMax, false)
	return v.err()
}

// Fingerprint identifies the request for idempotency.
func (c RecordUsage) Fingerprint() uint64 {
	// Every usage event is fingerprinted: its bytes are laid out on the
	// stack (the fingerprinter is passed by value, so nothing it appends
	// to escapes), unless a long event outgrows the buffer.
	var buf [fingerprintBufBytes]byte
	f := fingerprinter{b: buf[:0]}
	return f.str("usage").str(c.UsageID).dec(c.Amount).time(c.OccurredAt).dimensions(c.Dimensions).str(c.Description).sum()
}

// CheckedUsage is a RecordUsage found valid, with its fingerprint: Check
// makes one, so that a write validates and hashes each event once, however
// many steps (idempotency, decision) look at it.
type CheckedUsage struct {
	RecordUsage
	fingerprint uint64 // never 0 once checked
}

// Check validates c and fingerprints it.
func (c RecordUsage) Check() (CheckedUsage, error) {
	if err := c.Validate(); err != nil {
		return CheckedUsage{}, err
	}
	return CheckedUsage{RecordUsage: c, fingerprint: c.Fingerprint()}, nil
}

// Fingerprint is the checked command's fingerprint (RecordUsage.Fingerprint).
func (c CheckedUsage) Fingerprint() uint64 { return c.fingerprint }

// DecideUsage debits the line, or records the refusal: a usage event is
// always answered by an event, UsageDebited (followed by an auto_reload
// grant when the debit crosses the threshold) or DebitRejected. It returns
// an error only for a malformed command.
func DecideUsage(l *Line, c RecordUsage, now time.Time) ([]Event, error) {
	checked, err := c.Check()
	if err != nil {
		return nil, err
	}
	return DecideCheckedUsage(l, checked, now)
}

// DecideCheckedUsage is DecideUsage for a command already checked.
func DecideCheckedUsage(l *Line, checked CheckedUsage, now time.Time) ([]Event, error) {
	if checked.fingerprint == 0 {
		// Made as a literal, not by Check: validate it here.
		var err error
		if checked, err = checked.RecordUsage.Check(); err != nil {
			return nil, err
		}
	}
	c := checked.RecordUsage
	occurred := c.OccurredAt
	if occurred.IsZero() {
		occurred = now
	}
	occurred = occurred.UTC()
	fp := checked.fingerprint
	reject := func(reason string) []Event {
		return []Event{DebitRejected{UsageID: c.UsageID, Amount: c.Amount, OccurredAt: occurred, Dimensions: c.Dimensions, Reason: reason, Fingerprint: fp}}
	}
	if occurred.After(now.Add(FutureSkewMax)) {
		return reject(RejectOccurredInFuture), nil
	}
	// An auto-reload's id; built only for a line where one may fire
	// (reloadArmed), since it allocates for every debit.
	var trigger string
	if reloadArmed(l) {
		trigger = "usage:" + c.UsageID
	}
	line, events := reloadFirst(l, c.Amount, trigger, now)
	reloaded := len(events) > 0
	// Zero-amount usage (a failed request, say) is always counted, even on
	// a line in debt.
	if c.Amount.IsPositive() && c.Amount.GreaterThan(line.Spendable(now)) {
		return append(events, reject(RejectInsufficientCredits)...), nil
	}
	events = append(events, UsageDebited{
		UsageID: c.UsageID, Amount: c.Amount, OccurredAt: occurred, Dimensions: c.Dimensions,
		Description: c.Description, Burned: line.planBurn(c.Amount, now), Fingerprint: fp,
	})
	if !reloaded {
		// One reload per write at most: its id is the write's.
		events = append(events, autoReloadAfter(line, c.Amount, trigger, now)...)
	}
	if err := checkTotals(l, events, "amount"); err != nil {
		return nil, err
	}
	return events, nil
}

func itoa(i int) string { return strconv.Itoa(i) }
