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
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/creditd/creditd/internal/webhook"
)

// Delivery bounds.
const (
	noticeBatchMax     = 100
	noticeAttemptsMax  = 8
	noticeBackoffFirst = time.Second
	noticeBackoffMax   = 5 * time.Minute
	noticePollInterval = time.Second
	webhookTimeout     = 10 * time.Second
	// deliveryTenantsMax bounds the tenants whose notices are in flight at
	// once; each tenant has at most one delivery in flight, so a dead
	// endpoint holds up only its own tenant (and one of these slots).
	deliveryTenantsMax = 64
	// dueTenantsPage is how many tenants with due notices one query
	// lists; with Owns set, dueTenantPagesMax pages at most are read per
	// poll, from where the last poll stopped, so a poll's work is bounded
	// however many tenants other instances own, and every tenant's turn
	// comes.
	dueTenantsPage    = deliveryTenantsMax * 4
	dueTenantPagesMax = 16
	// noticeRecordedAgeMax is the age past which, with a DeliveryRecord,
	// a pending notice is not sent: its record may be gone (the KV record
	// keeps keys DeliveryRecordAge), so another instance may have sent it
	// and this one could not tell. The day between them absorbs clock
	// differences between instances. Only an instance that held a tenant's
	// notices undelivered that long (down for weeks, or never the owner
	// before) meets such notices.
	noticeRecordedAgeMax = DeliveryRecordAge - 24*time.Hour
	NoticeSubjectPrefix  = "credits.notices."
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of
	// "<t>.<body>" with the tenant's webhook secret>".
	SignatureHeader = "Creditd-Signature"
	// NoticeKeyHeader carries Notice.Key.
	NoticeKeyHeader = "Creditd-Notice-Key"
)

