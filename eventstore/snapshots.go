package eventstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// SnapshotBucket is the JetStream object store holding the partition
// writers' snapshots and the segments of their id indexes. It lives in
// JetStream beside the log, not in a file beside one node, so every
// instance of a cluster can start from any other's snapshot, with the
// stream's replication.
const SnapshotBucket = "CREDITS_SNAPSHOTS"

// ErrObjectNotFound: no object of that name.
var ErrObjectNotFound = errors.New("eventstore: object not found")

// snapshots opens the bucket on first use: only writers need it. A failed
// open is tried again at the next use (a new cluster may be electing the
// bucket's leader), a successful one is kept.
type snapshots struct {
	mu  sync.Mutex
	obs jetstream.ObjectStore
	// puts lets one upload run at a time. The object store's publisher
	// keeps up to 4,000 chunks of 128 KiB in flight per upload, and
	// nats-server refuses a stream's messages past 128 MiB queued (429 too
	// many requests): the partitions' uploads, which all go through the
	// bucket's one stream, are queued here instead, and creditd keeps each
	// object under 64 MiB (commands' segmentBytesDefault).
	puts sync.Mutex
}

func (s *Store) objects(ctx context.Context) (jetstream.ObjectStore, error) {
	s.snap.mu.Lock()
	defer s.snap.mu.Unlock()
	if s.snap.obs != nil {
		return s.snap.obs, nil
	}
	obs, err := s.js.ObjectStore(ctx, SnapshotBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		obs, err = s.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      SnapshotBucket,
			Description: "creditd write-state snapshots and id index segments",
			Storage:     jetstream.FileStorage,
			Replicas:    s.replicas,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("%w: snapshot bucket: %v", ErrUnavailable, err)
	}
	s.snap.obs = obs
	return obs, nil
}

// PutObject stores data under name, replacing any object of that name.
func (s *Store) PutObject(ctx context.Context, name string, data []byte) error {
	obs, err := s.objects(ctx)
	if err != nil {
		return err
	}
	s.snap.puts.Lock()
	defer s.snap.puts.Unlock()
	if _, err := obs.PutBytes(ctx, name, data); err != nil {
		return fmt.Errorf("%w: put %s: %v", ErrUnavailable, name, err)
	}
	return nil
}

// PutObjectFile stores the file at path under name.
func (s *Store) PutObjectFile(ctx context.Context, name, path string) error {
	obs, err := s.objects(ctx)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	s.snap.puts.Lock()
	defer s.snap.puts.Unlock()
	if _, err := obs.Put(ctx, jetstream.ObjectMeta{Name: name}, f); err != nil {
		return fmt.Errorf("%w: put %s: %v", ErrUnavailable, name, err)
	}
	return nil
}

// Object returns the object named name. The object store checks the
// object's SHA-256 digest as it reads, so a damaged object is an error,
// never wrong bytes.
func (s *Store) Object(ctx context.Context, name string) ([]byte, error) {
	obs, err := s.objects(ctx)
	if err != nil {
		return nil, err
	}
	data, err := obs.GetBytes(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrObjectNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	return data, nil
}

// ObjectToFile writes the object named name to path, through a temporary
// file renamed into place once whole, so path never holds half an object.
func (s *Store) ObjectToFile(ctx context.Context, name, path string) error {
	obs, err := s.objects(ctx)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".download-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	tmp.Close()
	err = obs.GetFile(ctx, name, tmp.Name())
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("%w: %s", ErrObjectNotFound, name)
	}
	if err != nil {
		return fmt.Errorf("get %s: %w", name, err)
	}
	return os.Rename(tmp.Name(), path)
}

// Objects lists the names of the objects whose names start with prefix.
func (s *Store) Objects(ctx context.Context, prefix string) ([]string, error) {
	obs, err := s.objects(ctx)
	if err != nil {
		return nil, err
	}
	infos, err := obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: list objects: %v", ErrUnavailable, err)
	}
	var names []string
	for _, info := range infos {
		if strings.HasPrefix(info.Name, prefix) {
			names = append(names, info.Name)
		}
	}
	return names, nil
}

// ObjectTimes lists the objects whose names start with prefix, with the
// time each was last written.
func (s *Store) ObjectTimes(ctx context.Context, prefix string) (map[string]time.Time, error) {
	obs, err := s.objects(ctx)
	if err != nil {
		return nil, err
	}
	infos, err := obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: list objects: %v", ErrUnavailable, err)
	}
	times := map[string]time.Time{}
	for _, info := range infos {
		if strings.HasPrefix(info.Name, prefix) {
			times[info.Name] = info.ModTime
		}
	}
	return times, nil
}

// DeleteObject removes the object named name; a missing one is no error.
func (s *Store) DeleteObject(ctx context.Context, name string) error {
	obs, err := s.objects(ctx)
	if err != nil {
		return err
	}
	if err := obs.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("%w: delete %s: %v", ErrUnavailable, name, err)
	}
	return nil
}

// ObjectReader opens the object named name for reading, so a caller may
// read only its start (a snapshot's header). The digest is checked only by
// reading to the end.
func (s *Store) ObjectReader(ctx context.Context, name string) (io.ReadCloser, error) {
	obs, err := s.objects(ctx)
	if err != nil {
		return nil, err
	}
	r, err := obs.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrObjectNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	return r, nil
}

// Connected reports whether the connection to NATS is up.
func (s *Store) Connected() bool { return s.nc.IsConnected() }
