package commands

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/idindex"
)

// Snapshots of the write state (docs/architecture.md, "Snapshots"). Each
// partition writer writes one when its id window is full (windowBudget)
// or snapshotIntervalDefault after the last, and on a clean shutdown; a
// start loads the newest valid one and replays only the log after it.
const (
	// segmentBytesDefault caps the id index segments merges make. A
	// segment is uploaded to the object store, whose publisher keeps up to
	// 4,000 chunks (128 KiB each) in flight, while nats-server refuses a
	// stream's messages past 128 MiB queued (429 too many requests): on a
	// 100M-event log under load, uploads of merged segments of hundreds of
	// MiB failed, snapshot after snapshot. Uploads run one at a time
	// (eventstore), so a 64 MiB segment stays under that limit. The cost
	// is more segments on a very long log (about 1.7M ids each: 15 per
	// partition at 100M events), each a Bloom probe for a new id.
	segmentBytesDefault = 64 << 20
	// snapshotIntervalDefault bounds the log a start replays after a crash
	// on a quiet partition.
	snapshotIntervalDefault = 5 * time.Minute
	// snapshotsKept are kept per partition, so a damaged newest snapshot
	// falls back to an older one rather than to the whole log.
	snapshotsKept = 3
	// snapshotTimeout bounds writing one snapshot.
	snapshotTimeout = 5 * time.Minute
	// snapshotListTimeout bounds one listing of the snapshots;
	// snapshotListAttempts are made before a start fails with the error.
	snapshotListTimeout  = 15 * time.Second
	snapshotListAttempts = 4
	// snapshotPruneTimeout bounds the pruning after a snapshot.
	snapshotPruneTimeout = 30 * time.Second
	// snapshotCloseTimeout bounds the last snapshot on close: a shutdown
	// with the store gone must not wait; the next start replays the tail.
	snapshotCloseTimeout = 15 * time.Second
	// snapshotVersion changes when the encoding of domain.Line changes: a
	// snapshot of another version is skipped, and the log replayed.
	snapshotVersion = 1
)

// SnapshotStore keeps snapshots and id index segments where every instance
// finds them: a JetStream object store beside the log.
// *eventstore.Store satisfies it.
type SnapshotStore interface {
	PutObjectFile(ctx context.Context, name, path string) error
	ObjectReader(ctx context.Context, name string) (io.ReadCloser, error)
	ObjectToFile(ctx context.Context, name, path string) error
	Objects(ctx context.Context, prefix string) ([]string, error)
	DeleteObject(ctx context.Context, name string) error
	// Connected reports whether the store can be reached now.
	Connected() bool
	// Load reads the commit a snapshot covers, to check the snapshot
	// links to this log.
	Load(ctx context.Context, seq uint64) (eventstore.StoredMsg, error)
}

// SnapshotWindowDefault bounds the ids, lines of ids and depleted grants
// the writers keep in memory between snapshots, all partitions together
// (windowBudget): about 65 bytes each, so some 64 MiB, and at 16
// partitions a snapshot every 65,536 ids of a partition.
const SnapshotWindowDefault = 1 << 20

// SnapshotOptions configures snapshots; the zero value is the defaults.
type SnapshotOptions struct {
	// Dir holds the local copies of the id index segments (a cache: they
	// are fetched from the store when missing). Empty: a temporary
	// directory removed on Close.
	Dir string
	// Window is the number of id index entries the partition writers keep
	// in memory together between snapshots (windowBudget).
	Window int
	// Interval is the longest time between snapshots of a partition that
	// changed.
	Interval time.Duration
	// SegmentBytesMax is the size past which id index segments are no
	// longer merged (0: segmentBytesDefault).
	SegmentBytesMax int64
}

// segmentRef names one segment of the id index, newest first in a
// snapshot's list.
type segmentRef struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Count  int64  `json:"count"`
	Bytes  int64  `json:"bytes"`
}

// snapshotHeader is a snapshot's first line. The object then holds one
// line per credit line, and a last line "sha256:<hex>" of everything
// before it: a snapshot damaged in any byte is refused, and the start falls
// back to an older one or to the log, never to a wrong state.
type snapshotHeader struct {
	Version int    `json:"v"`
	Subject string `json:"subject"`
	// Position is the subject's last sequence the state covers; Hash, the
	// hash of the last commit applied (the link the next commit names).
	Position uint64       `json:"position"`
	Hash     string       `json:"hash"`
	At       time.Time    `json:"at"`
	Segments []segmentRef `json:"segments"`
	Lines    int          `json:"lines"`
}

