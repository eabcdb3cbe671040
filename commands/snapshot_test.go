package commands

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditd/creditd/domain"
	"github.com/creditd/creditd/eventstore"
)

// newSnapshotHarness is a harness whose writers snapshot every window
// index entries, so a test goes through many snapshots and segments.
func newSnapshotHarness(t *testing.T, window int) *harness {
	h := &harness{t: t, dir: t.TempDir(), clock: newFakeClock(), snapshots: SnapshotOptions{Window: window, Dir: t.TempDir()}}
	h.start()
	return h
}

// lineJSON is a line's state as a snapshot holds it (depleted grants live
// in the id index), for comparing states.
func lineJSON(t testing.TB, l *domain.Line) string {
	t.Helper()
	c := *l
	c.Depleted = nil
	data, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// replayedLine is the line as an engine reading the whole log sees it.
func (h *harness) replayedLine(tenantID int64) string {
	h.t.Helper()
	e, err := New(context.Background(), logOnly{h.server.Store}, Options{Clock: h.clock.Now, CheckInvariants: true})
	if err != nil {
		h.t.Fatalf("engine on the log alone: %v", err)
	}
	defer e.Close()
	l, _, err := e.Line(context.Background(), tenantID, domain.DefaultCreditType)
	if err != nil {
		h.t.Fatal(err)
	}
	return lineJSON(h.t, l)
}

func (h *harness) partitionOf(tenantID int64) *partition {
	return h.engine.partitions[h.server.Store.PartitionOf(tenantID)]
}

// segmentsOf counts the id index segments the tenant's writer uses now.
func (h *harness) segmentsOf(tenantID int64) int {
	h.t.Helper()
	n := 0
	r := &request{tenantID: tenantID, done: make(chan error, 1), inspect: func(p *partition) {
		if p.segments != nil {
			n = len(p.segments.segs)
		}
	}}
	if err := h.engine.submit(context.Background(), r); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// busyWork writes n usage debits of 0.01 under ids prefix-i, so the
// writer's window fills and snapshots follow.
func (h *harness) busyWork(tenantID int64, prefix string, n int) {
	h.t.Helper()
	for i := range n {
		h.use(tenantID, fmt.Sprintf("%s-%d", prefix, i), "0.01")
	}
}

// TestPrunedIDsStayDuplicates: an id that left memory for the id index on
// disk is still a duplicate, with its original position, and a conflict
// with another body, before and after a restart.
func TestPrunedIDsStayDuplicates(t *testing.T) {
	h := newSnapshotHarness(t, 16)
	tenant := h.tenant()
	h.grant(tenant, "g", "1000", nil)
	first := h.use(tenant, "u-first", "1")
	h.busyWork(tenant, "later", 120)
	if n := h.segmentsOf(tenant); n == 0 {
		t.Fatal("no id index segment after 120 writes with a window of 16")
	}
	check := func(when string) {
		t.Helper()
		res := h.use(tenant, "u-first", "1")
		if !res.Duplicate || res.Position != first.Position {
			t.Errorf("%s: u-first again = %+v, want a duplicate at %d", when, res, first.Position)
		}
		_, err := h.engine.RecordUsage(context.Background(), tenant, []UsageEvent{usage("u-first", "2")})
		if !errors.Is(err, domain.ErrIdempotencyConflict) {
			results, _ := h.engine.RecordUsage(context.Background(), tenant, []UsageEvent{usage("u-first", "2")})
			if len(results) == 0 || !errors.Is(results[0].Err, domain.ErrIdempotencyConflict) {
				t.Errorf("%s: u-first with another amount = %v %+v, want an idempotency conflict", when, err, results)
			}
		}
		p := h.partitionOf(tenant)
		r := &request{tenantID: tenant, done: make(chan error, 1), inspect: func(p *partition) {
			if size := p.win.size(); size > 64 {
				t.Errorf("%s: %d ids in memory with a window of 16", when, size)
			}
		}}
		if err := h.engine.submitTo(context.Background(), p, r); err != nil {
			t.Fatal(err)
		}
	}
	check("live")
	h.restart()
	check("after a restart")
	wantDecimal(t, "used", h.line(tenant).Used, "2.2")
}

// TestPrunedGrantStillReversible: a grant burned down and moved out of its
// line to the id index takes its credits back on a reversal, with its
// expiry, before and after a restart, and a replay of the log agrees.
func TestPrunedGrantStillReversible(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			h := newSnapshotHarness(t, 16)
			tenant := h.tenant()
			expires := h.clock.Now().Add(30 * 24 * time.Hour)
			h.grant(tenant, "early", "10", func(g *domain.Grant) { g.ExpiresAt = &expires; g.Priority = 1 })
			h.use(tenant, "u-early", "10") // burns "early" down
			h.grant(tenant, "big", "1000", func(g *domain.Grant) { g.Priority = 5 })
			h.busyWork(tenant, "later", 80)
			if _, ok := h.line(tenant).Grant("early"); ok {
				t.Fatal(`the depleted grant "early" is still in its line's memory`)
			}
			if restart {
				h.restart()
			}
			res, err := h.engine.ReverseUsage(context.Background(), tenant, domain.ReverseUsage{UsageID: "u-early", Reason: "refund"})
			if err != nil {
				t.Fatalf("reverse: %v", err)
			}
			rev := res.Events[0].(domain.UsageReversed)
			if len(rev.Returned) != 1 || rev.Returned[0].GrantID != "early" || !rev.Returned[0].Amount.Equal(dec("10")) {
				t.Fatalf("returned %+v, want 10 to early", rev.Returned)
			}
			g, ok := h.line(tenant).Grant("early")
			if !ok || !g.Remaining.Equal(dec("10")) || g.ExpiresAt == nil || !g.ExpiresAt.Equal(expires) {
				t.Fatalf("early after the reversal = %+v, %v; want 10 left, expiring %s", g, ok, expires)
			}
			live := lineJSON(t, h.line(tenant))
			if replayed := h.replayedLine(tenant); replayed != live {
				t.Errorf("live line\n%s\nreplayed\n%s", live, replayed)
			}
			h.restart()
			if after := lineJSON(t, h.line(tenant)); after != live {
				t.Errorf("after a restart\n%s\nwant\n%s", after, live)
			}
		})
	}
}

