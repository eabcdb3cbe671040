package eventstore

import (
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/internal/dectext"
	"github.com/creditd/creditd/internal/jsonquote"
)

// The hand-written commit encoder.
//
// The stored bytes are the canonical encoding docs/audit.md describes:
// what json.Marshal writes for a Commit, hashed into the chain as they are.
// json.Marshal spends its time on reflection and on building each event's
// bytes three times: Envelope.MarshalJSON marshals the event, then the
// envelope around it, and the commit's encoding compacts that again. It
// took 15% of the CPU of `creditd bench`; this encoder writes the same
// bytes in one pass over the commit, without reflection.
//
// It must write exactly what json.Marshal writes, byte for byte: that is
// the stored form docs/audit.md documents and auditors rebuild, and the
// same events must give the same bytes, so the same hashes, whichever
// version of creditd wrote them. A difference would not fail a write; it
// would surface later, as commits unlike their description. So it mirrors
// encoding/json's rules (fields in declaration order, omitempty, map keys
// sorted, strings escaped for HTML, U+2028 and U+2029 escaped, invalid
// UTF-8 as \ufffd, times by Time.AppendText, decimals by Decimal.String)
// and leaves to json.Marshal what it does not mirror:
//   - an event of a type it does not know (a new type, or a pointer to a
//     known one), and SettingsChanged, whose currency_config is a
//     json.RawMessage that encoding/json compacts: json.Marshal writes that
//     one envelope, and its bytes are those it would write inside a commit;
//   - anything json.Marshal refuses (a time outside years 0 to 9999, an
//     envelope without an event): the whole commit then goes through
//     json.Marshal, which gives the error, with its usual message.
//
// FuzzEncodeCommit holds it to json.Marshal's bytes.

const (
	// encodeBufMax bounds the buffers kept for reuse: a commit larger than
	// this (well beyond a batch of 1000 usage events) gets a buffer of its
	// own that is dropped afterwards, so one huge commit does not stay in
	// memory for good.
	encodeBufMax = 1 << 20
)

// encodeBufs holds scratch buffers: a commit is written into one, then
// copied out at its exact size, one allocation per commit.
var encodeBufs = sync.Pool{New: func() any { return new([]byte) }}

// encodeCommitFast returns the stored bytes of c, with Version set, as
// json.Marshal writes them; ok=false when it cannot vouch for that.
func encodeCommitFast(c Commit) (data []byte, ok bool) {
	buf := encodeBufs.Get().(*[]byte)
	var e encoder
	b := e.commit((*buf)[:0], c)
	if !e.bad {
		data = append(make([]byte, 0, len(b)), b...)
	}
	if cap(b) <= encodeBufMax {
		*buf = b
		encodeBufs.Put(buf)
	}
	return data, !e.bad
}

// encoder's methods append JSON to b and return it. On what it does not
// mirror they set bad, after which the output is thrown away, so they need
// not return an error each.
//
// The bytes are passed along rather than kept in the encoder: a slice in a
// struct reached through a pointer is written back at every append, with
// a GC write barrier each time; an argument and result stays in registers.
type encoder struct {
	bad bool
}

func (e *encoder) fail() { e.bad = true }

