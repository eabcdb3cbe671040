package commands

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/creditd/creditd/eventstore"
)

// Coordinator is what partition ownership needs of the cluster: leases
// fenced by their revision, the live instances, and request/reply to the
// owners. *eventstore.Cluster satisfies it.
type Coordinator interface {
	TTL() time.Duration
	Acquire(ctx context.Context, partition int, instance string) (uint64, error)
	Renew(ctx context.Context, partition int, instance string, rev uint64) (uint64, error)
	Release(ctx context.Context, partition int, rev uint64) error
	// Holder reads who holds a partition's lease and at which revision
	// ("" when nobody does).
	Holder(ctx context.Context, partition int) (instance string, rev uint64, err error)
	Announce(ctx context.Context, instance string) error
	Leave(ctx context.Context, instance string) error
	View(ctx context.Context) (eventstore.View, error)
	Forward(ctx context.Context, partition int, data []byte) ([]byte, error)
	// MaxForwardBytes is the largest forwarded write or answer NATS takes.
	MaxForwardBytes() int
	Serve(partition int, concurrent int, handle func(data []byte) []byte) (stop func(), err error)
	// Close ends what the coordinator keeps running (its view's watcher).
	Close()
}

// ClusterOptions makes the engine one of several instances on one stream:
// each partition is written by the one instance holding its lease, and
// writes for the others' partitions are forwarded to them.
type ClusterOptions struct {
	Coordinator Coordinator
	// Instance names this instance among the others; unique per process
	// start (a restarted instance must not take its old leases for its own).
	Instance string
	// Observer, when set, hears of ownership changes, renewals and
	// forwarded writes (metrics).
	Observer ClusterObserver
}

// ClusterObserver hears what partition ownership does.
type ClusterObserver interface {
	Owned(partitions []int)
	LeaseRenewed()
	LeaseLost(partition int)
	Forwarded(elapsed time.Duration, err error)
}

type noClusterObserver struct{}

func (noClusterObserver) Owned([]int)                    {}
func (noClusterObserver) LeaseRenewed()                  {}
func (noClusterObserver) LeaseLost(int)                  {}
func (noClusterObserver) Forwarded(time.Duration, error) {}

// Ownership bounds.
const (
	// forwardConcurrency bounds the forwarded writes one partition's owner
	// runs at once: as many as its writer's inbox holds, so forwarded
	// writes meet the same back-pressure as local ones.
	forwardConcurrency = inboxDepth
	// handoverWait bounds how long a handover waits for the partition's
	// commit in flight before giving the lease up anyway (the writer has
	// stopped deciding by then: the lease was revoked first).
	handoverWait = 15 * time.Second
)

// Ownership is this instance's view of the cluster, for /readyz.
type Ownership struct {
	Instance string `json:"instance"`
	// Owned are the partitions this instance writes now.
	Owned []int `json:"owned"`
	// Members are the live instances; Owners each partition's lease
	// holder, as last read.
	Members []string       `json:"members"`
	Owners  map[int]string `json:"owners"`
	// Partitions is the stream's partition count.
	Partitions int `json:"partitions"`
}

// cluster holds this instance's leases: one goroutine (run) announces the
// instance, renews what it holds, and every tick moves partitions towards
// the balanced assignment of the live instances (assign).
type cluster struct {
	e      *Engine
	co     Coordinator
	id     string
	obs    ClusterObserver
	log    *slog.Logger
	ttl    time.Duration
	tick   time.Duration
	margin time.Duration
	leases []lease

	// held and following are touched by run (and close, after run
	// ended) only. following are the reads follow asked of the writers of
	// partitions others own.
	held      map[int]*holding
	following []*request
	// seen is since when each key of the bucket stood at its revision.
	seen map[string]seenRevision

	mu   sync.Mutex // guards view
	view eventstore.View

	stop chan struct{}
	done chan struct{}
}

type holding struct {
	rev       uint64
	stopServe func()
}