// TestSnapshotFallback: a damaged or missing snapshot, or one that does
// not link to this log, is never used: the start falls back to an older
// snapshot or to the whole log, and reaches the same state.
func TestSnapshotFallback(t *testing.T) {
	damage := map[string]func(t *testing.T, h *harness, name string, data []byte){
		"truncated": func(t *testing.T, h *harness, name string, data []byte) {
			put(t, h, name, data[:len(data)/2])
		},
		"truncated to its header": func(t *testing.T, h *harness, name string, data []byte) {
			put(t, h, name, data[:bytes.IndexByte(data, '\n')+1])
		},
		"a byte changed": func(t *testing.T, h *harness, name string, data []byte) {
			c := bytes.Clone(data)
			i := bytes.Index(c, []byte(`"Used":"`)) + len(`"Used":"`)
			c[i] = '9'
			put(t, h, name, c)
		},
		"checksum right, link wrong": func(t *testing.T, h *harness, name string, data []byte) {
			body, _, _ := cutLastLine(data)
			var header snapshotHeader
			nl := bytes.IndexByte(body, '\n')
			if err := json.Unmarshal(body[:nl], &header); err != nil {
				t.Fatal(err)
			}
			header.Hash = strings.Repeat("0", 64)
			head, _ := json.Marshal(header)
			forged := append(append(head, '\n'), body[nl+1:]...)
			sum := sha256.Sum256(forged)
			put(t, h, name, append(forged, []byte("sha256:"+hex.EncodeToString(sum[:])+"\n")...))
		},
		"segment missing": func(t *testing.T, h *harness, name string, data []byte) {
			header, err := decodeSnapshot(data)
			if err != nil {
				t.Fatal(err)
			}
			if len(header.header.Segments) == 0 {
				t.Fatal("the snapshot names no segment")
			}
			for _, ref := range header.header.Segments {
				if err := h.server.Store.DeleteObject(context.Background(), ref.Name); err != nil {
					t.Fatal(err)
				}
			}
			os.RemoveAll(h.snapshots.Dir)
		},
		"every snapshot damaged": func(t *testing.T, h *harness, name string, data []byte) {
			names, err := h.server.Store.Objects(context.Background(), "snap/")
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range names {
				put(t, h, n, []byte("not a snapshot\n"))
			}
		},
	}
	for what, harm := range damage {
		t.Run(what, func(t *testing.T) {
			h := newSnapshotHarness(t, 16)
			tenant := h.tenant()
			h.grant(tenant, "g", "100", nil)
			first := h.use(tenant, "u-first", "1")
			h.busyWork(tenant, "w", 60)
			h.engine.Close()
			want := h.replayedLine(tenant)
			part := h.server.Store.PartitionOf(tenant)
			names, err := h.server.Store.Objects(context.Background(), fmt.Sprintf("snap/p%d/", part))
			if err != nil || len(names) < 2 {
				t.Fatalf("snapshots of partition %d: %v, %v; want at least 2", part, names, err)
			}
			newest := names[len(names)-1]
			data := get(t, h, newest)
			harm(t, h, newest, data)

			h.server.Stop()
			h.start()
			if got := lineJSON(t, h.line(tenant)); got != want {
				t.Errorf("state after the fallback\n%s\nwant\n%s", got, want)
			}
			res := h.use(tenant, "u-first", "1")
			if !res.Duplicate || res.Position != first.Position {
				t.Errorf("u-first after the fallback = %+v, want a duplicate at %d", res, first.Position)
			}
			h.use(tenant, "after", "1")
			if got, want := lineJSON(t, h.line(tenant)), h.replayedLine(tenant); got != want {
				t.Errorf("state after a write\n%s\nreplayed\n%s", got, want)
			}
		})
	}
}