type snapshotLine struct {
	Tenant int64        `json:"tenant"`
	Line   *domain.Line `json:"line"`
}

// segmentList is the id index: segments newest first; a key's newest
// entry wins.
type segmentList struct {
	segs []*idindex.Segment
	refs []segmentRef
}

// Get returns key's newest value.
func (l *segmentList) Get(key idindex.Key) ([]byte, bool, error) {
	for _, s := range l.segs {
		v, ok, err := s.Get(key)
		if err != nil || ok {
			return v, ok, err
		}
	}
	return nil, false, nil
}

// memoryBytes is what the index keeps in RAM (filters, sparse indexes).
func (l *segmentList) memoryBytes() int64 {
	var n int64
	for _, s := range l.segs {
		n += s.MemoryBytes()
	}
	return n
}

func (l *segmentList) close() {
	for _, s := range l.segs {
		s.Close()
	}
}

// snapshotter writes and restores one partition's snapshots. The writer
// goroutine owns it; a snapshot job runs beside it on what was frozen.
type snapshotter struct {
	store     SnapshotStore
	partition int
	dir       string
	log       *slog.Logger
	clock     func() time.Time
	budget    *windowBudget
	interval  time.Duration
	// segmentMax: segments are merged only while the result stays under it.
	segmentMax int64

	// counted is what this writer last added to budget.held.
	counted int
	// retryAt is the window size from which a snapshot that failed is
	// tried again for a full window: another share of ids later (or
	// after the interval), not after every batch, each attempt sorting
	// and writing the whole window again.
	retryAt int
	// position is the last snapshot's; last, when it was written.
	position uint64
	last     time.Time
	running  bool
	finished chan snapshotResult
	// cancel ends the job in flight (close, when it takes too long).
	cancel context.CancelFunc
	// owned, on a cluster, reports whether this instance owns the
	// partition now (prune); mine are the positions of the snapshots this
	// instance stored, the last snapshotsKept.
	owned func() bool
	mine  []uint64
}

// objectTimes is the store's listing with times, for prune on a cluster.
type objectTimes interface {
	ObjectTimes(ctx context.Context, prefix string) (map[string]time.Time, error)
}

func newSnapshotter(store SnapshotStore, partition int, dir string, opts SnapshotOptions, budget *windowBudget, clock func() time.Time, log *slog.Logger) *snapshotter {
	return &snapshotter{
		store: store, partition: partition, dir: dir, log: log, clock: clock,
		budget: budget, interval: cmpOr(opts.Interval, snapshotIntervalDefault),
		segmentMax: cmpOr(opts.SegmentBytesMax, segmentBytesDefault),
		finished:   make(chan snapshotResult, 1),
	}
}

