package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/internal/idindex"
)

// SnapshotCheck is what VerifySnapshots found of one snapshot.
type SnapshotCheck struct {
	Name     string `json:"name"`
	Subject  string `json:"subject"`
	Position uint64 `json:"position"`
	Lines    int    `json:"lines"`
	Segments int    `json:"segments"`
	// IDs is how many ids of the log up to the snapshot were found in its
	// id index (checked for the newest snapshot of each partition).
	IDs int `json:"ids"`
	// Problem says why the snapshot disagrees with the log; empty when it
	// agrees. A start never uses such a snapshot (it falls back), so a
	// problem costs start-up time, not money, but it should not happen.
	Problem string `json:"problem,omitempty"`
}

// VerifyStore is what VerifySnapshots reads: the log and the snapshots.
type VerifyStore interface {
	FullStore
	SnapshotStore
}

// verifyIDsMax bounds the ids the replay keeps between checks.
const verifyIDsMax = 100_000

// VerifySnapshots checks every snapshot of every partition against the
// log: its bytes and checksum, its link to the commit at its position,
// every segment it names (fetched into dir and checked whole), every line
// equal to the state the pure rules rebuild from the log up to its
// position, and, for each partition's newest snapshot, every id of the log
// up to its position found in its id index with the same position and
// fingerprint. It reads each subject once.
func VerifySnapshots(ctx context.Context, store VerifyStore, dir string) ([]SnapshotCheck, error) {
	var checks []SnapshotCheck
	for id := range store.Partitions() {
		pdir := filepath.Join(dir, "p"+strconv.Itoa(id))
		if err := os.MkdirAll(pdir, 0o700); err != nil {
			return nil, err
		}
		found, err := verifyPartition(ctx, store, id, pdir)
		if err != nil {
			return nil, err
		}
		checks = append(checks, found...)
	}
	return checks, nil
}

// pendingSnapshot is a snapshot waiting for the replay to reach it.
type pendingSnapshot struct {
	check  *SnapshotCheck
	state  snapshotState
	index  *segmentList
	newest bool
}

func verifyPartition(ctx context.Context, store VerifyStore, id int, dir string) ([]SnapshotCheck, error) {
	log := slog.New(slog.DiscardHandler)
	sn := newSnapshotter(store, id, dir, SnapshotOptions{}, newWindowBudget(SnapshotWindowDefault, 1), time.Now, log)
	names, err := sn.snapshots(ctx)
	if err != nil {
		return nil, err
	}
	// The replay: a writer's state built from the log alone, with the
	// rules it loads with (partition.applyCommit).
	p := newPartition(id, logOnly{store}, log, time.Now, false)
	checks := make([]SnapshotCheck, len(names))
	var pending []*pendingSnapshot // oldest first
	for i := len(names) - 1; i >= 0; i-- {
		c := &checks[i]
		*c = SnapshotCheck{Name: names[i], Subject: p.chain.subject}
		ps, err := openForVerify(ctx, sn, p, names[i], c)
		if err != nil {
			c.Problem = err.Error()
			continue
		}
		ps.newest = i == 0
		pending = append(pending, ps)
	}
	defer func() {
		for _, ps := range pending {
			ps.index.close()
		}
	}()
	var newest *pendingSnapshot
	if len(pending) > 0 && pending[len(pending)-1].newest {
		newest = pending[len(pending)-1]
	}
	next := 0
	// reach compares the snapshots at or before the replay's tip.
	reach := func(tip uint64) {
		for next < len(pending) && pending[next].state.header.Position <= tip {
			ps := pending[next]
			if ps.state.header.Position == tip {
				compareLines(ps, p)
			} else if ps.check.Problem == "" {
				ps.check.Problem = fmt.Sprintf("its position %d is not a commit of %s", ps.state.header.Position, p.chain.subject)
			}
			next++
		}
	}
	reach(0)
	var idErr error
	p.chain.applied = func() error {
		reach(p.chain.lastSeq)
		if len(p.win.seen) >= verifyIDsMax {
			idErr = errors.Join(idErr, checkIDs(newest, p))
		}
		return nil
	}
	if err := p.chain.catchUp(ctx, p.store, p.applyCommit); err != nil {
		return nil, fmt.Errorf("read %s: %w", p.chain.subject, err)
	}
	if err := errors.Join(idErr, checkIDs(newest, p)); err != nil {
		return nil, err
	}
	for _, ps := range pending[next:] {
		if ps.check.Problem == "" {
			ps.check.Problem = fmt.Sprintf("its position %d is past the end of %s (%d)", ps.state.header.Position, p.chain.subject, p.chain.lastSeq)
		}
	}
	return checks, nil
}

