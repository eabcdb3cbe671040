package projections

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/creditd/creditd/internal/webhook"
)

// Delivery bounds.
const (
	noticeBatchMax      = 100
	noticeAttemptsMax   = 8
	noticeBackoffFirst  = time.Second
	noticeBackoffMax    = 5 * time.Minute
	noticePollInterval  = time.Second
	webhookTimeout      = 10 * time.Second
	NoticeSubjectPrefix = "credits.notices."
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of
	// "<t>.<body>" with the tenant's webhook secret>".
	SignatureHeader = "Creditd-Signature"
)

// Notice is what a notice says, on NATS and to the webhook.
type Notice struct {
	NoticeID   int64     `json:"notice_id"`
	TenantID   int64     `json:"tenant_id"`
	CreditType string    `json:"credit_type"`
	Kind       string    `json:"kind"`
	Threshold  string    `json:"threshold"`
	Available  string    `json:"available"`
	Position   uint64    `json:"position"`
	CreatedAt  time.Time `json:"created_at"`
}

// WebhookSecret derives a tenant's webhook signing secret from the server's
// signing key, so no secret is ever written to the log.
func WebhookSecret(signingKey []byte, tenantID int64) string {
	mac := hmac.New(sha256.New, signingKey)
	mac.Write([]byte("creditd-webhook:" + strconv.FormatInt(tenantID, 10)))
	return hex.EncodeToString(mac.Sum(nil))
}

// Sign returns the signature header value of body at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Dispatcher delivers recorded notices: on NATS credits.notices.<tenant>
// and, when the tenant set one, as a signed POST to its webhook, retried
// with backoff up to noticeAttemptsMax times.
type Dispatcher struct {
	DB        *DB
	Projector *Projector
	NATS      *nats.Conn
	HTTP      *http.Client
	// Webhooks are the operator's rules for webhook URLs and addresses.
	Webhooks   webhook.Policy
	SigningKey []byte
	Log        *slog.Logger
	Clock      func() time.Time
}

// Run delivers until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	if d.HTTP == nil {
		d.HTTP = d.Webhooks.Client(webhookTimeout)
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Clock == nil {
		d.Clock = time.Now
	}
	ticker := time.NewTicker(noticePollInterval)
	defer ticker.Stop()
	for {
		if err := d.deliverDue(ctx); err != nil && ctx.Err() == nil {
			d.Log.Warn("notice delivery", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-d.Projector.noticed:
		case <-ticker.C:
		}
	}
}

type pendingNotice struct {
	Notice
	attempts int
	webhook  string
}

func (d *Dispatcher) deliverDue(ctx context.Context) error {
	now := d.Clock()
	rows, err := d.DB.writer.QueryContext(ctx, `SELECT n.notice_id, n.tenant_id, n.credit_type, n.kind, n.threshold, n.available, n.position,
		n.created_at, n.attempts, coalesce(t.webhook_url, '') FROM notices n LEFT JOIN tenants t ON t.tenant_id = n.tenant_id
		WHERE n.delivered_at IS NULL AND n.next_attempt <= ? ORDER BY n.notice_id LIMIT ?`, now.UnixMicro(), noticeBatchMax)
	if err != nil {
		return err
	}
	var due []pendingNotice
	for rows.Next() {
		var n pendingNotice
		var threshold, available, created int64
		if err := rows.Scan(&n.NoticeID, &n.TenantID, &n.CreditType, &n.Kind, &threshold, &available, &n.Position, &created, &n.attempts, &n.webhook); err != nil {
			rows.Close()
			return err
		}
		n.Threshold, n.Available, n.CreatedAt = FromMicro(threshold).String(), FromMicro(available).String(), time.UnixMicro(created).UTC()
		due = append(due, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, n := range due {
		body, _ := json.Marshal(n.Notice)
		if n.attempts == 0 && d.NATS != nil {
			// Published once, on the first attempt; the webhook is retried.
			if err := d.NATS.Publish(NoticeSubjectPrefix+strconv.FormatInt(n.TenantID, 10), body); err != nil {
				d.Log.Warn("notice publish", "notice", n.NoticeID, "err", err)
			}
		}
		var deliverErr error
		if n.webhook != "" {
			deliverErr = d.post(ctx, n, body)
		}
		attempts := n.attempts + 1
		switch {
		case deliverErr == nil:
			_, err = d.DB.writer.ExecContext(ctx, `UPDATE notices SET delivered_at = ?, attempts = ?, last_error = '' WHERE notice_id = ?`, now.UnixMicro(), attempts, n.NoticeID)
		case attempts >= noticeAttemptsMax:
			d.Log.Error("webhook gave up", "notice", n.NoticeID, "tenant", n.TenantID, "err", deliverErr)
			_, err = d.DB.writer.ExecContext(ctx, `UPDATE notices SET delivered_at = ?, attempts = ?, last_error = ? WHERE notice_id = ?`,
				now.UnixMicro(), attempts, "gave up: "+deliverErr.Error(), n.NoticeID)
		default:
			backoff := min(noticeBackoffFirst<<(attempts-1), noticeBackoffMax)
			_, err = d.DB.writer.ExecContext(ctx, `UPDATE notices SET attempts = ?, next_attempt = ?, last_error = ? WHERE notice_id = ?`,
				attempts, now.Add(backoff).UnixMicro(), deliverErr.Error(), n.NoticeID)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *Dispatcher) post(ctx context.Context, n pendingNotice, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.webhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Creditd-Notice-Id", strconv.FormatInt(n.NoticeID, 10))
	req.Header.Set(SignatureHeader, Sign(WebhookSecret(d.SigningKey, n.TenantID), d.Clock(), body))
	resp, err := d.HTTP.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook answered %d", resp.StatusCode)
	}
	return nil
}

// MarkNoticesDelivered marks every pending notice delivered: a rebuilt
// database replays history, whose notices were delivered when they
// happened.
func (db *DB) MarkNoticesDelivered(ctx context.Context) error {
	_, err := db.writer.ExecContext(ctx, `UPDATE notices SET delivered_at = created_at WHERE delivered_at IS NULL`)
	return err
}
