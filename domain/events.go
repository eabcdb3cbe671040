package domain

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
)

// EventType names an event in the log. The names are part of the stored
// format: never rename one, add a new type instead.
type EventType string

const (
	EventCreditsGranted       EventType = "CreditsGranted"
	EventUsageDebited         EventType = "UsageDebited"
	EventDebitRejected        EventType = "DebitRejected"
	EventCreditsReserved      EventType = "CreditsReserved"
	EventReservationCaptured  EventType = "ReservationCaptured"
	EventReservationReleased  EventType = "ReservationReleased"
	EventCreditsAdjusted      EventType = "CreditsAdjusted"
	EventGrantExpired         EventType = "GrantExpired"
	EventAutoReloadConfigured EventType = "AutoReloadConfigured"
	EventCreditLineConfigured EventType = "CreditLineConfigured"
	EventSubscriptionStarted  EventType = "SubscriptionStarted"
	EventGrantVoided          EventType = "GrantVoided"
	EventUsageReversed        EventType = "UsageReversed"
	EventGrantExpiryChanged   EventType = "GrantExpiryChanged"
	EventSubscriptionCanceled EventType = "SubscriptionCanceled"
	EventReservationRejected  EventType = "ReservationRejected"
	EventUsageBatchRecorded   EventType = "UsageBatchRecorded"

	EventTenantCreated     EventType = "TenantCreated"
	EventAPIKeyIssued      EventType = "APIKeyIssued"
	EventAPIKeyRevoked     EventType = "APIKeyRevoked"
	EventSettingsChanged   EventType = "SettingsChanged"
	EventNoticesConfigured EventType = "NoticesConfigured"
)

// Source says where granted credits came from.
type Source string

const (
	SourcePurchase     Source = "purchase"
	SourceSubscription Source = "subscription"
	SourcePromotional  Source = "promotional"
	SourceAutoReload   Source = "auto_reload"
	SourceManual       Source = "manual"
)

// Valid reports whether s is one of the known sources.
func (s Source) Valid() bool {
	switch s {
	case SourcePurchase, SourceSubscription, SourcePromotional, SourceAutoReload, SourceManual:
		return true
	}
	return false
}

// ReleaseReason says why a reservation ended without a capture.
type ReleaseReason string

const (
	ReleaseReleased ReleaseReason = "released"
	ReleaseExpired  ReleaseReason = "expired"
	// ReleaseCaptured marks the part of a hold a partial capture gave back.
	ReleaseCaptured ReleaseReason = "captured"
)

// Burn is the part of a debit one grant paid for.
type Burn struct {
	GrantID string          `json:"grant_id"`
	Amount  decimal.Decimal `json:"amount"`
}

// Dimensions describe what a usage debit or reservation was for. They feed the
// usage statistics and never change a balance.
type Dimensions struct {
	Module        string            `json:"module,omitempty"`
	Service       string            `json:"service,omitempty"`
	UserID        string            `json:"user_id,omitempty"`
	WorkflowID    string            `json:"workflow_id,omitempty"`
	WorkflowRunID string            `json:"workflow_run_id,omitempty"`
	Endpoint      string            `json:"endpoint,omitempty"`
	Success       bool              `json:"success"`
	Quantity      decimal.Decimal   `json:"quantity"`
	Custom        map[string]string `json:"custom,omitempty"`
}

// Event is one fact about a credit line or the tenant registry.
type Event interface {
	EventType() EventType
}