// openForVerify reads a snapshot whole and checks its bytes, link and
// segments.
func openForVerify(ctx context.Context, sn *snapshotter, p *partition, name string, c *SnapshotCheck) (*pendingSnapshot, error) {
	r, err := sn.store.ObjectReader(ctx, name)
	if err != nil {
		return nil, err
	}
	st, err := readSnapshot(r)
	if err == nil {
		_, err = io.Copy(io.Discard, r)
	}
	r.Close()
	if err != nil {
		return nil, err
	}
	c.Position, c.Lines, c.Segments = st.header.Position, len(st.lines), len(st.header.Segments)
	if st.header.Subject != p.chain.subject {
		return nil, fmt.Errorf("%w: of subject %s", errSnapshot, st.header.Subject)
	}
	if err := sn.checkLink(ctx, p, st.header); err != nil {
		return nil, err
	}
	index := &segmentList{refs: st.header.Segments}
	for _, ref := range st.header.Segments {
		// Fetched again and checked whole, whatever a local copy holds.
		path := filepath.Join(sn.dir, ref.SHA256+".verify")
		if err := sn.store.ObjectToFile(ctx, ref.Name, path); err != nil {
			index.close()
			return nil, fmt.Errorf("segment %s: %w", ref.Name, err)
		}
		meta, err := idindex.VerifySegment(path)
		if err == nil && (meta.SHA256 != ref.SHA256 || meta.Count != ref.Count || meta.Bytes != ref.Bytes) {
			err = fmt.Errorf("is %+v, the snapshot says %+v", meta, ref)
		}
		var seg *idindex.Segment
		if err == nil {
			seg, err = idindex.OpenSegment(path)
		}
		os.Remove(path) // an open segment reads on from the removed file
		if err != nil {
			index.close()
			return nil, fmt.Errorf("segment %s: %w", ref.Name, err)
		}
		index.segs = append(index.segs, seg)
	}
	return &pendingSnapshot{check: c, state: st, index: index}, nil
}

// compareLines compares a snapshot's lines with the replay's at its
// position.
func compareLines(ps *pendingSnapshot, p *partition) {
	if len(ps.state.lines) != len(p.lines) {
		ps.check.Problem = fmt.Sprintf("%d lines, the log has %d", len(ps.state.lines), len(p.lines))
		return
	}
	for ref, want := range p.lines {
		got, ok := ps.state.lines[ref]
		if !ok {
			ps.check.Problem = fmt.Sprintf("no line %d/%s", ref.tenantID, ref.creditType)
			return
		}
		if a, b := lineText(got), lineText(want); a != b {
			ps.check.Problem = fmt.Sprintf("line %d/%s is %s, the log gives %s", ref.tenantID, ref.creditType, a, b)
			return
		}
	}
}

// lineText is a line's state as a snapshot encodes it.
func lineText(l *domain.Line) string {
	c := *l
	c.Depleted = nil
	st := snapshotJob{lines: map[lineRef]*domain.Line{{}: &c}}
	data, err := encodeSnapshot(&st, nil, time.Time{})
	if err != nil {
		return err.Error()
	}
	return string(data)
}

// checkIDs looks up the replay's ids up to the newest snapshot in its id
// index, and forgets them (the replay never reads them back).
func checkIDs(ps *pendingSnapshot, p *partition) error {
	defer func() { p.win.seen, p.win.lineOf = map[idKey]outcome{}, map[idKey]string{} }()
	if ps == nil || ps.check.Problem != "" {
		return nil
	}
	for key, want := range p.win.seen {
		if want.position > ps.state.header.Position {
			continue
		}
		v, ok, err := ps.index.Get(idindex.Key(key))
		if err != nil {
			return fmt.Errorf("read %s's id index: %w", ps.check.Name, err)
		}
		e, decodeErr := decodeIndexEntry(v)
		switch {
		case !ok:
			ps.check.Problem = fmt.Sprintf("an id at position %d is not in its id index", want.position)
		case decodeErr != nil:
			ps.check.Problem = fmt.Sprintf("an id at position %d: %v", want.position, decodeErr)
		case !e.hasOutcome || e.outcome != want:
			ps.check.Problem = fmt.Sprintf("an id at position %d is %+v in its id index, the log gives %+v", want.position, e.outcome, want)
		}
		if ps.check.Problem != "" {
			return nil
		}
		ps.check.IDs++
	}
	return nil
}

// logOnly hides a store's snapshot methods: a partition on it reads the
// log alone.
type logOnly struct{ FullStore }

var _ SnapshotStore = (*eventstore.Store)(nil)
