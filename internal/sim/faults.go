package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/eventstore"
)

// Fault is a kind of failure the store wrapper injects into an append.
type Fault string

const (
	// FaultFailBefore: the append fails and nothing is stored.
	FaultFailBefore Fault = "append failed before storing"
	// FaultLostAnswer: the append is stored but its answer is lost.
	FaultLostAnswer Fault = "append stored, answer lost"
	// FaultConflict: a second writer commits on the subject first.
	FaultConflict Fault = "a second writer committed first"
	// FaultCrash: the process dies during the append (which lands or not);
	// the driver restarts the engine from the log.
	FaultCrash Fault = "process crashed during the append"
)

// Fault rates per thousand appends to a partition subject.
var faultRates = []struct {
	fault    Fault
	perMille int
}{
	{FaultFailBefore, 20},
	{FaultLostAnswer, 20},
	{FaultConflict, 15},
	{FaultCrash, 10},
}

// FaultStore wraps the real store and injects faults drawn from the seed's
// fault stream. It satisfies commands.FullStore.
type FaultStore struct {
	inner *eventstore.Store
	// other makes one real commit on a partition as another writer would
	// (a second engine on the same store).
	other func(partition int) error

	mu       sync.Mutex
	rng      *rand.Rand
	enabled  bool
	down     bool // crashed: everything fails until Restarted
	injected []string
}

var _ commands.FullStore = (*FaultStore)(nil)

// NewFaultStore wraps inner; faults are off until Enable.
func NewFaultStore(inner *eventstore.Store, rng *rand.Rand, other func(partition int) error) *FaultStore {
	return &FaultStore{inner: inner, rng: rng, other: other}
}

// Enable turns fault injection on or off.
func (s *FaultStore) Enable(on bool) {
	s.mu.Lock()
	s.enabled = on
	s.mu.Unlock()
}

// Injected is how many faults were injected so far.
func (s *FaultStore) Injected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.injected)
}

// Log lists the faults injected after the first n.
func (s *FaultStore) Log(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.injected[n:], "; ")
}

// Down reports a crash the engine has not been restarted from.
func (s *FaultStore) Down() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down
}

// Restarted brings the store back after a crash: the new process sees the
// log as the crash left it.
func (s *FaultStore) Restarted() {
	s.mu.Lock()
	s.down = false
	s.mu.Unlock()
}

// draw picks the fault of one append, "" for none.
func (s *FaultStore) draw(subject string) (Fault, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return "", fmt.Errorf("%w: the process is down", eventstore.ErrUnavailable)
	}
	if !s.enabled || !strings.HasPrefix(subject, "credits.events.") {
		return "", nil
	}
	pick := s.rng.IntN(1000)
	for _, r := range faultRates {
		if pick < r.perMille {
			s.injected = append(s.injected, fmt.Sprintf("%s on %s", r.fault, subject))
			return r.fault, nil
		}
		pick -= r.perMille
	}
	return "", nil
}

// Append injects the drawn fault around the real append.
func (s *FaultStore) Append(ctx context.Context, subject string, expectedSeq uint64, data []byte) (uint64, error) {
	fault, err := s.draw(subject)
	if err != nil {
		return 0, err
	}
	switch fault {
	case FaultFailBefore:
		return 0, fmt.Errorf("%w: injected: %s", eventstore.ErrUnavailable, fault)
	case FaultLostAnswer:
		if _, err := s.inner.Append(ctx, subject, expectedSeq, data); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("%w: injected: %s", eventstore.ErrUnavailable, fault)
	case FaultConflict:
		var partition int
		fmt.Sscanf(subject, "credits.events.%d", &partition)
		if err := s.other(partition); err != nil {
			return 0, fmt.Errorf("the second writer's commit: %w", err)
		}
		return s.inner.Append(ctx, subject, expectedSeq, data)
	case FaultCrash:
		s.mu.Lock()
		lands := s.rng.IntN(2) == 0
		s.down = true
		s.mu.Unlock()
		if lands {
			if _, err := s.inner.Append(ctx, subject, expectedSeq, data); err != nil {
				return 0, err
			}
		}
		return 0, fmt.Errorf("%w: injected: %s (landed: %t)", eventstore.ErrUnavailable, fault, lands)
	}
	return s.inner.Append(ctx, subject, expectedSeq, data)
}

// ReadSubject fails while the process is down.
func (s *FaultStore) ReadSubject(ctx context.Context, subject string, afterSeq uint64, fn func(eventstore.StoredMsg) error) error {
	if s.Down() {
		return fmt.Errorf("%w: the process is down", eventstore.ErrUnavailable)
	}
	return s.inner.ReadSubject(ctx, subject, afterSeq, fn)
}

// Load fails while the process is down.
func (s *FaultStore) Load(ctx context.Context, seq uint64) (eventstore.StoredMsg, error) {
	if s.Down() {
		return eventstore.StoredMsg{}, fmt.Errorf("%w: the process is down", eventstore.ErrUnavailable)
	}
	return s.inner.Load(ctx, seq)
}

func (s *FaultStore) Partitions() int                { return s.inner.Partitions() }
func (s *FaultStore) PartitionOf(tenantID int64) int { return s.inner.PartitionOf(tenantID) }
func (s *FaultStore) MaxCommitBytes() int            { return s.inner.MaxCommitBytes() }

// Quarantined passes through: the simulation sets no message aside.
func (s *FaultStore) Quarantined(ctx context.Context) (eventstore.Quarantined, error) {
	return s.inner.Quarantined(ctx)
}
