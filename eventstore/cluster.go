package eventstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// LeaseBucket is the JetStream KV bucket in which creditd instances on one
// cluster hold the leases of the write partitions and announce that they
// are alive. Its entries expire TTL after their last write: a lease that is
// not renewed, or an instance that stops announcing itself, is gone after
// the TTL without anyone having to notice the death.
const LeaseBucket = "creditd_leases"

// ForwardSubjectPrefix starts the subject on which the owner of a partition
// takes the writes other instances forward to it:
// creditd.forward.<partition>. Only creditd itself may publish there:
// a forwarded write names its tenant, so a client allowed on these
// subjects could write for any tenant (docs/nats-server.conf denies
// them to producers).
const ForwardSubjectPrefix = "creditd.forward."

// Bounds of the cluster's coordination.
const (
	// leaseBucketBytesMax bounds the bucket: it holds a key per partition
	// and per live instance, each a few bytes, with one revision each.
	leaseBucketBytesMax = 1 << 20
	// forwardPendingMsgsMax and forwardPendingBytesMax bound the forwarded
	// writes queued on one partition's subscription while its handlers
	// are all busy; past them NATS drops the newest and their senders time
	// out and retry (back-pressure, not unbounded memory).
	forwardPendingMsgsMax  = 4096
	forwardPendingBytesMax = 64 << 20
)

// Errors of the cluster's coordination.
var (
	// ErrLeaseHeld: another instance holds the lease.
	ErrLeaseHeld = errors.New("eventstore: lease held by another instance")
	// ErrLeaseLost: the lease moved past the revision the holder knew
	// (it expired, and maybe another instance took it).
	ErrLeaseLost = errors.New("eventstore: lease lost")
	// ErrNoOwner: no instance serves the partition's forwarded writes now
	// (its lease is changing hands). Retry shortly.
	ErrNoOwner = errors.New("eventstore: no owner serves the partition")
)

// Cluster is the coordination of creditd instances sharing one stream: the
// partition leases and instance announcements in LeaseBucket, and the
// forwarding of writes to partition owners over NATS request/reply. It
// uses its own connection, so forwarded writes and lease renewals do not
// queue behind appends.
type Cluster struct {
	nc  *nats.Conn
	kv  jetstream.KeyValue
	ttl time.Duration

	// The bucket as a watcher keeps it (View): started on first use, and
	// again if it ends.
	watchMu sync.Mutex
	watcher jetstream.KeyWatcher
	ready   chan struct{} // closed once the watcher sent every current value
	entries map[string]watchedEntry
}

// watchedEntry is a key's latest value as the watcher saw it.
type watchedEntry struct {
	value string
	rev   uint64
	at    time.Time
}

// OpenCluster opens (creating on first use) the lease bucket with the given
// TTL and replicas. An existing bucket with another TTL is updated: every
// instance of a cluster must run with one TTL (--lease-ttl), and the last
// one started sets it.
func OpenCluster(ctx context.Context, nc *nats.Conn, replicas int, ttl time.Duration) (*Cluster, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LeaseBucket,
		Description: "creditd partition leases and live instances",
		History:     1,
		TTL:         ttl,
		MaxBytes:    leaseBucketBytesMax,
		// File storage, replicated like the log: a lease must survive the
		// loss of a node, or a second writer could start while the first
		// still holds it in its own eyes.
		Storage:  jetstream.FileStorage,
		Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("open lease bucket %s: %w", LeaseBucket, err)
	}
	return &Cluster{nc: nc, kv: kv, ttl: ttl}, nil
}

// TTL is how long a lease or an announcement lives without renewal.
func (c *Cluster) TTL() time.Duration { return c.ttl }

func leaseKey(partition int) string { return "p." + strconv.Itoa(partition) }

const memberPrefix = "m."

// Acquire takes the lease of a partition for instance, when nobody holds
// it: ErrLeaseHeld otherwise. It returns the lease's revision, which
// renewals and the release name.
func (c *Cluster) Acquire(ctx context.Context, partition int, instance string) (uint64, error) {
	rev, err := c.kv.Create(ctx, leaseKey(partition), []byte(instance))
	switch {
	case errors.Is(err, jetstream.ErrKeyExists):
		return 0, ErrLeaseHeld
	case err != nil:
		return 0, fmt.Errorf("%w: acquire lease %d: %v", ErrUnavailable, partition, err)
	}
	return rev, nil
}