// Notice is what a notice says, on NATS and to the webhook.
type Notice struct {
	// NoticeID numbers the notice in one instance's read models: another
	// instance, or the same one after a rebuild, may number it otherwise.
	NoticeID int64 `json:"notice_id"`
	// Key names the crossing the same way on every instance and across
	// rebuilds (NoticeKey); receivers deduplicate by it.
	Key        string    `json:"key"`
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

// NoticeKey is the stable key of a crossing: a hash of what makes it the
// same crossing on every instance fed from the log (the position of the
// event that crossed, the tenant, the line, the kind and the threshold in
// micro-credits) and its rank among notices equal in all of those, as
// TakeNoticeOutbox matches them. A hash, because a credit type may hold
// ':', which a KV key refuses; 128 bits of SHA-256 in hex, so keys of
// different crossings do not meet.
func NoticeKey(position uint64, tenantID int64, creditType, kind string, thresholdMicro int64, rank int) string {
	// JSON separates the fields unambiguously whatever the credit type holds.
	material, _ := json.Marshal([]any{"creditd-notice-1", position, tenantID, creditType, kind, thresholdMicro, rank})
	sum := sha256.Sum256(material)
	return hex.EncodeToString(sum[:16])
}

// DeliveryRecord remembers, for every instance of a cluster, which
// crossings were delivered (by NoticeKey), so the instance that owns a
// tenant after a failover does not send again what the previous owner
// sent. Keys must be kept at least DeliveryRecordAge.
type DeliveryRecord interface {
	// Delivered reports whether key was recorded.
	Delivered(ctx context.Context, key string) (bool, error)
	// Record records key.
	Record(ctx context.Context, key string) error
}

// Dispatcher delivers recorded notices: on NATS credits.notices.<tenant>
// and, when the tenant set one, as a signed POST to its webhook, retried
// with backoff up to noticeAttemptsMax times. Each tenant's notices are
// delivered by a worker of its own, in notice order.
//
// With several instances, Owns and Record make one instance deliver each
// crossing: the owner of the tenant's partition, which checks Record
// before sending and records after. The guarantee is at least once, and
// once unless an owner ends between sending a notice and recording it (or
// ownership moves while a delivery is under way, or Record cannot be
// written): the next owner then sends it again. Receivers deduplicate by
// Notice.Key (also in the Creditd-Notice-Key header).
type Dispatcher struct {
	DB        *DB
	Projector *Projector
	NATS      *nats.Conn
	// Webhooks are the operator's rules for webhook URLs and addresses;
	// the zero value is strict.
	Webhooks   webhook.Policy
	SigningKey []byte
	Log        *slog.Logger
	Clock      func() time.Time
	// Owns, when set, tells whether this instance delivers a tenant's
	// notices now (it owns the tenant's partition); it is asked before
	// each delivery, since ownership moves. Other tenants' notices stay
	// pending here, untouched, for when ownership moves to this instance.
	// Nil: every tenant's (a single instance). Owns requires Record: a
	// new owner holds every notice of the tenant pending, and only the
	// record tells which were delivered.
	Owns func(tenantID int64) bool
	// Record, when set, is the delivered crossings shared by the
	// instances (OpenDeliveryRecord).
	Record DeliveryRecord

	client *http.Client
	// dueCursor is the tenant after which the next page of due tenants
	// starts (Owns set); othersCursor the notice after which settleOthers
	// goes on, othersAt when it last ran. Only Run touches them.
	dueCursor    int64
	othersCursor int64
	othersAt     time.Time
}

// Run delivers until ctx ends, and returns once every delivery in flight
// has ended.
func (d *Dispatcher) Run(ctx context.Context) {
	if d.Owns != nil && d.Record == nil {
		panic("projections: Dispatcher.Owns is set without Record: a new owner would send the tenant's whole history again")
	}
	d.dueCursor = math.MinInt64
	d.client = d.Webhooks.Client(webhookTimeout)
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Clock == nil {
		d.Clock = time.Now
	}
	ticker := time.NewTicker(noticePollInterval)
	defer ticker.Stop()
	busy := map[int64]bool{}
	finished := make(chan int64, deliveryTenantsMax)
	var workers sync.WaitGroup
	defer workers.Wait()
	for {
		tenants, err := d.dueTenants(ctx)
		if err != nil && ctx.Err() == nil {
			d.Log.Warn("notice delivery", "err", err)
		}
		for _, tenantID := range tenants {
			if busy[tenantID] || len(busy) >= deliveryTenantsMax {
				continue
			}
			busy[tenantID] = true
			workers.Go(func() {
				if err := d.deliverTenant(ctx, tenantID); err != nil && ctx.Err() == nil {
					d.Log.Warn("notice delivery", "tenant", tenantID, "err", err)
				}
				finished <- tenantID
			})
		}
		if d.Owns != nil && time.Since(d.othersAt) >= noticePollInterval {
			d.othersAt = time.Now()
			if err := d.settleOthers(ctx); err != nil && ctx.Err() == nil {
				d.Log.Warn("notices of other owners", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case tenantID := <-finished:
			delete(busy, tenantID)
		case <-d.Projector.noticed:
		case <-ticker.C:
		}
	}
}

// Bounds of settleOthers: the notices it looks up per pass (one a
// second), and how old one must be, so its owner has had time to send it.
const (
	othersSettledMax = 64
	othersSettleAge  = 5 * time.Second
)

// settleOthers marks delivered here the notices of tenants other instances
// own once the delivery record says they were delivered, so that
// GET /v1/notices answers the same status on every instance rather than
// pending for good on all but the owner. It walks the pending notices in
// order from where the last pass stopped, a bounded page per pass, and
// starts over at the end.
func (d *Dispatcher) settleOthers(ctx context.Context) error {
	rows, err := d.DB.writer.QueryContext(ctx, `SELECT n.notice_id, n.tenant_id, n.credit_type, n.kind, n.threshold, n.position,
		(SELECT count(*) FROM notices e INDEXED BY notices_position WHERE e.position = n.position AND e.tenant_id = n.tenant_id AND e.credit_type = n.credit_type
			AND e.kind = n.kind AND e.threshold = n.threshold AND e.notice_id <= n.notice_id)
		FROM notices n INDEXED BY notices_pending WHERE n.delivered_at IS NULL AND n.notice_id > ? AND n.created_at <= ? ORDER BY n.notice_id LIMIT ?`,
		d.othersCursor, d.Clock().Add(-othersSettleAge).UnixMicro(), othersSettledMax)
	if err != nil {
		return err
	}
	type other struct {
		id, tenant int64
		key        string
	}
	var page []other
	for rows.Next() {
		var o other
		var creditType, kind string
		var threshold int64
		var position uint64
		var rank int
		if err := rows.Scan(&o.id, &o.tenant, &creditType, &kind, &threshold, &position, &rank); err != nil {
			rows.Close()
			return err
		}
		o.key = NoticeKey(position, o.tenant, creditType, kind, threshold, rank)
		page = append(page, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(page) < othersSettledMax {
		d.othersCursor = 0 // the end: the next pass starts over
	} else {
		d.othersCursor = page[len(page)-1].id
	}
	for _, o := range page {
		if d.Owns(o.tenant) {
			continue // this instance's own: delivered by deliverTenant
		}
		delivered, err := d.Record.Delivered(ctx, o.key)
		if err != nil {
			return err
		}
		if delivered {
			if _, err := d.DB.writer.ExecContext(ctx, `UPDATE notices SET delivered_at = ?, last_error = '' WHERE notice_id = ? AND delivered_at IS NULL`,
				d.Clock().UnixMicro(), o.id); err != nil {
				return err
			}
		}
	}
	return nil
}

// dueTenants lists the tenants with notices due now that this instance
// delivers.
func (d *Dispatcher) dueTenants(ctx context.Context) ([]int64, error) {
	now := d.Clock().UnixMicro()
	if d.Owns == nil {
		// In notice order, so the tenants of the oldest notices come first.
		return queryTenants(ctx, d.DB, `SELECT DISTINCT tenant_id FROM notices INDEXED BY notices_pending WHERE delivered_at IS NULL AND next_attempt <= ?
			LIMIT ?`, now, dueTenantsPage)
	}
	// The tenants of other owners stay due here for good: they are read
	// past, page by page, so they neither crowd out this instance's
	// tenants nor make a poll's work grow without bound.
	var owned []int64
	for range dueTenantPagesMax {
		page, err := d.dueTenantsAfter(ctx, now, d.dueCursor)
		if err != nil {
			return owned, err
		}
		for _, id := range page {
			if d.Owns(id) {
				owned = append(owned, id)
			}
		}
		if len(page) < dueTenantsPage {
			d.dueCursor = math.MinInt64 // the end: the next poll starts over
			break
		}
		d.dueCursor = page[len(page)-1]
		if len(owned) >= dueTenantsPage {
			break
		}
	}
	return owned, nil
}

// dueTenantsAfter lists, in order, a page of the tenants after tenantID
// with notices due at now (Unix microseconds).
func (d *Dispatcher) dueTenantsAfter(ctx context.Context, now, tenantID int64) ([]int64, error) {
	return queryTenants(ctx, d.DB, `SELECT DISTINCT tenant_id FROM notices WHERE delivered_at IS NULL AND next_attempt <= ? AND tenant_id > ?
		ORDER BY tenant_id LIMIT ?`, now, tenantID, dueTenantsPage)
}

func queryTenants(ctx context.Context, db *DB, query string, args ...any) ([]int64, error) {
	rows, err := db.writer.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var tenants []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		tenants = append(tenants, id)
	}
	return tenants, rows.Err()
}

type pendingNotice struct {
	Notice
	attempts int
	webhook  string
}

// deliverTenant delivers one tenant's due notices, one at a time, while
// this instance delivers the tenant's notices.
func (d *Dispatcher) deliverTenant(ctx context.Context, tenantID int64) error {
	// rank counts the equal notices up to this one, delivered or not, in
	// notice order: the order the log recorded them in, on every instance.
	// Equal notices share a position, so they are looked up by it; left
	// to choose, SQLite reads all the tenant's earlier notices instead.
	rows, err := d.DB.writer.QueryContext(ctx, `SELECT n.notice_id, n.tenant_id, n.credit_type, n.kind, n.threshold, n.available, n.position,
		n.created_at, n.attempts, coalesce(t.webhook_url, ''),
		(SELECT count(*) FROM notices e INDEXED BY notices_position WHERE e.position = n.position AND e.tenant_id = n.tenant_id AND e.credit_type = n.credit_type
			AND e.kind = n.kind AND e.threshold = n.threshold AND e.notice_id <= n.notice_id)
		FROM notices n LEFT JOIN tenants t ON t.tenant_id = n.tenant_id
		WHERE n.delivered_at IS NULL AND n.next_attempt <= ? AND n.tenant_id = ? ORDER BY n.notice_id LIMIT ?`, d.Clock().UnixMicro(), tenantID, noticeBatchMax)
	if err != nil {
		return err
	}
	var due []pendingNotice
	for rows.Next() {
		var n pendingNotice
		var threshold, available, created int64
		var rank int
		if err := rows.Scan(&n.NoticeID, &n.TenantID, &n.CreditType, &n.Kind, &threshold, &available, &n.Position, &created, &n.attempts, &n.webhook, &rank); err != nil {
			rows.Close()
			return err
		}
		n.Key = NoticeKey(n.Position, n.TenantID, n.CreditType, n.Kind, threshold, rank)
		n.Threshold, n.Available, n.CreatedAt = FromMicro(threshold).String(), FromMicro(available).String(), time.UnixMicro(created).UTC()
		due = append(due, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, n := range due {
		if d.Owns != nil && !d.Owns(n.TenantID) {
			return nil // ownership moved: the rest is the new owner's
		}
		if err := d.deliver(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// deliver makes one attempt at a notice and records its outcome.
func (d *Dispatcher) deliver(ctx context.Context, n pendingNotice) error {
	if d.Record != nil {
		if done, err := d.settle(ctx, n); done || err != nil {
			return err
		}
	}
	body, _ := json.Marshal(n.Notice)
	if n.attempts == 0 && d.NATS != nil {
		// Published once, on the first attempt; the webhook is retried.
		if err := d.NATS.Publish(NoticeSubjectPrefix+strconv.FormatInt(n.TenantID, 10), body); err != nil {
			d.Log.Warn("notice publish", "notice", n.NoticeID, "err", err)
		}
	}
	var deliverErr error
	refused := false
	attempts := n.attempts + 1
	if n.webhook != "" {
		// A URL stored before the rules (or before the operator narrowed
		// them) is refused here too; retrying would not change the answer.
		if err := d.Webhooks.CheckURL(n.webhook); err != nil {
			deliverErr, refused = fmt.Errorf("webhook URL refused: %w", err), true
		} else {
			deliverErr = d.post(ctx, n, body)
		}
	}
	if ctx.Err() != nil {
		// Stopping: the attempt was cut short, not failed.
		return ctx.Err()
	}
	final := deliverErr == nil || attempts >= noticeAttemptsMax || refused
	if final && d.Record != nil {
		// Recorded before the outbox row, so an instance that ends between
		// the two finds its own notice in the record when it starts again.
		// A record that fails costs a second delivery after a failover,
		// never a lost one: the notice is not sent again for it.
		if err := d.Record.Record(ctx, n.Key); err != nil {
			d.Log.Warn("notice delivery record", "notice", n.NoticeID, "key", n.Key, "err", err)
		}
	}
	now := d.Clock()
	var err error
	switch {
	case deliverErr == nil:
		_, err = d.DB.writer.ExecContext(ctx, `UPDATE notices SET delivered_at = ?, attempts = ?, last_error = '' WHERE notice_id = ?`, now.UnixMicro(), attempts, n.NoticeID)
	case final:
		d.Log.Error("webhook gave up", "notice", n.NoticeID, "tenant", n.TenantID, "err", deliverErr)
		_, err = d.DB.writer.ExecContext(ctx, `UPDATE notices SET delivered_at = ?, attempts = ?, last_error = ? WHERE notice_id = ?`,
			now.UnixMicro(), attempts, "gave up: "+deliverErr.Error(), n.NoticeID)
	default:
		backoff := min(noticeBackoffFirst<<(attempts-1), noticeBackoffMax)
		_, err = d.DB.writer.ExecContext(ctx, `UPDATE notices SET attempts = ?, next_attempt = ?, last_error = ? WHERE notice_id = ?`,
			attempts, now.Add(backoff).UnixMicro(), deliverErr.Error(), n.NoticeID)
	}
	return err
}

// settle ends a notice without sending it when the delivery record says
// it was delivered (or given up) already, by this instance or another, or
// when it is older than the record keeps. It reports whether it did. The
// record not answering stops the tenant's delivery until the next poll:
// sending regardless would send a new owner's whole pending history again.
func (d *Dispatcher) settle(ctx context.Context, n pendingNotice) (bool, error) {
	now := d.Clock()
	if now.Sub(n.CreatedAt) > noticeRecordedAgeMax {
		d.Log.Warn("notice not sent: older than the delivery record keeps", "notice", n.NoticeID, "tenant", n.TenantID, "created", n.CreatedAt)
		_, err := d.DB.writer.ExecContext(ctx, `UPDATE notices SET delivered_at = ?, last_error = ? WHERE notice_id = ?`, now.UnixMicro(),
			fmt.Sprintf("not sent: older than the delivery record keeps (%s); another instance may have sent it", noticeRecordedAgeMax), n.NoticeID)
		return true, err
	}
	delivered, err := d.Record.Delivered(ctx, n.Key)
	if err != nil {
		return false, fmt.Errorf("notice %d: read the delivery record: %w", n.NoticeID, err)
	}
	if !delivered {
		return false, nil
	}
	// Delivered by another instance, or by this one before it restarted:
	// attempts stay as this instance counted them, 0 when another sent it.
	_, err = d.DB.writer.ExecContext(ctx, `UPDATE notices SET delivered_at = ?, last_error = '' WHERE notice_id = ?`, now.UnixMicro(), n.NoticeID)
	return true, err
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
	req.Header.Set(NoticeKeyHeader, n.Key)
	req.Header.Set(SignatureHeader, Sign(WebhookSecret(d.SigningKey, n.TenantID), d.Clock(), body))
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 3:
		return fmt.Errorf("webhook answered %d; redirects are not followed", resp.StatusCode)
	case resp.StatusCode/100 != 2:
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

// TakeNoticeOutbox gives a database rebuilt from the log (its notices
// marked delivered) the delivery state of the older read models at
// oldPath, whose last position was oldPosition, so a rebuild that
// replaces read models which were behind fires no notice twice and loses
// none: a notice up to oldPosition takes the state the old outbox held of
// it (delivered, or pending with its attempts and next attempt), and one
// after it, which the old read models never recorded, is left to deliver,
// as catching up in place would have. Notices follow from the log alone,
// so the same notice is the one at the same position, tenant, line, kind
// and threshold, and rank among such equals. oldPath must not be open.
func (db *DB) TakeNoticeOutbox(ctx context.Context, oldPath string, oldPosition uint64) error {
	conn, err := db.writer.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `ATTACH DATABASE ? AS old`, oldPath); err != nil {
		return fmt.Errorf("attach %s: %w", oldPath, err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `DETACH DATABASE old`)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE notices SET delivered_at = NULL, attempts = 0, next_attempt = 0, last_error = '' WHERE position > ?`, oldPosition); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `
		WITH o AS (SELECT position, tenant_id, credit_type, kind, threshold, delivered_at, attempts, next_attempt, last_error,
				row_number() OVER (PARTITION BY position, tenant_id, credit_type, kind, threshold ORDER BY notice_id) AS rank
			FROM old.notices WHERE position <= ?1),
		n AS (SELECT notice_id, position, tenant_id, credit_type, kind, threshold,
				row_number() OVER (PARTITION BY position, tenant_id, credit_type, kind, threshold ORDER BY notice_id) AS rank
			FROM main.notices WHERE position <= ?1)
		UPDATE main.notices SET delivered_at = o.delivered_at, attempts = o.attempts, next_attempt = o.next_attempt, last_error = o.last_error
		FROM n JOIN o USING (position, tenant_id, credit_type, kind, threshold, rank)
		WHERE main.notices.notice_id = n.notice_id`, oldPosition); err != nil {
		return fmt.Errorf("take the notice outbox of %s: %w", oldPath, err)
	}
	return tx.Commit()
}