func get(t *testing.T, h *harness, name string) []byte {
	t.Helper()
	r, err := h.server.Store.ObjectReader(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func put(t *testing.T, h *harness, name string, data []byte) {
	t.Helper()
	if err := h.server.Store.PutObject(context.Background(), name, data); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotOnClose: a clean shutdown writes a snapshot at the tip, so
// the next start reads no commit.
func TestSnapshotOnClose(t *testing.T) {
	h := newHarness(t)
	tenant := h.tenant()
	h.grant(tenant, "g", "100", nil)
	h.use(tenant, "u", "1")
	tip := h.partitionOf(tenant)
	var lastSeq uint64
	r := &request{tenantID: tenant, done: make(chan error, 1), inspect: func(p *partition) { lastSeq = p.chain.lastSeq }}
	if err := h.engine.submitTo(context.Background(), tip, r); err != nil {
		t.Fatal(err)
	}
	h.restart()
	p := h.partitionOf(tenant)
	if p.snaps == nil || p.snaps.position != lastSeq {
		t.Fatalf("snapshot position after a clean restart = %v, want the tip %d", p.snaps, lastSeq)
	}
	wantDecimal(t, "balance", h.line(tenant).Balance(), "99")
}

// TestVerifySnapshots: every snapshot agrees with the log, ids included,
// and one forged with a right checksum is reported.
func TestVerifySnapshots(t *testing.T) {
	h := newSnapshotHarness(t, 16)
	tenant := h.tenant()
	h.grant(tenant, "g", "100", nil)
	h.use(tenant, "u", "1")
	h.engine.ReverseUsage(context.Background(), tenant, domain.ReverseUsage{UsageID: "u", Reason: "refund"})
	h.busyWork(tenant, "w", 60)
	h.engine.Close()
	checks, err := VerifySnapshots(context.Background(), h.server.Store, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	part := fmt.Sprintf("snap/p%d/", h.server.Store.PartitionOf(tenant))
	var newest SnapshotCheck
	for _, c := range checks {
		if c.Problem != "" {
			t.Errorf("%s: %s", c.Name, c.Problem)
		}
		if strings.HasPrefix(c.Name, part) && c.Name > newest.Name {
			newest = c
		}
	}
	if newest.IDs < 60 {
		t.Errorf("newest snapshot of the tenant's partition %+v: want its 60 ids and more checked", newest)
	}

	data := get(t, h, newest.Name)
	body, _, _ := cutLastLine(data)
	forged := bytes.Replace(body, []byte(`"OverdraftLimit":"0"`), []byte(`"OverdraftLimit":"5"`), 1)
	if bytes.Equal(forged, body) {
		t.Fatal("nothing to forge")
	}
	sum := sha256.Sum256(forged)
	put(t, h, newest.Name, append(forged, []byte("sha256:"+hex.EncodeToString(sum[:])+"\n")...))
	checks, err = VerifySnapshots(context.Background(), h.server.Store, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if c.Name == newest.Name && !strings.Contains(c.Problem, "line") {
			t.Errorf("forged %s: problem %q, want a line that differs", c.Name, c.Problem)
		}
	}
}

// refusingSnapshots is the log with a snapshot bucket that lists nothing
// and refuses every upload, counting them: a start reads the whole log and
// every snapshot it tries fails.
type refusingSnapshots struct {
	*eventstore.Store
	puts *atomic.Int64
}

func (s refusingSnapshots) Objects(context.Context, string) ([]string, error) { return nil, nil }

func (s refusingSnapshots) PutObjectFile(context.Context, string, string) error {
	s.puts.Add(1)
	return errors.New("upload refused")
}

// TestFailedSnapshotsDoNotStallALoad: while a start reads a long log, a
// full window is written out at once. A snapshot that fails must not be
// tried again after every commit that follows (the window is still full):
// on a 100M-event log whose uploads failed under load, that made each
// commit wait for an upload to fail, and the start all but stopped.
// Every writer loads at once, so each fills its share of the window
// (windowBudget): 16 entries here.
func TestFailedSnapshotsDoNotStallALoad(t *testing.T) {
	const share, commits = 16, 200
	const window = share * eventstore.PartitionsDefault
	h := newSnapshotHarness(t, window)
	tenant := h.tenant()
	h.grant(tenant, "g", "1000", nil)
	h.busyWork(tenant, "u", commits)
	h.engine.Close()

	var puts atomic.Int64
	dir := t.TempDir()
	e, err := New(context.Background(), refusingSnapshots{h.server.Store, &puts},
		Options{Clock: h.clock.Now, CheckInvariants: true, Snapshots: SnapshotOptions{Window: window, Dir: dir}})
	if err != nil {
		t.Fatalf("start with every snapshot refused: %v", err)
	}
	defer e.Close()
	// One upload per attempt (it fails at the first); an attempt each time
	// the window grows by another share's worth, and one on close.
	if puts.Load() == 0 {
		t.Fatal("no snapshot tried while loading: the test no longer tests anything")
	}
	if n, most := puts.Load(), int64(commits/share+2); n > most {
		t.Errorf("%d snapshot uploads tried while loading %d commits with a share of %d, want at most %d", n, commits, share, most)
	}
	// Nor may a loading writer hold more than its share: every writer
	// loads at once, and 16 full windows were some 200 MiB.
	if n, least := puts.Load(), int64(commits/share); n < least {
		t.Errorf("%d snapshot uploads tried while loading %d commits with a share of %d, want at least %d", n, commits, share, least)
	}
	// Nor may each failed attempt leave its segment on disk: on the
	// 100M-event log, failed uploads left 13 GB there until a snapshot
	// finally succeeded.
	var left []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".seg") {
			left = append(left, filepath.Base(path))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("%d segment files left by failed snapshots: %v", len(left), left)
	}
	res, err := e.RecordUsage(context.Background(), tenant, []UsageEvent{usage("u-0", "0.01")})
	if err != nil || !res[0].Duplicate {
		t.Fatalf("u-0 after the load = %+v, %v; want a duplicate", res, err)
	}
}

// TestMergedSegmentsStayUnderTheirCap: merges stop before a segment passes
// SegmentBytesMax, so no upload outgrows what the object store's stream
// takes in at once; every id is still found.
func TestMergedSegmentsStayUnderTheirCap(t *testing.T) {
	const window, capBytes = 16, 4 << 10
	h := &harness{t: t, dir: t.TempDir(), clock: newFakeClock(), snapshots: SnapshotOptions{Window: window, Dir: t.TempDir(), SegmentBytesMax: capBytes}}
	h.start()
	tenant := h.tenant()
	h.grant(tenant, "g", "1000", nil)
	h.busyWork(tenant, "u", 600)
	h.restart()
	p := h.partitionOf(tenant)
	var refs []segmentRef
	r := &request{tenantID: tenant, done: make(chan error, 1), inspect: func(p *partition) {
		if p.segments != nil {
			refs = slices.Clone(p.segments.refs)
		}
	}}
	if err := h.engine.submitTo(context.Background(), p, r); err != nil {
		t.Fatal(err)
	}
	if len(refs) < 3 {
		t.Fatalf("%d segments after 600 ids with a window of %d and a cap of %d bytes", len(refs), window, capBytes)
	}
	for _, ref := range refs {
		if ref.Bytes > capBytes {
			t.Errorf("segment %s holds %d bytes, over the cap of %d", ref.Name, ref.Bytes, capBytes)
		}
	}
	for _, id := range []string{"u-0", "u-299", "u-599"} {
		if res := h.use(tenant, id, "0.01"); !res.Duplicate {
			t.Errorf("%s again = %+v, want a duplicate", id, res)
		}
	}
}