// Renew extends a lease held at rev by another TTL and returns its new
// revision; ErrLeaseLost when the lease is no longer at rev.
func (c *Cluster) Renew(ctx context.Context, partition int, instance string, rev uint64) (uint64, error) {
	next, err := c.kv.Update(ctx, leaseKey(partition), []byte(instance), rev)
	switch {
	case isRevisionMismatch(err):
		return 0, ErrLeaseLost
	case err != nil:
		return 0, fmt.Errorf("%w: renew lease %d: %v", ErrUnavailable, partition, err)
	}
	return next, nil
}

// Release gives a lease held at rev up at once, so another instance may
// take it without waiting for the TTL. A lease no longer at rev is not
// touched.
func (c *Cluster) Release(ctx context.Context, partition int, rev uint64) error {
	err := c.kv.Delete(ctx, leaseKey(partition), jetstream.LastRevision(rev))
	switch {
	case isRevisionMismatch(err):
		return ErrLeaseLost
	case err != nil:
		return fmt.Errorf("%w: release lease %d: %v", ErrUnavailable, partition, err)
	}
	return nil
}

// Holder reads who holds a partition's lease, and at which revision; ""
// when nobody does.
func (c *Cluster) Holder(ctx context.Context, partition int) (string, uint64, error) {
	e, err := c.kv.Get(ctx, leaseKey(partition))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return "", 0, nil
	case err != nil:
		return "", 0, fmt.Errorf("%w: read lease %d: %v", ErrUnavailable, partition, err)
	}
	return string(e.Value()), e.Revision(), nil
}

func isRevisionMismatch(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// Announce says instance is alive, for another TTL.
func (c *Cluster) Announce(ctx context.Context, instance string) error {
	if _, err := c.kv.Put(ctx, memberPrefix+instance, nil); err != nil {
		return fmt.Errorf("%w: announce %s: %v", ErrUnavailable, instance, err)
	}
	return nil
}

// Leave withdraws instance's announcement, so the others rebalance without
// waiting for the TTL.
func (c *Cluster) Leave(ctx context.Context, instance string) error {
	if err := c.kv.Delete(ctx, memberPrefix+instance); err != nil {
		return fmt.Errorf("%w: leave %s: %v", ErrUnavailable, instance, err)
	}
	return nil
}

// View is the cluster as the lease bucket holds it now.
type View struct {
	// Members are the announced instances, sorted.
	Members []string
	// Owners maps each leased partition to its holder.
	Owners map[int]string
	// Revisions are each key's revision: a member's announcement
	// ("m.<name>") or a partition's lease ("p.<n>"). One that stays the
	// same for a TTL was not renewed (its holder is gone), whether or not
	// the bucket has expired it yet.
	Revisions map[string]uint64
	// Since is when this process heard of each key's current revision (on
	// its monotonic clock): no earlier than the key was written.
	Since map[string]time.Time
}

// MemberKey and LeaseKey are the keys of View.Revisions.
func MemberKey(instance string) string { return memberPrefix + instance }

// LeaseKey is a partition lease's key.
func LeaseKey(partition int) string { return leaseKey(partition) }

// View returns the announced instances and the partition owners, as a
// watcher of the bucket keeps them: reading it costs no request, which
// matters on a loaded cluster, where each request can take a second.
//
// The watcher hears of writes and deletes, not of the bucket's expiries:
// a key its holder stopped renewing stays in the view at its last
// revision, which is how the instances tell it is gone (its revision
// stands still for a TTL). Entries not written for watchForgetAfter are
// dropped from the view.
func (c *Cluster) View(ctx context.Context) (View, error) {
	ready, err := c.startWatch()
	if err != nil {
		return View{}, err
	}
	select {
	case <-ready:
	case <-ctx.Done():
		return View{}, fmt.Errorf("%w: read leases: %v", ErrUnavailable, ctx.Err())
	}
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	v := View{Owners: map[int]string{}, Revisions: map[string]uint64{}, Since: map[string]time.Time{}}
	for key, e := range c.entries {
		if time.Since(e.at) > watchForgetAfter {
			delete(c.entries, key)
			continue
		}
		v.Revisions[key] = e.rev
		v.Since[key] = e.at
		if instance, ok := strings.CutPrefix(key, memberPrefix); ok {
			v.Members = insertSorted(v.Members, instance)
		} else if p, ok := strings.CutPrefix(key, "p."); ok {
			if n, err := strconv.Atoi(p); err == nil {
				v.Owners[n] = e.value
			}
		}
	}
	return v, nil
}

// watchForgetAfter is when a key nobody wrote leaves the view: long past
// any TTL, so only the keys of instances long gone are forgotten.
const watchForgetAfter = 10 * time.Minute

// startWatch starts the bucket's watcher unless it runs, and returns the
// channel closed once it has sent every current value.
func (c *Cluster) startWatch() (<-chan struct{}, error) {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	if c.watcher != nil {
		return c.ready, nil
	}
	w, err := c.kv.WatchAll(context.Background())
	if err != nil {
		return nil, fmt.Errorf("%w: watch leases: %v", ErrUnavailable, err)
	}
	c.watcher, c.ready, c.entries = w, make(chan struct{}), map[string]watchedEntry{}
	go c.follow(w, c.ready)
	return c.ready, nil
}

// follow applies the watcher's updates to the view until it ends; the
// next View starts another.
func (c *Cluster) follow(w jetstream.KeyWatcher, ready chan struct{}) {
	initial := true
	for e := range w.Updates() {
		c.watchMu.Lock()
		switch {
		case e == nil:
			if initial {
				close(ready)
				initial = false
			}
		case e.Operation() == jetstream.KeyValuePut:
			c.entries[e.Key()] = watchedEntry{value: string(e.Value()), rev: e.Revision(), at: time.Now()}
		default: // deleted or purged
			delete(c.entries, e.Key())
		}
		c.watchMu.Unlock()
	}
	c.watchMu.Lock()
	if c.watcher == w {
		c.watcher = nil
	}
	c.watchMu.Unlock()
}

// Close stops the watcher.
func (c *Cluster) Close() {
	c.watchMu.Lock()
	w := c.watcher
	c.watchMu.Unlock()
	if w != nil {
		w.Stop()
	}
}

func insertSorted(list []string, s string) []string {
	i := len(list)
	for i > 0 && list[i-1] > s {
		i--
	}
	list = append(list, "")
	copy(list[i+1:], list[i:])
	list[i] = s
	return list
}

// MaxForwardBytes is the largest forwarded write or answer the NATS
// server takes (its max_payload, less room for headers).
func (c *Cluster) MaxForwardBytes() int {
	return int(max(c.nc.MaxPayload()-publishOverheadBytes, 0))
}

// ForwardSubject is the subject of a partition's forwarded writes.
func ForwardSubject(partition int) string {
	return ForwardSubjectPrefix + strconv.Itoa(partition)
}

// Forward sends a write to the owner of partition and returns its answer:
// ErrNoOwner when no instance serves the partition now, ErrUnavailable
// when the answer did not come before ctx ended (the write may have
// landed: retry with the same ids).
func (c *Cluster) Forward(ctx context.Context, partition int, data []byte) ([]byte, error) {
	msg, err := c.nc.RequestWithContext(ctx, ForwardSubject(partition), data)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil, ErrNoOwner
	case err != nil:
		return nil, fmt.Errorf("%w: forward to partition %d: %v", ErrUnavailable, partition, err)
	case len(msg.Data) == 0:
		return nil, ErrNoOwner // the owner was stopping (Serve)
	}
	return msg.Data, nil
}