func cmpOr[T int | int64 | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

func (sn *snapshotter) snapshotPrefix() string { return "snap/p" + strconv.Itoa(sn.partition) + "/" }
func (sn *snapshotter) segmentPrefix() string  { return "ids/p" + strconv.Itoa(sn.partition) + "/" }

func (sn *snapshotter) snapshotName(position uint64) string {
	return fmt.Sprintf("%s%020d", sn.snapshotPrefix(), position)
}

// snapshotJob is what the writer froze for a snapshot: the committed lines
// (pointers: committed lines are never changed in place once frozen), the
// window that becomes a segment, and the index it joins.
type snapshotJob struct {
	subject  string
	position uint64
	hash     string
	lines    map[lineRef]*domain.Line
	win      *window
	index    *segmentList
}

type snapshotResult struct {
	job   *snapshotJob
	index *segmentList
	err   error
}

// freeze hands the writer's state to a snapshot job and starts a new
// window. It copies the map of lines, not the lines.
func (sn *snapshotter) freeze(p *partition) *snapshotJob {
	job := &snapshotJob{subject: p.chain.subject, position: p.chain.lastSeq, hash: p.chain.lastHash,
		lines: p.freezeLines(), win: p.win, index: p.segments}
	p.flushing, p.win = p.win, newWindow()
	return job
}

// account brings the budget up to date with what this writer holds: its
// window and the one a snapshot is writing.
func (sn *snapshotter) account(p *partition) {
	held := p.win.size()
	if p.flushing != nil {
		held += p.flushing.size()
	}
	sn.budget.held.Add(int64(held - sn.counted))
	sn.counted = held
}

// maybeStart starts a snapshot job when the window is full, or when the
// partition changed and the interval passed.
func (sn *snapshotter) maybeStart(p *partition) {
	sn.account(p)
	if sn.running {
		return
	}
	changed := p.chain.lastSeq != sn.position || p.win.size() > 0
	full := sn.budget.full(p.win.size()) && p.win.size() >= sn.retryAt
	if !full && (!changed || sn.clock().Sub(sn.last) < sn.interval) {
		return
	}
	job := sn.freeze(p)
	sn.running = true
	ctx, cancel := context.WithTimeout(context.Background(), snapshotTimeout)
	sn.cancel = cancel
	go func() {
		defer cancel()
		index, err := sn.write(ctx, job)
		sn.finished <- snapshotResult{job: job, index: index, err: err}
	}()
}

// install makes a finished job's index the writer's, or, when the job
// failed, takes its window back so no id is forgotten.
func (sn *snapshotter) install(p *partition, res snapshotResult) {
	sn.running = false
	defer sn.account(p)
	if res.err != nil {
		sn.log.Warn("snapshot failed; its ids stay in memory until the next", "position", res.job.position, "err", res.err)
		for k, v := range p.flushing.seen {
			if _, ok := p.win.seen[k]; !ok {
				p.win.seen[k] = v
			}
		}
		for k, v := range p.flushing.lineOf {
			if _, ok := p.win.lineOf[k]; !ok {
				p.win.lineOf[k] = v
			}
		}
		for k, v := range p.flushing.depleted {
			if _, ok := p.win.depleted[k]; !ok {
				p.win.depleted[k] = v
			}
		}
		p.flushing = nil
		// Retry after an interval, or another share of ids.
		sn.last, sn.retryAt = sn.clock(), p.win.size()+sn.budget.share()
		// The job's new segments are named by no snapshot: their files
		// go now, not at the next snapshot that succeeds, or failures in
		// a row fill the disk (13 GB of them on a 100M-event log).
		current := p.segments
		if current == nil {
			current = &segmentList{}
		}
		sn.removeLocal(current)
		return
	}
	old := p.segments
	p.segments, p.flushing = res.index, nil
	sn.position, sn.last, sn.retryAt = res.job.position, sn.clock(), 0
	if old != nil {
		for _, s := range old.segs {
			if !slices.Contains(res.index.segs, s) {
				s.Close()
			}
		}
	}
	sn.removeLocal(res.index)
}

// snapshotNow writes a snapshot and waits for it: while loading (the
// writer is not serving yet) and on close.
func (sn *snapshotter) snapshotNow(ctx context.Context, p *partition) error {
	// Bounded like a snapshot in the background. A deadline also keeps the
	// object store from timing out each chunk's acknowledgement on its own
	// (after 5 s, which a loaded disk exceeds while a start reads the log).
	ctx, cancel := context.WithTimeout(ctx, snapshotTimeout)
	defer cancel()
	job := sn.freeze(p)
	sn.running = true
	index, err := sn.write(ctx, job)
	sn.install(p, snapshotResult{job: job, index: index, err: err})
	return nil // a snapshot that failed costs memory, never correctness
}

// close finishes a job in flight and writes a last snapshot if anything
// changed since, so the next start replays nothing.
func (sn *snapshotter) close(p *partition) {
	if sn.running {
		select {
		case res := <-sn.finished:
			sn.install(p, res)
		case <-time.After(snapshotCloseTimeout):
			sn.cancel()
			sn.install(p, <-sn.finished)
		}
	}
	if p.chain.lastSeq == sn.position && p.win.size() == 0 {
		return
	}
	if !sn.store.Connected() {
		sn.log.Warn("no snapshot on close: the store is not connected")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), snapshotCloseTimeout)
	defer cancel()
	sn.snapshotNow(ctx, p)
}

