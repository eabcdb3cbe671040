package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DeliveryRecordBucket is the JetStream key-value bucket recording the
// crossings delivered, shared by every instance on the cluster: it lives
// beside the log, not in one instance's read models, because the instance
// that delivers a tenant's notices changes with partition ownership.
const DeliveryRecordBucket = "CREDITS_NOTICES_DELIVERED"

// Bounds of the delivery record.
const (
	// DeliveryRecordAge is how long a delivered crossing is remembered.
	// A crossing's fate is settled within minutes of it (its owner sends
	// it, retrying for a quarter of an hour at most), so the record is
	// needed only for the notices a new owner finds pending in its outbox:
	// 30 days covers an instance down, or a partition moving, for weeks,
	// while keeping the bucket to one month of crossings. A pending notice
	// older than this is not sent (noticeRecordedAgeMax).
	DeliveryRecordAge = 30 * 24 * time.Hour
	// deliveryRecordBytesMax bounds the bucket on every replica. An entry
	// takes about 100 bytes as the server counts them (subject with the
	// 32-character key, value, overhead; measured on 10,000), so this
	// holds some 5 million crossings a month.
	// When it is full, new records are refused (a KV bucket discards new
	// writes, not old ones, so the record never forgets early): the
	// dispatcher logs it, and a failover in that time sends those
	// crossings again, which receivers deduplicate by key.
	deliveryRecordBytesMax = 512 << 20
	// deliveryRecordValueBytesMax bounds a value: the record holds no
	// more than deliveryRecordValue.
	deliveryRecordValueBytesMax = 16
)

// deliveryRecordValue is what a key holds: the key's presence is the record.
var deliveryRecordValue = []byte("delivered")

// KVDeliveryRecord is a DeliveryRecord in DeliveryRecordBucket.
type KVDeliveryRecord struct {
	kv jetstream.KeyValue
}

// OpenDeliveryRecord opens DeliveryRecordBucket on nc, creating it with
// replicas replicas (as many as the log's) on first use. An existing bucket
// is used as it is: its settings are the operator's from then on.
func OpenDeliveryRecord(ctx context.Context, nc *nats.Conn, replicas int) (*KVDeliveryRecord, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, DeliveryRecordBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:       DeliveryRecordBucket,
			Description:  "creditd notices delivered, by crossing key",
			MaxValueSize: deliveryRecordValueBytesMax,
			History:      1,
			TTL:          DeliveryRecordAge,
			MaxBytes:     deliveryRecordBytesMax,
			Storage:      jetstream.FileStorage,
			Replicas:     max(replicas, 1),
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			// Another instance created it first.
			kv, err = js.KeyValue(ctx, DeliveryRecordBucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", DeliveryRecordBucket, err)
	}
	return &KVDeliveryRecord{kv: kv}, nil
}

// Delivered reports whether key (a NoticeKey) was recorded in the last
// DeliveryRecordAge.
func (r *KVDeliveryRecord) Delivered(ctx context.Context, key string) (bool, error) {
	_, err := r.kv.Get(ctx, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	default:
		return false, err
	}
}

// Record records key (a NoticeKey). Recording a key twice is harmless:
// two instances may both have sent the crossing.
func (r *KVDeliveryRecord) Record(ctx context.Context, key string) error {
	_, err := r.kv.Put(ctx, key, deliveryRecordValue)
	return err
}