// Serve takes partition's forwarded writes: handle runs for each, at most
// concurrent at once, and its answer goes back to the sender. stop ends
// the subscription; handlers already running finish and answer.
func (c *Cluster) Serve(partition int, concurrent int, handle func(data []byte) []byte) (stop func(), err error) {
	slots := make(chan struct{}, max(concurrent, 1))
	var mu sync.Mutex // guards stopped against running.Add after Wait
	stopped := false
	var running sync.WaitGroup
	sub, err := c.nc.Subscribe(ForwardSubject(partition), func(m *nats.Msg) {
		// Blocking here when every slot is taken queues the next messages
		// in the subscription, up to its pending limits.
		slots <- struct{}{}
		mu.Lock()
		if stopped {
			mu.Unlock()
			<-slots
			// An empty answer says "not here": the sender looks for the
			// next owner at once instead of waiting out its deadline.
			if m.Reply != "" {
				m.Respond(nil)
			}
			return
		}
		running.Add(1)
		mu.Unlock()
		go func() {
			defer running.Done()
			defer func() { <-slots }()
			if m.Reply != "" {
				m.Respond(handle(m.Data))
			}
		}()
	})
	if err != nil {
		return nil, fmt.Errorf("%w: serve partition %d: %v", ErrUnavailable, partition, err)
	}
	sub.SetPendingLimits(forwardPendingMsgsMax, forwardPendingBytesMax)
	// The subscription is known to the server before the lease holder
	// says it serves: forwarded writes must not find no responder.
	if err := c.nc.Flush(); err != nil {
		sub.Unsubscribe()
		return nil, fmt.Errorf("%w: serve partition %d: %v", ErrUnavailable, partition, err)
	}
	return func() {
		sub.Unsubscribe()
		mu.Lock()
		stopped = true
		mu.Unlock()
		running.Wait()
	}, nil
}
