package domain

import "strconv"

// UsageBatch is a batch of usage events sent under one key (the
// Idempotency-Key of POST /v1/usage). The key binds the whole batch for the
// life of the data: the same key with the same events answers each event's
// original outcome, with other events it is ErrIdempotencyConflict. Each
// event stays idempotent by its own id as well.
type UsageBatch struct {
	Key string
	// Fingerprints are the batch's events' fingerprints, in order: the same
	// events in another order are another batch.
	Fingerprints []uint64
}

// Validate checks the key like an id.
func (b UsageBatch) Validate() error {
	var v validator
	v.id("batch_key", b.Key, true)
	return v.err()
}

// Fingerprint identifies the whole batch.
func (b UsageBatch) Fingerprint() uint64 {
	var f fingerprinter
	f = f.str("usage_batch").str(b.Key)
	for _, fp := range b.Fingerprints {
		f = f.str(strconv.FormatUint(fp, 16))
	}
	return f.sum()
}

// DecideUsageBatch records the batch's key: it is what binds the key after
// a restart, since the write model's index is rebuilt from the log.
func DecideUsageBatch(b UsageBatch) ([]Event, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return []Event{UsageBatchRecorded{BatchKey: b.Key, Count: len(b.Fingerprints), Fingerprint: b.Fingerprint()}}, nil
}