type CreditsGranted struct {
	GrantID       string            `json:"grant_id"`
	Amount        decimal.Decimal   `json:"amount"`
	Source        Source            `json:"source"`
	Priority      int               `json:"priority"`
	EffectiveAt   time.Time         `json:"effective_at"`
	ExpiresAt     *time.Time        `json:"expires_at,omitempty"`
	CostPerCredit *decimal.Decimal  `json:"cost_per_credit,omitempty"`
	Currency      string            `json:"currency,omitempty"`
	Description   string            `json:"description,omitempty"`
	Reference     string            `json:"reference,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	// Trigger is the usage, capture or reservation id whose debit crossed the
	// auto-reload threshold; empty for other sources.
	Trigger string `json:"trigger,omitempty"`
	// SubscriptionID names the subscription whose period allocation this is.
	SubscriptionID string `json:"subscription_id,omitempty"`
	Fingerprint    uint64 `json:"fp,omitempty"`
}

type UsageDebited struct {
	UsageID     string          `json:"usage_id"`
	Amount      decimal.Decimal `json:"amount"`
	OccurredAt  time.Time       `json:"occurred_at"`
	Dimensions  Dimensions      `json:"dimensions"`
	Description string          `json:"description,omitempty"`
	Burned      []Burn          `json:"burned,omitempty"`
	Fingerprint uint64          `json:"fp,omitempty"`
}

type DebitRejected struct {
	UsageID     string          `json:"usage_id"`
	Amount      decimal.Decimal `json:"amount"`
	OccurredAt  time.Time       `json:"occurred_at"`
	Dimensions  Dimensions      `json:"dimensions"`
	Reason      string          `json:"reason"`
	Fingerprint uint64          `json:"fp,omitempty"`
}

// UsageBatchRecorded binds a usage batch's key to the batch (UsageBatch):
// it moves no credits and feeds no read model. It sits on the line of the
// batch's first event, in the commit holding the batch's events.
type UsageBatchRecorded struct {
	BatchKey    string `json:"batch_key"`
	Count       int    `json:"count"`
	Fingerprint uint64 `json:"fp"`
}

type CreditsReserved struct {
	ReservationID string          `json:"reservation_id"`
	Amount        decimal.Decimal `json:"amount"`
	ExpiresAt     time.Time       `json:"expires_at"`
	Dimensions    Dimensions      `json:"dimensions"`
	// Pinned are the credits the hold pins: the grants that would pay for
	// it when it was made, in burn-down order, then the part no grant
	// held (grant_id ""). Absent in holds made before pinning existed.
	Pinned      []Burn `json:"pinned,omitempty"`
	Fingerprint uint64 `json:"fp,omitempty"`
}

// ReservationRejected records a refused reservation, like DebitRejected for
// usage: its id answers the same refusal for the life of the data.
type ReservationRejected struct {
	ReservationID string          `json:"reservation_id"`
	Amount        decimal.Decimal `json:"amount"`
	Dimensions    Dimensions      `json:"dimensions"`
	Reason        string          `json:"reason"`
	Fingerprint   uint64          `json:"fp,omitempty"`
}

type ReservationCaptured struct {
	ReservationID string          `json:"reservation_id"`
	Amount        decimal.Decimal `json:"amount"`
	// Released is the part of the hold the capture did not take; it returns to
	// available in the same event (partial capture releases the rest).
	Released    decimal.Decimal `json:"released"`
	Burned      []Burn          `json:"burned,omitempty"`
	Fingerprint uint64          `json:"fp,omitempty"`
}

type ReservationReleased struct {
	ReservationID string          `json:"reservation_id"`
	Amount        decimal.Decimal `json:"amount"`
	Reason        ReleaseReason   `json:"reason"`
}

type CreditsAdjusted struct {
	AdjustmentID string          `json:"adjustment_id"`
	Amount       decimal.Decimal `json:"amount"`
	Reason       string          `json:"reason"`
	Reference    string          `json:"reference,omitempty"`
	// Burned lists the grants a negative adjustment took credits from.
	Burned      []Burn `json:"burned,omitempty"`
	Fingerprint uint64 `json:"fp,omitempty"`
}

// GrantExpired takes credits of a grant past its expiry off the balance: at
// the expiry, its unpinned remainder; later, what a hold releases to it or a
// reversal returns to it (Trigger names that write).
type GrantExpired struct {
	GrantID string          `json:"grant_id"`
	Amount  decimal.Decimal `json:"amount"`
	Trigger string          `json:"trigger,omitempty"`
}

// UsageReversed gives a usage debit's credits back: to the grants that paid
// for it (Returned) where they still can take them, the rest to the
// unallocated balance. OccurredAt and Dimensions are the debit's, so the
// statistics take the credits off the day and cell they were counted on.
type UsageReversed struct {
	UsageID    string          `json:"usage_id"`
	Amount     decimal.Decimal `json:"amount"`
	Returned   []Burn          `json:"returned,omitempty"`
	OccurredAt time.Time       `json:"occurred_at"`
	Dimensions Dimensions      `json:"dimensions"`
	Reason     string          `json:"reason"`
}

// GrantVoided takes a grant's unpinned credits off the balance (a
// correction: counted as a negative adjustment). With a Trigger it is not a
// void request but its consequence: credits a hold released, or a reversal
// returned, to a grant voided before.
type GrantVoided struct {
	GrantID string          `json:"grant_id"`
	Amount  decimal.Decimal `json:"amount"`
	Reason  string          `json:"reason"`
	Trigger string          `json:"trigger,omitempty"`
}

// GrantExpiryChanged moves a grant's expiry; nil means it never expires.
type GrantExpiryChanged struct {
	GrantID   string     `json:"grant_id"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

type AutoReloadConfigured struct {
	Enabled   bool            `json:"enabled"`
	Threshold decimal.Decimal `json:"threshold"`
	Amount    decimal.Decimal `json:"amount"`
}

type CreditLineConfigured struct {
	OverdraftLimit decimal.Decimal `json:"overdraft_limit"`
}

type SubscriptionStarted struct {
	SubscriptionID   string           `json:"subscription_id"`
	CreditsPerPeriod decimal.Decimal  `json:"credits_per_period"`
	Period           Period           `json:"period"`
	StartsAt         time.Time        `json:"starts_at"`
	PriceAmount      *decimal.Decimal `json:"price_amount,omitempty"`
	PriceCurrency    string           `json:"price_currency,omitempty"`
	Rollover         bool             `json:"rollover"`
	Fingerprint      uint64           `json:"fp,omitempty"`
}

// SubscriptionCanceled ends a subscription at EndsAt, the end of its
// current period: no allocation is granted from then on.
type SubscriptionCanceled struct {
	SubscriptionID string    `json:"subscription_id"`
	EndsAt         time.Time `json:"ends_at"`
}

type TenantCreated struct {
	TenantID    int64     `json:"tenant_id"`
	Name        string    `json:"name"`
	Email       string    `json:"email,omitempty"`
	Currency    string    `json:"currency,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	RequestKey  string    `json:"request_key,omitempty"`
	Fingerprint uint64    `json:"fp,omitempty"`
}

type APIKeyIssued struct {
	TenantID int64  `json:"tenant_id"`
	KeyID    string `json:"key_id"`
	// KeyHash is the hex SHA-256 of the key: the key itself is shown once and
	// never stored.
	KeyHash string `json:"key_hash"`
	Prefix  string `json:"prefix"`
}

type APIKeyRevoked struct {
	TenantID int64  `json:"tenant_id"`
	KeyID    string `json:"key_id"`
}

// NoticesConfigured sets the available-credit thresholds under which a
// tenant is notified (and where): the webhook's signing secret is derived
// by the server, never stored in the log.
type NoticesConfigured struct {
	TenantID   int64             `json:"tenant_id"`
	Thresholds []decimal.Decimal `json:"thresholds"`
	WebhookURL string            `json:"webhook_url,omitempty"`
}

// SettingsChanged sets a tenant's display currency and its display
// configuration, an opaque JSON object for dashboards.
type SettingsChanged struct {
	TenantID       int64           `json:"tenant_id"`
	Currency       string          `json:"currency,omitempty"`
	CurrencyConfig json.RawMessage `json:"currency_config,omitempty"`
}

func (CreditsGranted) EventType() EventType       { return EventCreditsGranted }
func (UsageDebited) EventType() EventType         { return EventUsageDebited }
func (DebitRejected) EventType() EventType        { return EventDebitRejected }
func (CreditsReserved) EventType() EventType      { return EventCreditsReserved }
func (ReservationCaptured) EventType() EventType  { return EventReservationCaptured }
func (ReservationReleased) EventType() EventType  { return EventReservationReleased }
func (CreditsAdjusted) EventType() EventType      { return EventCreditsAdjusted }
func (GrantExpired) EventType() EventType         { return EventGrantExpired }
func (AutoReloadConfigured) EventType() EventType { return EventAutoReloadConfigured }
func (CreditLineConfigured) EventType() EventType { return EventCreditLineConfigured }
func (SubscriptionStarted) EventType() EventType  { return EventSubscriptionStarted }
func (GrantVoided) EventType() EventType          { return EventGrantVoided }
func (UsageReversed) EventType() EventType        { return EventUsageReversed }
func (GrantExpiryChanged) EventType() EventType   { return EventGrantExpiryChanged }
func (SubscriptionCanceled) EventType() EventType { return EventSubscriptionCanceled }
func (ReservationRejected) EventType() EventType  { return EventReservationRejected }
func (UsageBatchRecorded) EventType() EventType   { return EventUsageBatchRecorded }
func (SettingsChanged) EventType() EventType      { return EventSettingsChanged }
func (NoticesConfigured) EventType() EventType    { return EventNoticesConfigured }
func (TenantCreated) EventType() EventType        { return EventTenantCreated }
func (APIKeyIssued) EventType() EventType         { return EventAPIKeyIssued }
func (APIKeyRevoked) EventType() EventType        { return EventAPIKeyRevoked }

// Envelope places an event on its tenant and credit line. Registry events
// (tenants, keys) have an empty CreditType.
type Envelope struct {
	TenantID   int64
	CreditType string
	Event      Event
}

// EnvelopeWire is the stored shape of an envelope, with the data of every
// event type in one struct. Decoding into it takes a single pass over the
// bytes, where decoding into an interface would need a second pass per
// event; the projection's apply rate depends on that.
type EnvelopeWire struct {
	Type       EventType  `json:"type"`
	TenantID   int64      `json:"tenant_id"`
	CreditType string     `json:"credit_type,omitempty"`
	Data       *EventData `json:"data"`
}

// EventData holds the union of every event's fields; each field name has
// one meaning and one type across events. It is exported for eventstore's
// hand-written commit decoder, which fills it without reflection when
// replaying the log and hands it to EnvelopeWire.Envelope like encoding/json.
type EventData struct {
	GrantID          string            `json:"grant_id"`
	UsageID          string            `json:"usage_id"`
	ReservationID    string            `json:"reservation_id"`
	AdjustmentID     string            `json:"adjustment_id"`
	Amount           decimal.Decimal   `json:"amount"`
	Released         decimal.Decimal   `json:"released"`
	Threshold        decimal.Decimal   `json:"threshold"`
	OverdraftLimit   decimal.Decimal   `json:"overdraft_limit"`
	CostPerCredit    *decimal.Decimal  `json:"cost_per_credit"`
	Source           Source            `json:"source"`
	Priority         int               `json:"priority"`
	EffectiveAt      time.Time         `json:"effective_at"`
	ExpiresAt        *time.Time        `json:"expires_at"`
	OccurredAt       time.Time         `json:"occurred_at"`
	CreatedAt        time.Time         `json:"created_at"`
	Currency         string            `json:"currency"`
	Description      string            `json:"description"`
	Reference        string            `json:"reference"`
	Reason           string            `json:"reason"`
	Metadata         map[string]string `json:"metadata"`
	Dimensions       Dimensions        `json:"dimensions"`
	Burned           []Burn            `json:"burned"`
	Returned         []Burn            `json:"returned"`
	Pinned           []Burn            `json:"pinned"`
	Trigger          string            `json:"trigger"`
	Enabled          bool              `json:"enabled"`
	TenantID         int64             `json:"tenant_id"`
	Name             string            `json:"name"`
	Email            string            `json:"email"`
	RequestKey       string            `json:"request_key"`
	KeyID            string            `json:"key_id"`
	KeyHash          string            `json:"key_hash"`
	Prefix           string            `json:"prefix"`
	Fingerprint      uint64            `json:"fp"`
	SubscriptionID   string            `json:"subscription_id"`
	CreditsPerPeriod decimal.Decimal   `json:"credits_per_period"`
	Period           Period            `json:"period"`
	StartsAt         time.Time         `json:"starts_at"`
	EndsAt           time.Time         `json:"ends_at"`
	PriceAmount      *decimal.Decimal  `json:"price_amount"`
	PriceCurrency    string            `json:"price_currency"`
	Rollover         bool              `json:"rollover"`
	CurrencyConfig   json.RawMessage   `json:"currency_config"`
	Thresholds       []decimal.Decimal `json:"thresholds"`
	WebhookURL       string            `json:"webhook_url"`
	BatchKey         string            `json:"batch_key"`
	Count            int               `json:"count"`
}

// MarshalJSON writes {"type","tenant_id","credit_type","data"}.
func (e Envelope) MarshalJSON() ([]byte, error) {
	if e.Event == nil {
		return nil, fmt.Errorf("envelope for tenant %d has no event", e.TenantID)
	}
	data, err := json.Marshal(e.Event)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		Type       EventType       `json:"type"`
		TenantID   int64           `json:"tenant_id"`
		CreditType string          `json:"credit_type,omitempty"`
		Data       json.RawMessage `json:"data"`
	}{e.Event.EventType(), e.TenantID, e.CreditType, data})
}

// UnmarshalJSON decodes an envelope, refusing unknown event types: a reader
// that skipped an event it does not know would compute a wrong balance.
func (e *Envelope) UnmarshalJSON(b []byte) error {
	var w EnvelopeWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	env, err := w.Envelope()
	if err != nil {
		return err
	}
	*e = env
	return nil
}

// Envelope converts the wire form to the typed event.
func (w EnvelopeWire) Envelope() (Envelope, error) {
	if w.Data == nil {
		return Envelope{}, fmt.Errorf("decode %s: no data", w.Type)
	}
	d := w.Data
	var ev Event
	switch w.Type {
	case EventCreditsGranted:
		ev = CreditsGranted{GrantID: d.GrantID, Amount: d.Amount, Source: d.Source, Priority: d.Priority, EffectiveAt: d.EffectiveAt,
			ExpiresAt: d.ExpiresAt, CostPerCredit: d.CostPerCredit, Currency: d.Currency, Description: d.Description,
			Reference: d.Reference, Metadata: d.Metadata, Trigger: d.Trigger, SubscriptionID: d.SubscriptionID, Fingerprint: d.Fingerprint}
	case EventUsageDebited:
		ev = UsageDebited{UsageID: d.UsageID, Amount: d.Amount, OccurredAt: d.OccurredAt, Dimensions: d.Dimensions,
			Description: d.Description, Burned: d.Burned, Fingerprint: d.Fingerprint}
	case EventDebitRejected:
		ev = DebitRejected{UsageID: d.UsageID, Amount: d.Amount, OccurredAt: d.OccurredAt, Dimensions: d.Dimensions, Reason: d.Reason, Fingerprint: d.Fingerprint}
	case EventUsageBatchRecorded:
		ev = UsageBatchRecorded{BatchKey: d.BatchKey, Count: d.Count, Fingerprint: d.Fingerprint}
	case EventCreditsReserved:
		if d.ExpiresAt == nil {
			return Envelope{}, fmt.Errorf("decode %s: no expires_at", w.Type)
		}
		ev = CreditsReserved{ReservationID: d.ReservationID, Amount: d.Amount, ExpiresAt: *d.ExpiresAt, Dimensions: d.Dimensions, Pinned: d.Pinned, Fingerprint: d.Fingerprint}
	case EventReservationRejected:
		ev = ReservationRejected{ReservationID: d.ReservationID, Amount: d.Amount, Dimensions: d.Dimensions, Reason: d.Reason, Fingerprint: d.Fingerprint}
	case EventReservationCaptured:
		ev = ReservationCaptured{ReservationID: d.ReservationID, Amount: d.Amount, Released: d.Released, Burned: d.Burned, Fingerprint: d.Fingerprint}
	case EventReservationReleased:
		ev = ReservationReleased{ReservationID: d.ReservationID, Amount: d.Amount, Reason: ReleaseReason(d.Reason)}
	case EventCreditsAdjusted:
		ev = CreditsAdjusted{AdjustmentID: d.AdjustmentID, Amount: d.Amount, Reason: d.Reason, Reference: d.Reference, Burned: d.Burned, Fingerprint: d.Fingerprint}
	case EventGrantExpired:
		ev = GrantExpired{GrantID: d.GrantID, Amount: d.Amount, Trigger: d.Trigger}
	case EventAutoReloadConfigured:
		ev = AutoReloadConfigured{Enabled: d.Enabled, Threshold: d.Threshold, Amount: d.Amount}
	case EventCreditLineConfigured:
		ev = CreditLineConfigured{OverdraftLimit: d.OverdraftLimit}
	case EventUsageReversed:
		ev = UsageReversed{UsageID: d.UsageID, Amount: d.Amount, Returned: d.Returned, OccurredAt: d.OccurredAt, Dimensions: d.Dimensions, Reason: d.Reason}
	case EventGrantVoided:
		ev = GrantVoided{GrantID: d.GrantID, Amount: d.Amount, Reason: d.Reason, Trigger: d.Trigger}
	case EventGrantExpiryChanged:
		ev = GrantExpiryChanged{GrantID: d.GrantID, ExpiresAt: d.ExpiresAt}
	case EventSubscriptionStarted:
		ev = SubscriptionStarted{SubscriptionID: d.SubscriptionID, CreditsPerPeriod: d.CreditsPerPeriod, Period: d.Period, StartsAt: d.StartsAt,
			PriceAmount: d.PriceAmount, PriceCurrency: d.PriceCurrency, Rollover: d.Rollover, Fingerprint: d.Fingerprint}
	case EventSubscriptionCanceled:
		ev = SubscriptionCanceled{SubscriptionID: d.SubscriptionID, EndsAt: d.EndsAt}
	case EventNoticesConfigured:
		ev = NoticesConfigured{TenantID: d.TenantID, Thresholds: d.Thresholds, WebhookURL: d.WebhookURL}
	case EventSettingsChanged:
		ev = SettingsChanged{TenantID: d.TenantID, Currency: d.Currency, CurrencyConfig: d.CurrencyConfig}
	case EventTenantCreated:
		ev = TenantCreated{TenantID: d.TenantID, Name: d.Name, Email: d.Email, Currency: d.Currency, CreatedAt: d.CreatedAt, RequestKey: d.RequestKey, Fingerprint: d.Fingerprint}
	case EventAPIKeyIssued:
		ev = APIKeyIssued{TenantID: d.TenantID, KeyID: d.KeyID, KeyHash: d.KeyHash, Prefix: d.Prefix}
	case EventAPIKeyRevoked:
		ev = APIKeyRevoked{TenantID: d.TenantID, KeyID: d.KeyID}
	default:
		return Envelope{}, fmt.Errorf("unknown event type %q", w.Type)
	}
	return Envelope{TenantID: w.TenantID, CreditType: w.CreditType, Event: ev}, nil
}