// write stores the job's window as a segment, merges segments of similar
// size (so there are O(log n) of them), writes the snapshot object and
// drops the snapshots and segments no longer kept. It returns the index the
// snapshot names.
func (sn *snapshotter) write(ctx context.Context, job *snapshotJob) (*segmentList, error) {
	index := &segmentList{}
	if job.index != nil {
		index.segs, index.refs = slices.Clone(job.index.segs), slices.Clone(job.index.refs)
	}
	entries, err := job.win.entries()
	if err != nil {
		return nil, err
	}
	var created []*idindex.Segment // closed if the job fails
	fail := func(err error) (*segmentList, error) {
		for _, s := range created {
			s.Close()
		}
		return nil, err
	}
	if job.win.size() > 0 {
		seg, ref, err := sn.newSegment(ctx, func(path string) (idindex.Meta, error) { return idindex.WriteSegment(path, entries) })
		if err != nil {
			return fail(err)
		}
		created = append(created, seg)
		index.segs = slices.Insert(index.segs, 0, seg)
		index.refs = slices.Insert(index.refs, 0, ref)
	}
	// Merge the newest two while the newest is at least half the next:
	// sizes then at least double down the list, up to segmentMax.
	for len(index.segs) >= 2 && index.refs[0].Bytes*2 >= index.refs[1].Bytes && index.refs[0].Bytes+index.refs[1].Bytes <= sn.segmentMax {
		a, b := index.segs[0], index.segs[1]
		seg, ref, err := sn.newSegment(ctx, func(path string) (idindex.Meta, error) { return idindex.Merge(path, a, b) })
		if err != nil {
			return fail(err)
		}
		created = append(created, seg)
		index.segs = append([]*idindex.Segment{seg}, index.segs[2:]...)
		index.refs = append([]segmentRef{ref}, index.refs[2:]...)
	}
	if err := sn.putSnapshot(ctx, job, index.refs); err != nil {
		return fail(err)
	}
	sn.mine = append(sn.mine, job.position)
	if len(sn.mine) > snapshotsKept {
		sn.mine = sn.mine[len(sn.mine)-snapshotsKept:]
	}
	// Segments merged in this job that the snapshot does not name are
	// closed; the old index's segments are closed by install.
	for _, s := range created {
		if !slices.Contains(index.segs, s) {
			s.Close()
		}
	}
	sn.prune(ctx)
	return index, nil
}

// putSnapshot streams the snapshot to a temporary file and uploads it.
func (sn *snapshotter) putSnapshot(ctx context.Context, job *snapshotJob, segments []segmentRef) error {
	f, err := os.CreateTemp(sn.dir, ".snapshot-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	err = writeSnapshot(f, job, segments, sn.clock())
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return sn.store.PutObjectFile(ctx, sn.snapshotName(job.position), f.Name())
}

// newSegment writes a segment with write, opens it, and uploads it under
// a name made of its checksum.
func (sn *snapshotter) newSegment(ctx context.Context, write func(path string) (idindex.Meta, error)) (*idindex.Segment, segmentRef, error) {
	tmp := filepath.Join(sn.dir, fmt.Sprintf(".new-%d.seg", time.Now().UnixNano()))
	meta, err := write(tmp)
	if err != nil {
		os.Remove(tmp)
		return nil, segmentRef{}, fmt.Errorf("write segment: %w", err)
	}
	path := filepath.Join(sn.dir, meta.SHA256+".seg")
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, segmentRef{}, err
	}
	ref := segmentRef{Name: sn.segmentPrefix() + meta.SHA256, SHA256: meta.SHA256, Count: meta.Count, Bytes: meta.Bytes}
	if err := sn.store.PutObjectFile(ctx, ref.Name, path); err != nil {
		return nil, segmentRef{}, err
	}
	seg, err := idindex.OpenSegment(path)
	if err != nil {
		return nil, segmentRef{}, err
	}
	return seg, ref, nil
}

func encodeSnapshot(job *snapshotJob, segments []segmentRef, at time.Time) ([]byte, error) {
	var buf bytes.Buffer
	err := writeSnapshot(&buf, job, segments, at)
	return buf.Bytes(), err
}