func newCluster(e *Engine, opts ClusterOptions, partitions int, log *slog.Logger) *cluster {
	ttl := opts.Coordinator.TTL()
	c := &cluster{
		e: e, co: opts.Coordinator, id: opts.Instance, obs: opts.Observer, log: log.With("instance", opts.Instance),
		ttl: ttl,
		// A tick of a fifth of the TTL renews each lease four times before
		// it could expire, and sees a dead instance's partitions free
		// within a tick of their expiry.
		tick: ttl / 5,
		// The lease is given up on this instance's clock a fifth of the TTL
		// before the cluster can give it away: room for the renewal's
		// round trip and for clocks that run at slightly different rates.
		margin:    ttl / 5,
		leases:    make([]lease, partitions),
		held:      map[int]*holding{},
		following: make([]*request, partitions),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	if c.obs == nil {
		c.obs = noClusterObserver{}
	}
	return c
}

func (c *cluster) owns(partition int) bool { return c.leases[partition].held() }

func (c *cluster) start() { go c.run() }

func (c *cluster) run() {
	defer close(c.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-timer.C:
		}
		// Ticks are a tick apart from start to start: a step slowed by a
		// loaded cluster does not push the next one a tick further. A key
		// that will have stood still for a TTL before the next tick gets a
		// step of its own just then: a dead owner's partitions are taken
		// over a TTL after its last renewal was heard, not up to a tick
		// later (7.09 s against a 7 s bound for a 5 s TTL, in one run of
		// TestOwnerCrashDuringWrites on a loaded machine).
		started := time.Now()
		c.step()
		next := max(c.tick-time.Since(started), c.tick/10)
		if stale, ok := c.nextStale(); ok && stale < next {
			next = stale
		}
		timer.Reset(next)
	}
}

// step is one tick: announce, renew, read the cluster, rebalance.
func (c *cluster) step() {
	// Each call gets half a TTL: a loaded cluster answers slowly, and a
	// renewal given up too early costs a lease that was in fact renewed.
	ctx, cancel := context.WithTimeout(context.Background(), c.ttl/2)
	defer cancel()
	if err := c.co.Announce(ctx, c.id); err != nil {
		c.log.Warn("announcing this instance", "err", err)
	}
	c.renew()
	view, err := c.co.View(ctx)
	if err != nil {
		c.log.Warn("reading the partition leases", "err", err)
		return
	}
	c.mu.Lock()
	c.view = view
	c.mu.Unlock()
	if !slices.Contains(view.Members, c.id) {
		// Not announced (yet): a share computed without this instance
		// would hand everything over.
		return
	}
	c.age(view)
	var members []string
	for _, m := range view.Members {
		if m == c.id || !c.stale(eventstore.MemberKey(m)) {
			members = append(members, m)
		}
	}
	want := assign(members, len(c.leases), view.Owners)
	for _, p := range c.owned() {
		if want[p] != c.id {
			c.handover(p)
		}
	}
	var free []int
	for p := range c.leases {
		switch {
		case c.held[p] != nil:
		case view.Owners[p] == "" && want[p] == c.id:
			free = append(free, p)
		case view.Owners[p] != c.id && want[p] == c.id && c.stale(eventstore.LeaseKey(p)):
			// Not renewed for a TTL: its owner is gone, and stopped
			// writing a fifth of a TTL ago by its own clock. Taken at the
			// revision seen, so a renewal landing meanwhile wins.
			c.takeOver(ctx, p, view.Revisions[eventstore.LeaseKey(p)], view.Owners[p])
		case view.Owners[p] == c.id:
			// This instance's name on a lease it does not hold: an
			// acquisition whose answer was lost landed after all. Take it
			// up if it is this instance's share, else give it back.
			c.reclaim(ctx, p, want[p] == c.id)
		}
	}
	c.acquire(ctx, free)
	c.obs.Owned(c.owned())
	c.follow()
}

// seenRevision is when this instance first saw a key at a revision.
type seenRevision struct {
	rev uint64
	at  time.Time
}

// age notes, for every key of the view, since when this instance has seen
// it at its current revision (on its own monotonic clock).
func (c *cluster) age(view eventstore.View) {
	now := time.Now()
	seen := make(map[string]seenRevision, len(view.Revisions))
	for key, rev := range view.Revisions {
		switch prev, ok := c.seen[key]; {
		case ok && prev.rev == rev:
			seen[key] = prev
		case !view.Since[key].IsZero():
			// When the view first heard of it: pushed as it was written.
			seen[key] = seenRevision{rev: rev, at: view.Since[key]}
		default:
			seen[key] = seenRevision{rev: rev, at: now}
		}
	}
	c.seen = seen
}