func (e *encoder) int64(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

func (e *encoder) uint64(b []byte, n uint64) []byte { return strconv.AppendUint(b, n, 10) }

func (e *encoder) bool(b []byte, v bool) []byte { return strconv.AppendBool(b, v) }

// str appends s as a JSON string escaped as json.Marshal escapes it
// (jsonquote).
func (e *encoder) str(b []byte, s string) []byte { return jsonquote.Append(b, s) }

// time appends t as Time.MarshalJSON does, without its allocation.
func (e *encoder) time(b []byte, t time.Time) []byte {
	out, err := t.AppendText(append(b, '"'))
	if err != nil {
		e.fail() // json.Marshal refuses it, and says why
		return b
	}
	return append(out, '"')
}

// decimal appends d as Decimal.MarshalJSON does: its String, quoted,
// written by dectext.Append without the strings String builds; with
// MarshalJSONWithoutQuotes set, through MarshalJSON itself.
func (e *encoder) decimal(b []byte, d decimal.Decimal) []byte {
	if decimal.MarshalJSONWithoutQuotes {
		text, err := d.MarshalJSON()
		if err != nil {
			e.fail()
			return b
		}
		return append(b, text...)
	}
	// MarshalJSON writes String() in quotes (dectext.Append).
	b = append(b, '"')
	b = dectext.Append(b, d)
	return append(b, '"')
}

// stringMap appends a map with its keys sorted, as json.Marshal does;
// callers write nothing for an empty one (omitempty).
func (e *encoder) stringMap(b []byte, m map[string]string) []byte { return jsonquote.AppendMap(b, m) }

// burns appends burned, returned or pinned; callers write nothing for an
// empty one (omitempty).
func (e *encoder) burns(b []byte, key string, burns []domain.Burn) []byte {
	if len(burns) == 0 {
		return b
	}
	b = append(b, key...)
	b = append(b, '[')
	for i, burn := range burns {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"grant_id":`...)
		b = e.str(b, burn.GrantID)
		b = append(b, `,"amount":`...)
		b = e.decimal(b, burn.Amount)
		b = append(b, '}')
	}
	return append(b, ']')
}

// optionalStr appends key and s unless s is empty (omitempty).
func (e *encoder) optionalStr(b []byte, key, s string) []byte {
	if s != "" {
		b = append(b, key...)
		b = e.str(b, s)
	}
	return b
}

// fingerprint appends fp unless it is 0 (omitempty).
func (e *encoder) fingerprint(b []byte, fp uint64) []byte {
	if fp != 0 {
		b = append(b, `,"fp":`...)
		b = e.uint64(b, fp)
	}
	return b
}

func (e *encoder) commit(b []byte, c Commit) []byte {
	b = append(b, `{"v":`...)
	b = e.int64(b, CommitVersion)
	b = append(b, `,"at":`...)
	b = e.time(b, c.RecordedAt)
	b = append(b, `,"prev":`...)
	b = e.str(b, c.Prev)
	b = append(b, `,"events":`...)
	if c.Events == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, env := range c.Events {
			if i > 0 {
				b = append(b, ',')
			}
			b = e.envelope(b, env)
			if e.bad {
				return b
			}
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// envelope appends {"type","tenant_id","credit_type","data"}, as
// Envelope.MarshalJSON writes it.
func (e *encoder) envelope(b []byte, env domain.Envelope) []byte {
	if !knownEvent(env.Event) {
		// See the top of the file. encoding/json writes an envelope in a
		// commit exactly as on its own: its MarshalJSON, compacted.
		data, err := json.Marshal(env)
		if err != nil {
			e.fail()
			return b
		}
		return append(b, data...)
	}
	b = append(b, `{"type":`...)
	b = e.str(b, string(env.Event.EventType()))
	b = append(b, `,"tenant_id":`...)
	b = e.int64(b, env.TenantID)
	b = e.optionalStr(b, `,"credit_type":`, env.CreditType)
	b = append(b, `,"data":`...)
	b = e.event(b, env.Event)
	return append(b, '}')
}

// knownEvent tells the event types event writes: the value types of
// domain/events.go but SettingsChanged.
func knownEvent(ev domain.Event) bool {
	switch ev.(type) {
	case domain.CreditsGranted, domain.UsageDebited, domain.DebitRejected, domain.UsageBatchRecorded,
		domain.CreditsReserved, domain.ReservationRejected, domain.ReservationCaptured, domain.ReservationReleased,
		domain.CreditsAdjusted, domain.GrantExpired, domain.UsageReversed, domain.GrantVoided, domain.GrantExpiryChanged,
		domain.AutoReloadConfigured, domain.CreditLineConfigured, domain.SubscriptionStarted, domain.SubscriptionCanceled,
		domain.TenantCreated, domain.APIKeyIssued, domain.APIKeyRevoked, domain.NoticesConfigured:
		return true
	}
	return false
}

// event appends an event's data: its fields in declaration order, with
// their tags' names and omitempty rules (domain/events.go).
func (e *encoder) event(b []byte, ev domain.Event) []byte {
	switch x := ev.(type) {
	case domain.CreditsGranted:
		b = append(b, `{"grant_id":`...)
		b = e.str(b, x.GrantID)
		b = append(b, `,"amount":`...)
		b = e.decimal(b, x.Amount)
		b = append(b, `,"source":`...)
		b = e.str(b, string(x.Source))
		b = append(b, `,"priority":`...)
		b = e.int64(b, int64(x.Priority))
		b = append(b, `,"effective_at":`...)
		b = e.time(b, x.EffectiveAt)
		if x.ExpiresAt != nil {
			b = append(b, `,"expires_at":`...)
			b = e.time(b, *x.ExpiresAt)
		}
		if x.CostPerCredit != nil {
			b = append(b, `,"cost_per_credit":`...)
			b = e.decimal(b, *x.CostPerCredit)
		}
		b = e.optionalStr(b, `,"currency":`, x.Currency)
		b = e.optionalStr(b, `,"description":`, x.Description)
		b = e.optionalStr(b, `,"reference":`, x.Reference)
		if len(x.Metadata) > 0 {
			b = append(b, `,"metadata":`...)
			b = e.stringMap(b, x.Metadata)
		}
		b = e.optionalStr(b, `,"trigger":`, x.Trigger)
		b = e.optionalStr(b, `,"subscription_id":`, x.SubscriptionID)
		b = e.fingerprint(b, x.Fingerprint)
	case domain.UsageDebited:
		b = append(b, `{"usage_id":`...)
		b = e.str(b, x.UsageID)
		b = append(b, `,"amount":`...)
		b = e.decimal(b, x.Amount)
		b = append(b, `,"occurred_at":`...)
		b = e.time(b, x.OccurredAt)
		b = append(b, `,"dimensions":`...)
		b = e.dimensions(b, x.Dimensions)
		b = e.optionalStr(b, `,"description":`, x.Description)
		b = e.burns(b, `,"burned":`, x.Burned)
		b = e.fingerprint(b, x.Fingerprint)
	case domain.DebitRejected:
		b = append(b, `{"usage_id":`...)
		b = e.str(b, x.UsageID)
		b = append(b, `,"amount":`...)
		b = e.decimal(b, x.Amount)
		b = append(b, `,"occurred_at":`...)
		b = e.time(b, x.OccurredAt)
		b = append(b, `,"dimensions":`...)
		b = e.dimensions(b, x.Dimensions)
		b = append(b, `,"reason":`...)
		b = e.str(b, x.Reason)
		b = e.fingerprint(b, x.Fingerprint)
	case domain.UsageBatchRecorded:
		b = append(b, `{"batch_key":`...)
		b = e.str(b, x.BatchKey)
		b = append(b, `,"count":`...)
		b = e.int64(b, int64(x.Count))
		b = append(b, `,"fp":`...) // no omitempty
		b = e.uint64(b, x.Fingerprint)
	case domain.CreditsReserved:
		b = append(b, `{"reservation_id":`...)
		b = e.str(b, x.ReservationID)
		b = append(b, `,"amount":`...)
		b = e.decimal(b, x.Amount)
		b = append(b, `,"expires_at":`...)
		b = e.time(b, x.ExpiresAt)
		b = append(b, `,"dimensions":`...)
		b = e.dimensions(b, x.Dimensions)
		b = e.burns(b, `,"pinned":`, x.Pinned)
		b = e.fingerprint(b, x.Fingerprint)
	case domain.ReservationRejected:
		b = append(b, `{"reservation_id":`...)
		b = e.str(b, x.ReservationID)
		b = append(b, `,"amount":`...)
		b = e.decimal(b, x.Amount)
		b = append(b, `,"dimensions":`...)
		b = e.dimensions(b, x.Dimensions)
		b = append(b, `,"reason":`...)
		b = e.str(b, x.Reason)
		b = e.fingerprint(b, x.Fingerprint)
	case domain.ReservationCaptured:
		b = append(b, `{"reservation_id":`...)
		b = e.str(b, x.ReservationID)
		b = append(b, `,"amount":`...)
		b = e.decimal(b, x.Amount)
		b = append(b, `,"released":`...)
		b = e.decimal(b, x.Released)
		b = e.burns(b, `,"burned":`, x.Burned)
		b = e.fingerprint(b, x.Fingerprint)
	case domain.ReservationReleased:
		b = append(b, `{"reservation_id":`...)
		b = e.str(b, x.ReservationID)
		b = append(b, `,"amount":`...)
		b = e.decimal(b, x.Amount)
		b = append(b, `,"reason":`...)
		b = e.str(b, string(x.Reason))
	case domain.CreditsAdjusted:
		b = append(b, `{"adjustment_id":`...)
		b = e.str(b, x.AdjustmentID)
		b = append(b, `,"amount":`...)
		b = e.decimal(b, x.Amount)
		b = append(b, `,"reason":`...)
		b = e.str(b, x.Reason)
		b = e.optionalStr(b, `,"reference":`, x.Reference)
		b = e.burns(b, `,"burned":`, x.Burned)
		b = e.fingerprint(b, x.Fingerprint)
	case domain.GrantExpired:
		b = append(b, `{"grant_id":`...)
		b = e.str(b, x.GrantID)
		b = append(b, `,"amount":`...)
		b = e.decimal(b, x.Amount)
		b = e.optionalStr(b, `,"trigger":`, x.Trigger)
	case domain.UsageReversed:
		b = append(b, `{"usage_id":`...)
		b = e.str(b, x.UsageID)
		b = append(b, `,"amount":`...)
		b = e.decimal(b, x.Amount)
		b = e.burns(b, `,"returned":`, x.Returned)
		b = append(b, `,"occurred_at":`...)
		b = e.time(b, x.OccurredAt)
		b = append(b, `,"dimensions":`...)
		b = e.dimensions(b, x.Dimensions)
		b = append(b, `,"reason":`...)
		b = e.str(b, x.Reason)
	case domain.GrantVoided:
		b = append(b, `{"grant_id":`...)
		b = e.str(b, x.GrantID)
		b = append(b, `,"amount":`...)
		b = e.decimal(b, x.Amount)
		b = append(b, `,"reason":`...)
		b = e.str(b, x.Reason)
		b = e.optionalStr(b, `,"trigger":`, x.Trigger)
	case domain.GrantExpiryChanged:
		b = append(b, `{"grant_id":`...)
		b = e.str(b, x.GrantID)
		if x.ExpiresAt != nil {
			b = append(b, `,"expires_at":`...)
			b = e.time(b, *x.ExpiresAt)
		}
	case domain.AutoReloadConfigured:
		b = append(b, `{"enabled":`...)
		b = e.bool(b, x.Enabled)
		b = append(b, `,"threshold":`...)
		b = e.decimal(b, x.Threshold)
		b = append(b, `,"amount":`...)
		b = e.decimal(b, x.Amount)
	case domain.CreditLineConfigured:
		b = append(b, `{"overdraft_limit":`...)
		b = e.decimal(b, x.OverdraftLimit)
	case domain.SubscriptionStarted:
		b = append(b, `{"subscription_id":`...)
		b = e.str(b, x.SubscriptionID)
		b = append(b, `,"credits_per_period":`...)
		b = e.decimal(b, x.CreditsPerPeriod)
		b = append(b, `,"period":`...)
		b = e.str(b, string(x.Period))
		b = append(b, `,"starts_at":`...)
		b = e.time(b, x.StartsAt)
		if x.PriceAmount != nil {
			b = append(b, `,"price_amount":`...)
			b = e.decimal(b, *x.PriceAmount)
		}
		b = e.optionalStr(b, `,"price_currency":`, x.PriceCurrency)
		b = append(b, `,"rollover":`...)
		b = e.bool(b, x.Rollover)
		b = e.fingerprint(b, x.Fingerprint)
	case domain.SubscriptionCanceled:
		b = append(b, `{"subscription_id":`...)
		b = e.str(b, x.SubscriptionID)
		b = append(b, `,"ends_at":`...)
		b = e.time(b, x.EndsAt)
	case domain.TenantCreated:
		b = append(b, `{"tenant_id":`...)
		b = e.int64(b, x.TenantID)
		b = append(b, `,"name":`...)
		b = e.str(b, x.Name)
		b = e.optionalStr(b, `,"email":`, x.Email)
		b = e.optionalStr(b, `,"currency":`, x.Currency)
		b = append(b, `,"created_at":`...)
		b = e.time(b, x.CreatedAt)
		b = e.optionalStr(b, `,"request_key":`, x.RequestKey)
		b = e.fingerprint(b, x.Fingerprint)
	case domain.APIKeyIssued:
		b = append(b, `{"tenant_id":`...)
		b = e.int64(b, x.TenantID)
		b = append(b, `,"key_id":`...)
		b = e.str(b, x.KeyID)
		b = append(b, `,"key_hash":`...)
		b = e.str(b, x.KeyHash)
		b = append(b, `,"prefix":`...)
		b = e.str(b, x.Prefix)
	case domain.APIKeyRevoked:
		b = append(b, `{"tenant_id":`...)
		b = e.int64(b, x.TenantID)
		b = append(b, `,"key_id":`...)
		b = e.str(b, x.KeyID)
	case domain.NoticesConfigured:
		b = append(b, `{"tenant_id":`...)
		b = e.int64(b, x.TenantID)
		b = append(b, `,"thresholds":`...)
		switch {
		case x.Thresholds == nil:
			b = append(b, "null"...) // no omitempty: nil is null, empty is []
		default:
			b = append(b, '[')
			for i, d := range x.Thresholds {
				if i > 0 {
					b = append(b, ',')
				}
				b = e.decimal(b, d)
			}
			b = append(b, ']')
		}
		b = e.optionalStr(b, `,"webhook_url":`, x.WebhookURL)
	default:
		e.fail() // knownEvent and this switch disagree: a programmer error
		return b
	}
	return append(b, '}')
}

// dimensions appends a Dimensions: the optional strings first, each with
// the comma after it, since success, always written, follows them.
func (e *encoder) dimensions(b []byte, d domain.Dimensions) []byte {
	b = append(b, '{')
	b = e.dimension(b, `"module":`, d.Module)
	b = e.dimension(b, `"service":`, d.Service)
	b = e.dimension(b, `"user_id":`, d.UserID)
	b = e.dimension(b, `"workflow_id":`, d.WorkflowID)
	b = e.dimension(b, `"workflow_run_id":`, d.WorkflowRunID)
	b = e.dimension(b, `"endpoint":`, d.Endpoint)
	b = append(b, `"success":`...)
	b = e.bool(b, d.Success)
	b = append(b, `,"quantity":`...)
	b = e.decimal(b, d.Quantity)
	if len(d.Custom) > 0 {
		b = append(b, `,"custom":`...)
		b = e.stringMap(b, d.Custom)
	}
	return append(b, '}')
}

func (e *encoder) dimension(b []byte, key, s string) []byte {
	if s != "" {
		b = append(b, key...)
		b = e.str(b, s)
		b = append(b, ',')
	}
	return b
}