// writeSnapshot streams a snapshot to w: a header line, a line per credit
// line, and the checksum line. Memory is one line at a time, however many
// lines the partition has.
func writeSnapshot(w io.Writer, job *snapshotJob, segments []segmentRef, at time.Time) error {
	refs := slices.SortedFunc(maps.Keys(job.lines), func(a, b lineRef) int {
		if a.tenantID != b.tenantID {
			if a.tenantID < b.tenantID {
				return -1
			}
			return 1
		}
		return strings.Compare(a.creditType, b.creditType)
	})
	bw := bufio.NewWriterSize(w, 256<<10)
	sum := sha256.New()
	enc := json.NewEncoder(io.MultiWriter(bw, sum))
	header := snapshotHeader{Version: snapshotVersion, Subject: job.subject, Position: job.position, Hash: job.hash,
		At: at.UTC(), Segments: segments, Lines: len(refs)}
	if err := enc.Encode(header); err != nil {
		return err
	}
	for _, ref := range refs {
		l := *job.lines[ref]
		l.Depleted = nil // kept in the id index
		if err := enc.Encode(snapshotLine{Tenant: ref.tenantID, Line: &l}); err != nil {
			return err
		}
	}
	if _, err := bw.WriteString("sha256:" + hex.EncodeToString(sum.Sum(nil)) + "\n"); err != nil {
		return err
	}
	return bw.Flush()
}

// snapshotState is a decoded snapshot.
type snapshotState struct {
	header snapshotHeader
	lines  map[lineRef]*domain.Line
}

// errSnapshot marks a snapshot that cannot be used.
var errSnapshot = errors.New("unusable snapshot")

// decodeSnapshot checks and parses a snapshot's bytes.
func decodeSnapshot(data []byte) (snapshotState, error) {
	return readSnapshot(bytes.NewReader(data))
}

// readSnapshot checks and parses a snapshot as it streams in, a line at a
// time: the header, as many lines as it announces, then the checksum of
// all of them, and nothing after.
func readSnapshot(r io.Reader) (snapshotState, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	sum := sha256.New()
	next := func(what string) ([]byte, error) {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v (truncated?)", errSnapshot, what, err)
		}
		if bytes.HasPrefix(line, []byte("sha256:")) {
			return nil, fmt.Errorf("%w: the checksum line where the %s should be", errSnapshot, what)
		}
		sum.Write(line)
		return line, nil
	}
	var st snapshotState
	line, err := next("header")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(line, &st.header); err != nil {
		return st, fmt.Errorf("%w: header: %v", errSnapshot, err)
	}
	if st.header.Version != snapshotVersion {
		return st, fmt.Errorf("%w: version %d, not %d", errSnapshot, st.header.Version, snapshotVersion)
	}
	st.lines = make(map[lineRef]*domain.Line, min(st.header.Lines, 1<<20))
	for i := range st.header.Lines {
		line, err := next(fmt.Sprintf("line %d", i))
		if err != nil {
			return st, err
		}
		var sl snapshotLine
		if err := json.Unmarshal(line, &sl); err != nil || sl.Line == nil {
			return st, fmt.Errorf("%w: line %d: %v", errSnapshot, i, err)
		}
		l := sl.Line
		if l.Reservations == nil {
			l.Reservations = map[string]domain.Hold{}
		}
		if l.Subscriptions == nil {
			l.Subscriptions = map[string]domain.Subscription{}
		}
		if err := l.CheckInvariants(); err != nil {
			return st, fmt.Errorf("%w: line %d/%s: %v", errSnapshot, sl.Tenant, l.CreditType, err)
		}
		st.lines[lineRef{sl.Tenant, l.CreditType}] = l
	}
	trailer, err := br.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && trailer != "") {
		return st, fmt.Errorf("%w: no checksum line (truncated?)", errSnapshot)
	}
	if strings.TrimSuffix(trailer, "\n") != "sha256:"+hex.EncodeToString(sum.Sum(nil)) {
		return st, fmt.Errorf("%w: checksum mismatch", errSnapshot)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return st, fmt.Errorf("%w: bytes after its checksum line", errSnapshot)
	}
	return st, nil
}

// cutLastLine splits "body\nlast\n" into body (with its newline) and last.
func cutLastLine(data []byte) ([]byte, string, bool) {
	data = bytes.TrimSuffix(data, []byte("\n"))
	i := bytes.LastIndexByte(data, '\n')
	if i < 0 {
		return nil, "", false
	}
	return data[:i+1], string(data[i+1:]), true
}