// stale reports whether a key has stood at one revision for a TTL, as
// this instance saw it: its holder renewed nothing for a TTL, so it is
// gone, and a lease it held reached its holder's deadline a fifth of a
// TTL before. The bucket expires such keys too, but only at its next
// check, which can come a TTL later; this does not wait for it, nor
// trust any other clock than this instance's.
func (c *cluster) stale(key string) bool {
	s, ok := c.seen[key]
	return ok && time.Since(s.at) >= c.ttl
}

// nextStale is how long until the first key that is not yet stale will
// be (stale), false when none will. Keys already stale are left out: one
// this instance does not take (another's share, a failed takeover) must
// not make it step again at once, over and over.
func (c *cluster) nextStale() (time.Duration, bool) {
	var first time.Duration
	found := false
	for _, s := range c.seen {
		if d := c.ttl - time.Since(s.at); d > 0 && (!found || d < first) {
			first, found = d, true
		}
	}
	// A millisecond past the TTL, so that stale holds when the step runs.
	return first + time.Millisecond, found
}

// takeOver takes a lease its holder stopped renewing, at the revision
// seen: a renewal landing meanwhile makes it fail.
func (c *cluster) takeOver(ctx context.Context, p int, rev uint64, from string) {
	sent := time.Now()
	next, err := c.co.Renew(ctx, p, c.id, rev)
	if errors.Is(err, eventstore.ErrLeaseLost) {
		// Renewed after all, taken by another, or expired by the bucket
		// meanwhile (the view does not hear of expiries): a create takes
		// it in the last case only.
		sent = time.Now()
		next, err = c.co.Acquire(ctx, p, c.id)
	}
	if err != nil {
		if !errors.Is(err, eventstore.ErrLeaseHeld) {
			c.log.Warn("taking over a partition lease", "partition", p, "from", from, "err", err)
		}
		return
	}
	c.log.Info("partition lease taken over: not renewed for a TTL", "partition", p, "from", from)
	c.take(ctx, p, next, sent)
}

// renewal is the outcome of one lease's renewal.
type renewal struct {
	p    int
	sent time.Time
	rev  uint64
	err  error
}

// renew extends every lease held, all at once: one slow renewal must not
// make the others late. A lease that moved on is looked at again (a
// renewal whose answer was lost may have landed, moving the revision);
// one that cannot be renewed lapses at its deadline.
func (c *cluster) renew() {
	owned := c.owned()
	results := make([]renewal, len(owned))
	var wg sync.WaitGroup
	for i, p := range owned {
		rev := c.held[p].rev
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), c.ttl/2)
			defer cancel()
			r := renewal{p: p, sent: time.Now()}
			r.rev, r.err = c.co.Renew(ctx, p, c.id, rev)
			if errors.Is(r.err, eventstore.ErrLeaseLost) {
				// Still this instance's? Then an earlier renewal landed
				// after its answer was lost: renew at the revision found.
				if holder, current, err := c.co.Holder(ctx, p); err == nil && holder == c.id {
					r.sent = time.Now()
					r.rev, r.err = c.co.Renew(ctx, p, c.id, current)
				}
			}
			results[i] = r
		})
	}
	wg.Wait()
	for _, r := range results {
		h := c.held[r.p]
		switch {
		case r.err == nil:
			h.rev = r.rev
			c.leases[r.p].extend(r.sent.Add(c.ttl - c.margin))
			c.obs.LeaseRenewed()
		case errors.Is(r.err, eventstore.ErrLeaseLost):
			c.log.Warn("partition lease lost", "partition", r.p)
			c.drop(r.p)
		case !c.leases[r.p].held():
			c.log.Warn("partition lease lapsed: renewals failed", "partition", r.p, "err", r.err)
			c.drop(r.p)
			// Free it for the others if it is still ours in the cluster.
			ctx, cancel := context.WithTimeout(context.Background(), c.ttl/2)
			c.co.Release(ctx, r.p, h.rev)
			cancel()
		default:
			c.log.Warn("renewing a partition lease", "partition", r.p, "err", r.err)
		}
	}
}

