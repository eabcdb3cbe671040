package commands

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"

	"github.com/creditd/creditd/domain"
)

// idKey names one idempotent write of one tenant: the first 16 bytes of
// SHA-256(tenant, kind, id). Kept instead of the id itself so that the index
// of every id ever written (idempotency for the life of the data) costs a
// fixed 40 bytes or so per write; 128 bits make a collision negligible.
type idKey [16]byte

// Kinds of idempotent writes; each has its own id space within a tenant.
const (
	kindGrant       = "grant"
	kindUsage       = "usage"
	kindReservation = "reservation"
	kindCapture     = "capture"
	kindRelease     = "release"
	kindAdjustment  = "adjustment"
	kindSubscribe   = "subscription"
	kindUnsubscribe = "subscription_cancel"
	kindVoid        = "void"
	kindReverse     = "reverse"
	kindUsageBatch  = "usage_batch"
)

func makeKey(tenantID int64, kind, id string) idKey {
	// One buffer hashed at once, on the stack for ids of usual length:
	// sha256.New and Sum(nil) allocated twice per event.
	var buf [128]byte
	b := binary.BigEndian.AppendUint64(buf[:0], uint64(tenantID))
	b = append(append(append(b, kind...), 0), id...)
	sum := sha256.Sum256(b)
	var k idKey
	copy(k[:], sum[:])
	return k
}

// outcomeStatus is how a write ended, as kept in the index.
type outcomeStatus uint8

const (
	outcomeAccepted outcomeStatus = iota
	outcomeRejectedInsufficient
	outcomeRejectedFuture
)

func (s outcomeStatus) reason() string {
	switch s {
	case outcomeRejectedInsufficient:
		return domain.RejectInsufficientCredits
	case outcomeRejectedFuture:
		return domain.RejectOccurredInFuture
	}
	return ""
}

func rejectionStatus(reason string) outcomeStatus {
	if reason == domain.RejectOccurredInFuture {
		return outcomeRejectedFuture
	}
	return outcomeRejectedInsufficient
}

// outcome is what the index remembers of a write: where it landed, what the
// request looked like, and how it ended.
type outcome struct {
	position    uint64
	fingerprint uint64
	status      outcomeStatus
}

// lineFingerprint binds a command's fingerprint to the line it was sent to,
// so the same id sent to another credit type is a different request.
func lineFingerprint(fp uint64, creditType string) uint64 {
	if fp == 0 {
		return 0
	}
	var buf [96]byte
	h := sha256.Sum256(append(append(strconv.AppendUint(buf[:0], fp, 16), 0), creditType...))
	return binary.BigEndian.Uint64(h[:8]) | 1
}

// keyedOutcome is an index entry an event creates.
type keyedOutcome struct {
	key     idKey
	outcome outcome
}

// outcomeOf is the index entry an event creates, if any (an event creates
// at most one; a value, not a slice, since it runs for every event). The
// live path and the replay path both use it, so the index rebuilt from the
// log equals the one kept while writing.
func outcomeOf(tenantID int64, creditType string, e domain.Event) (keyedOutcome, bool) {
	entry := func(kind, id string, fp uint64, status outcomeStatus) (keyedOutcome, bool) {
		return keyedOutcome{key: makeKey(tenantID, kind, id), outcome: outcome{fingerprint: lineFingerprint(fp, creditType), status: status}}, true
	}
	switch e := e.(type) {
	case domain.CreditsGranted:
		return entry(kindGrant, e.GrantID, e.Fingerprint, outcomeAccepted)
	case domain.UsageDebited:
		return entry(kindUsage, e.UsageID, e.Fingerprint, outcomeAccepted)
	case domain.DebitRejected:
		return entry(kindUsage, e.UsageID, e.Fingerprint, rejectionStatus(e.Reason))
	case domain.UsageBatchRecorded:
		return entry(kindUsageBatch, e.BatchKey, e.Fingerprint, outcomeAccepted)
	case domain.CreditsReserved:
		return entry(kindReservation, e.ReservationID, e.Fingerprint, outcomeAccepted)
	case domain.ReservationRejected:
		return entry(kindReservation, e.ReservationID, e.Fingerprint, rejectionStatus(e.Reason))
	case domain.ReservationCaptured:
		return entry(kindCapture, e.ReservationID, e.Fingerprint, outcomeAccepted)
	case domain.ReservationReleased:
		if e.Reason == domain.ReleaseReleased {
			return entry(kindRelease, e.ReservationID, 1, outcomeAccepted)
		}
	case domain.CreditsAdjusted:
		return entry(kindAdjustment, e.AdjustmentID, e.Fingerprint, outcomeAccepted)
	case domain.UsageReversed:
		// Fingerprints computed from the stored reason: the index rebuilt
		// from an older log tells reasons apart too.
		return entry(kindReverse, e.UsageID, domain.ReverseUsage{UsageID: e.UsageID, Reason: e.Reason}.Fingerprint(), outcomeAccepted)
	case domain.GrantVoided:
		if e.Trigger != "" {
			return keyedOutcome{}, false // a consequence of another write, not a void request
		}
		return entry(kindVoid, e.GrantID, domain.VoidGrant{GrantID: e.GrantID, Reason: e.Reason}.Fingerprint(), outcomeAccepted)
	case domain.SubscriptionStarted:
		return entry(kindSubscribe, e.SubscriptionID, e.Fingerprint, outcomeAccepted)
	case domain.SubscriptionCanceled:
		return entry(kindUnsubscribe, e.SubscriptionID, 1, outcomeAccepted)
	}
	return keyedOutcome{}, false
}