// snapshots lists the partition's snapshots, newest first.
func (sn *snapshotter) snapshots(ctx context.Context) ([]string, error) {
	var names []string
	var err error
	// A list can go unanswered while a new cluster elects the bucket's
	// leader: each try is bounded, and a few are made before a start
	// gives up.
	for attempt := 1; ; attempt++ {
		tryCtx, cancel := context.WithTimeout(ctx, snapshotListTimeout)
		names, err = sn.store.Objects(tryCtx, sn.snapshotPrefix())
		cancel()
		if err == nil || ctx.Err() != nil || attempt == snapshotListAttempts {
			break
		}
		sn.log.Warn("listing snapshots, again", "attempt", attempt, "err", err)
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(names) // fixed-width positions: name order is position order
	slices.Reverse(names)
	return names, nil
}

// restore loads the newest usable snapshot into p. A snapshot is usable
// when its bytes check, it links to the commit at its position in this
// log, and every segment it names is present and checks. Otherwise the
// next older one is tried, and with none p stays empty: the whole subject
// is read.
func (sn *snapshotter) restore(ctx context.Context, p *partition) error {
	names, err := sn.snapshots(ctx)
	if err != nil {
		return err
	}
	for _, name := range names {
		st, index, err := sn.load(ctx, p, name)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			sn.log.Warn("snapshot not used; trying an older one", "snapshot", name, "err", err)
			continue
		}
		p.lines = st.lines
		p.chain.lastSeq, p.chain.lastHash = st.header.Position, st.header.Hash
		p.segments = index
		sn.position, sn.last = st.header.Position, sn.clock()
		sn.removeLocal(index)
		sn.log.Info("snapshot loaded", "snapshot", name, "position", st.header.Position, "lines", len(st.lines), "segments", len(index.segs))
		return nil
	}
	if len(names) > 0 {
		sn.log.Warn("no usable snapshot: reading the whole subject", "snapshots", len(names))
	}
	return nil
}

func (sn *snapshotter) load(ctx context.Context, p *partition, name string) (snapshotState, *segmentList, error) {
	r, err := sn.store.ObjectReader(ctx, name)
	if err != nil {
		return snapshotState{}, nil, err
	}
	st, err := readSnapshot(r)
	if err == nil {
		// The object store checks its digest at the end of the object.
		_, err = io.Copy(io.Discard, r)
	}
	r.Close()
	if err != nil {
		return st, nil, err
	}
	if st.header.Subject != p.chain.subject {
		return st, nil, fmt.Errorf("%w: of subject %s", errSnapshot, st.header.Subject)
	}
	if err := sn.checkLink(ctx, p, st.header); err != nil {
		return st, nil, err
	}
	index, err := sn.openSegments(ctx, st.header.Segments)
	return st, index, err
}

// checkLink checks that the snapshot covers this log: the message at its
// position is on its subject, and is the commit whose hash it names (or a
// message an operator set aside after it).
func (sn *snapshotter) checkLink(ctx context.Context, p *partition, h snapshotHeader) error {
	if h.Position == 0 {
		if h.Hash != "" {
			return fmt.Errorf("%w: a hash at position 0", errSnapshot)
		}
		return nil
	}
	msg, err := sn.store.Load(ctx, h.Position)
	if err != nil {
		return fmt.Errorf("%w: its commit %d: %v", errSnapshot, h.Position, err)
	}
	if msg.Subject != h.Subject {
		return fmt.Errorf("%w: the message at %d is on %s", errSnapshot, h.Position, msg.Subject)
	}
	if eventstore.Hash(msg.Data) == h.Hash {
		return nil
	}
	quarantined, err := p.store.Quarantined(ctx)
	if err != nil {
		return err
	}
	if quarantined.Holds(msg) {
		return nil
	}
	return fmt.Errorf("%w: the commit at %d does not hash to %s", errSnapshot, h.Position, h.Hash)
}

// openSegments opens the named segments from the local directory, fetching
// and checking those missing or different.
func (sn *snapshotter) openSegments(ctx context.Context, refs []segmentRef) (*segmentList, error) {
	index := &segmentList{refs: slices.Clone(refs)}
	for _, ref := range refs {
		seg, err := sn.openSegment(ctx, ref)
		if err != nil {
			index.close()
			return nil, fmt.Errorf("%w: segment %s: %v", errSnapshot, ref.Name, err)
		}
		index.segs = append(index.segs, seg)
	}
	return index, nil
}