// reclaim deals with a lease in this instance's name that it does not
// hold: renewed and taken up when keep, released otherwise.
func (c *cluster) reclaim(ctx context.Context, p int, keep bool) {
	holder, rev, err := c.co.Holder(ctx, p)
	if err == nil && holder == "" && keep {
		// Expired by the bucket meanwhile (the view does not hear of
		// expiries): free to take.
		c.acquire(ctx, []int{p})
		return
	}
	if err != nil || holder != c.id {
		return
	}
	if !keep {
		c.co.Release(ctx, p, rev)
		return
	}
	sent := time.Now()
	rev, err = c.co.Renew(ctx, p, c.id, rev)
	if err != nil {
		return
	}
	c.take(ctx, p, rev, sent)
}

// follow has the writers of the partitions other instances own read what
// those owners appended since the last tick, so the write model stays
// current there too: a takeover then reads a tick's worth of commits, not
// everything since the last time this instance owned the partition. A
// writer still busy with the last tick's read is skipped.
func (c *cluster) follow() {
	for i, p := range c.e.partitions {
		if c.held[i] != nil {
			continue
		}
		if r := c.following[i]; r != nil {
			select {
			case <-r.done:
			default:
				continue
			}
		}
		r := &request{done: make(chan error, 1), inspect: func(*partition) {}}
		c.following[i] = nil
		c.e.mu.RLock()
		if !c.e.closed {
			select {
			case p.inbox <- r:
				c.following[i] = r
			default: // a full inbox: next tick
			}
		}
		c.e.mu.RUnlock()
	}
}

func mapKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

func (c *cluster) owned() []int {
	owned := mapKeys(c.held)
	slices.Sort(owned)
	return owned
}

// drop stops writing and serving a partition whose lease is gone.
func (c *cluster) drop(p int) {
	c.leases[p].revoke()
	c.held[p].stopServe()
	delete(c.held, p)
	c.obs.LeaseLost(p)
}

// acquire takes free partitions: the leases, all at once (a takeover of
// a dead instance's share waits for the slowest, not for their sum), then
// the forwarded writes. The writer reads the subject before its first
// decision (lease epochs).
func (c *cluster) acquire(ctx context.Context, free []int) {
	type acquired struct {
		rev  uint64
		sent time.Time
		err  error
	}
	results := make([]acquired, len(free))
	var wg sync.WaitGroup
	for i, p := range free {
		wg.Go(func() {
			results[i].sent = time.Now()
			results[i].rev, results[i].err = c.co.Acquire(ctx, p, c.id)
		})
	}
	wg.Wait()
	for i, p := range free {
		r := results[i]
		if r.err != nil {
			if !errors.Is(r.err, eventstore.ErrLeaseHeld) {
				c.log.Warn("acquiring a partition lease", "partition", p, "err", r.err)
			}
			continue
		}
		c.take(ctx, p, r.rev, r.sent)
	}
}

// take starts owning a partition whose lease this instance holds at rev,
// renewed or acquired at sent: the writer may write, and the forwarded
// writes come here.
func (c *cluster) take(ctx context.Context, p int, rev uint64, sent time.Time) {
	c.leases[p].grant(sent.Add(c.ttl - c.margin))
	stopServe, err := c.co.Serve(p, forwardConcurrency, c.handle)
	if err != nil {
		c.log.Warn("serving a partition's forwarded writes", "partition", p, "err", err)
		c.leases[p].revoke()
		c.co.Release(ctx, p, rev)
		return
	}
	c.held[p] = &holding{rev: rev, stopServe: stopServe}
	c.log.Info("partition acquired", "partition", p)
}

// handover gives a partition up in order: its writer stops deciding, the
// commit in flight lands, the forwarded writes stop coming, and the lease
// is released, so the next owner starts at once from everything this
// one appended.
func (c *cluster) handover(p int) {
	h := c.held[p]
	c.leases[p].revoke()
	ctx, cancel := context.WithTimeout(context.Background(), handoverWait)
	defer cancel()
	// The writer is sequential: once this request is answered, every
	// batch before it has landed or failed.
	barrier := &request{done: make(chan error, 1), inspect: func(*partition) {}}
	if err := c.e.submitTo(ctx, c.e.partitions[p], barrier); err != nil && !errors.Is(err, ErrClosed) {
		c.log.Warn("waiting for a partition's last commit before its handover", "partition", p, "err", err)
	}
	h.stopServe()
	if err := c.co.Release(ctx, p, h.rev); err != nil {
		c.log.Warn("releasing a partition lease", "partition", p, "err", err)
	}
	delete(c.held, p)
	c.log.Info("partition handed over", "partition", p)
}

