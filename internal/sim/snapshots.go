package sim

import (
	"context"
	"fmt"
	"io"

	"github.com/creditd/creditd/commands"
	"github.com/creditd/creditd/eventstore"
)

// The engine under test snapshots through the fault store, with a small
// window (snapshotWindow: 12 ids per partition, the window being what the
// partitions hold together), so a run goes through many snapshots, id
// index segments and merges, and every restart after a crash starts from
// a snapshot. Writing a snapshot object fails at snapshotFailPerMille while
// faults are on, and always while the process is down: a failed snapshot
// must cost memory only, never an id or a credit.
const (
	snapshotWindow       = 12 * eventstore.PartitionsDefault
	snapshotFailPerMille = 50
)

var _ commands.SnapshotStore = (*FaultStore)(nil)

func (s *FaultStore) objectFault(what string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return fmt.Errorf("%w: the process is down", eventstore.ErrUnavailable)
	}
	if s.enabled && s.rng.IntN(1000) < snapshotFailPerMille {
		s.injected = append(s.injected, "failed "+what)
		return fmt.Errorf("%w: injected: failed %s", eventstore.ErrUnavailable, what)
	}
	return nil
}

func (s *FaultStore) PutObjectFile(ctx context.Context, name, path string) error {
	if err := s.objectFault("object " + name); err != nil {
		return err
	}
	return s.inner.PutObjectFile(ctx, name, path)
}

func (s *FaultStore) ObjectReader(ctx context.Context, name string) (io.ReadCloser, error) {
	if s.Down() {
		return nil, fmt.Errorf("%w: the process is down", eventstore.ErrUnavailable)
	}
	return s.inner.ObjectReader(ctx, name)
}

func (s *FaultStore) ObjectToFile(ctx context.Context, name, path string) error {
	if s.Down() {
		return fmt.Errorf("%w: the process is down", eventstore.ErrUnavailable)
	}
	return s.inner.ObjectToFile(ctx, name, path)
}

func (s *FaultStore) Objects(ctx context.Context, prefix string) ([]string, error) {
	if s.Down() {
		return nil, fmt.Errorf("%w: the process is down", eventstore.ErrUnavailable)
	}
	return s.inner.Objects(ctx, prefix)
}

func (s *FaultStore) DeleteObject(ctx context.Context, name string) error {
	if s.Down() {
		return fmt.Errorf("%w: the process is down", eventstore.ErrUnavailable)
	}
	return s.inner.DeleteObject(ctx, name)
}

// logOnly hides the store's snapshot methods: the second writer keeps no
// snapshots, so the engine under test owns its partitions' snapshots (as a
// partition's one owner does in a cluster).
type logOnly struct{ commands.FullStore }

// Connected is false while the process is down.
func (s *FaultStore) Connected() bool { return !s.Down() }