func (sn *snapshotter) openSegment(ctx context.Context, ref segmentRef) (*idindex.Segment, error) {
	path := filepath.Join(sn.dir, ref.SHA256+".seg")
	if seg, err := idindex.OpenSegment(path); err == nil {
		if seg.Bytes() == ref.Bytes && seg.Count() == ref.Count { // named by its checksum when written here
			return seg, nil
		}
		seg.Close()
	}
	if err := sn.store.ObjectToFile(ctx, ref.Name, path); err != nil {
		return nil, err
	}
	// A fetched segment is checked whole: every byte, every record.
	meta, err := idindex.VerifySegment(path)
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	if meta.SHA256 != ref.SHA256 {
		os.Remove(path)
		return nil, fmt.Errorf("fetched segment hashes to %s", meta.SHA256)
	}
	return idindex.OpenSegment(path)
}

// prune drops snapshots beyond the newest snapshotsKept, and the segments
// none of the kept ones names. Failures only cost space: logged.
func (sn *snapshotter) prune(ctx context.Context) {
	// Bounded on its own: a listing that goes unanswered must not hold
	// the snapshot job, and a clean stop waiting on it, for the job's
	// whole deadline. What is not pruned now is pruned next time.
	ctx, cancel := context.WithTimeout(ctx, snapshotPruneTimeout)
	defer cancel()
	if sn.owned != nil && !sn.owned() {
		// On a cluster only the partition's owner prunes: an instance that
		// follows the partition would delete the segments of the owner's
		// snapshots, which its own kept ones do not name.
		return
	}
	names, err := sn.snapshots(ctx)
	if err != nil {
		sn.log.Warn("listing snapshots", "err", err)
		return
	}
	// Alone, the newest snapshotsKept are kept. On a cluster the
	// instances that follow the partition write snapshots of it too, so
	// the newest few may all be theirs: the owner keeps every snapshot
	// from its own snapshotsKept-th newest on, so its own lineage (which
	// its next snapshot builds on) and everything newer stay whole.
	cutoff := ""
	if sn.owned != nil {
		if len(sn.mine) < snapshotsKept {
			return // too few of its own yet to know what is old
		}
		cutoff = sn.snapshotName(sn.mine[len(sn.mine)-snapshotsKept])
	}
	keep := map[string]bool{}
	for i, name := range names {
		if cutoff != "" && name < cutoff || cutoff == "" && i >= snapshotsKept {
			if err := sn.store.DeleteObject(ctx, name); err != nil {
				sn.log.Warn("deleting snapshot", "snapshot", name, "err", err)
			}
			continue
		}
		h, err := sn.header(ctx, name)
		if err != nil {
			return // a kept snapshot unreadable: keep every segment
		}
		for _, ref := range h.Segments {
			keep[ref.Name] = true
		}
	}
	segments, err := sn.store.Objects(ctx, sn.segmentPrefix())
	if err != nil {
		return
	}
	// On a cluster a follower may be uploading the segments of a snapshot
	// it has not stored yet: only segments older than any snapshot can
	// take are deleted.
	var written map[string]time.Time
	if timed, ok := sn.store.(objectTimes); ok && sn.owned != nil {
		if written, err = timed.ObjectTimes(ctx, sn.segmentPrefix()); err != nil {
			return
		}
	}
	for _, name := range segments {
		if at, ok := written[name]; sn.owned != nil && (!ok || time.Since(at) < snapshotTimeout) {
			continue
		}
		if !keep[name] {
			if err := sn.store.DeleteObject(ctx, name); err != nil {
				sn.log.Warn("deleting segment", "segment", name, "err", err)
			}
		}
	}
}

// header reads a snapshot's first line only.
func (sn *snapshotter) header(ctx context.Context, name string) (snapshotHeader, error) {
	r, err := sn.store.ObjectReader(ctx, name)
	if err != nil {
		return snapshotHeader{}, err
	}
	defer r.Close()
	line, err := bufio.NewReaderSize(r, 64<<10).ReadBytes('\n')
	if err != nil {
		return snapshotHeader{}, err
	}
	var h snapshotHeader
	if err := json.Unmarshal(line, &h); err != nil {
		return h, err
	}
	return h, nil
}

// removeLocal deletes the local segment files the index does not use.
func (sn *snapshotter) removeLocal(index *segmentList) {
	used := map[string]bool{}
	for _, ref := range index.refs {
		used[ref.SHA256+".seg"] = true
	}
	files, err := os.ReadDir(sn.dir)
	if err != nil {
		return
	}
	for _, f := range files {
		if name := f.Name(); strings.HasSuffix(name, ".seg") && !strings.HasPrefix(name, ".") && !used[name] {
			os.Remove(filepath.Join(sn.dir, name))
		}
	}
}