// close hands every partition over and withdraws the instance, for a
// clean stop: the others take over within a tick, not a TTL.
func (c *cluster) close() {
	close(c.stop)
	<-c.done
	for _, p := range c.owned() {
		c.handover(p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.tick*2)
	defer cancel()
	if err := c.co.Leave(ctx, c.id); err != nil {
		c.log.Warn("leaving the cluster", "err", err)
	}
	c.co.Close()
	c.obs.Owned(nil)
}

// ownership reports the instance's view.
func (c *cluster) ownership() Ownership {
	c.mu.Lock()
	view := c.view
	c.mu.Unlock()
	o := Ownership{Instance: c.id, Members: view.Members, Owners: view.Owners, Partitions: len(c.leases), Owned: []int{}}
	for p := range c.leases {
		if c.owns(p) {
			o.Owned = append(o.Owned, p)
		}
	}
	return o
}

// assign spreads partitions over the live members: each gets
// partitions/len(members), and the first partitions%len(members) of them
// in sorted order one more. A member keeps the partitions it owns now, up
// to its share (owners; those it ranks highest first), and the rest go,
// within the shares, to the member that ranks each highest (rendezvous
// hashing): when an instance dies only its partitions move, and when one
// joins only its share does. Every instance computes the same assignment
// from the same members and owners.
func assign(members []string, partitions int, owners map[int]string) map[int]string {
	want := make(map[int]string, partitions)
	if len(members) == 0 {
		return want
	}
	capacity := make(map[string]int, len(members))
	for i, m := range members {
		capacity[m] = partitions / len(members)
		if i < partitions%len(members) {
			capacity[m]++
		}
	}
	type pair struct {
		score     uint64
		member    string
		partition int
	}
	byScore := func(pairs []pair) {
		sort.Slice(pairs, func(i, j int) bool {
			if pairs[i].score != pairs[j].score {
				return pairs[i].score > pairs[j].score
			}
			if pairs[i].member != pairs[j].member {
				return pairs[i].member < pairs[j].member
			}
			return pairs[i].partition < pairs[j].partition
		})
	}
	var kept []pair
	for p := range partitions {
		if owner, ok := owners[p]; ok {
			if _, live := capacity[owner]; live {
				kept = append(kept, pair{score: rendezvous(owner, p), member: owner, partition: p})
			}
		}
	}
	byScore(kept)
	for _, pr := range kept {
		if capacity[pr.member] > 0 {
			want[pr.partition] = pr.member
			capacity[pr.member]--
		}
	}
	pairs := make([]pair, 0, partitions*len(members))
	for p := range partitions {
		if _, taken := want[p]; taken {
			continue
		}
		for _, m := range members {
			pairs = append(pairs, pair{score: rendezvous(m, p), member: m, partition: p})
		}
	}
	byScore(pairs)
	for _, pr := range pairs {
		if _, taken := want[pr.partition]; taken || capacity[pr.member] == 0 {
			continue
		}
		want[pr.partition] = pr.member
		capacity[pr.member]--
	}
	return want
}

func rendezvous(member string, partition int) uint64 {
	h := fnv.New64a()
	h.Write([]byte(member))
	h.Write([]byte{byte(partition >> 24), byte(partition >> 16), byte(partition >> 8), byte(partition)})
	// FNV of near-equal inputs differs mostly in a few bits: a finalizer
	// (splitmix64's) spreads them, so rankings are fair across members.
	x := h.Sum64()
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// LeadsCheckpoints reports whether this instance appends the periodic
// checkpoints: alone it does; on a cluster, the owner of partition 0 does,
// so the cluster appends one per interval rather than one per instance.
func (e *Engine) LeadsCheckpoints() bool {
	return e.cluster == nil || e.cluster.owns(0)
}

// OwnsTenant reports whether this instance owns the tenant's partition
// now: alone it owns them all. Notices are delivered by their tenant's
// owner.
func (e *Engine) OwnsTenant(tenantID int64) bool {
	return e.cluster == nil || e.cluster.owns(e.store.PartitionOf(tenantID))
}
