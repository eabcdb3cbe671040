package queries

import (
	"context"
	"time"

	"github.com/shopspring/decimal"
)

// noticeDeliveriesMax is how many of a tenant's latest notices GET
// /v1/notices shows with their delivery state.
const noticeDeliveriesMax = 20

// Delivery states of a notice.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	// DeliveryFailed: the webhook refused or failed every attempt, or its
	// URL is not allowed; the notice is not retried any more.
	DeliveryFailed = "failed"
)

// NoticeDelivery is a notice and how its delivery went.
type NoticeDelivery struct {
	NoticeID   int64
	CreditType string
	Kind       string
	Threshold  decimal.Decimal
	CreatedAt  time.Time
	Status     string
	Attempts   int
	LastError  string
	// NextAttemptAt is when a pending notice is tried again; zero otherwise.
	NextAttemptAt time.Time
}

// NoticeDeliveries returns the tenant's latest notices, newest first.
func (r *Reader) NoticeDeliveries(ctx context.Context, tenantID int64) ([]NoticeDelivery, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT notice_id, credit_type, kind, threshold, created_at, delivered_at IS NOT NULL,
		attempts, next_attempt, last_error FROM notices WHERE tenant_id = ? ORDER BY notice_id DESC LIMIT ?`, tenantID, noticeDeliveriesMax)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []NoticeDelivery{}
	for rows.Next() {
		var d NoticeDelivery
		var threshold, created, next int64
		var done bool
		if err := rows.Scan(&d.NoticeID, &d.CreditType, &d.Kind, &threshold, &created, &done, &d.Attempts, &next, &d.LastError); err != nil {
			return nil, err
		}
		d.Threshold, d.CreatedAt = decimal.New(threshold, -6), time.UnixMicro(created).UTC()
		switch {
		case !done:
			d.Status, d.NextAttemptAt = DeliveryPending, time.UnixMicro(next).UTC()
		case d.LastError != "":
			d.Status = DeliveryFailed
		default:
			d.Status = DeliveryDelivered
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
