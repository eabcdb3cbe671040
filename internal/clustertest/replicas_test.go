package clustertest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/creditd/creditd/eventstore"
	"github.com/creditd/creditd/ingest"
)

// TestClusterSizeCountsTheRunningJetStreamServers: creditd chooses its
// streams' replicas from the number of servers the cluster reports, with
// no system credentials; a stopped server is not counted.
func TestClusterSizeCountsTheRunningJetStreamServers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	nodes, urls := startCluster(t)
	nc := connect(t, urls, "size")
	defer nc.Close()
	// A cluster just started settles first: on a loaded machine a node
	// ready for connections, routed and running JetStream was, in about
	// one run in ten, not yet among the servers answering the account
	// statistics ping (ClusterSize 2).
	waitClusterSize(t, nc, 3)
	// Stop a node creditd is not connected to.
	for _, n := range nodes {
		if n.opts.ServerName != nc.ConnectedServerName() {
			n.stop()
			break
		}
	}
	waitClusterSize(t, nc, 2)
	// A cluster of fewer servers than creditd wants copies is counted so
	// once the wait for servers still joining has passed.
	const wait = time.Second
	start := time.Now()
	size, err := eventstore.ClusterSizeAwaiting(context.Background(), nc, eventstore.ReplicasWanted, wait)
	if took := time.Since(start); err != nil || size != 2 || took < wait-300*time.Millisecond || took > wait+4*time.Second {
		t.Fatalf("ClusterSizeAwaiting = %d, %v after %v; want 2 after about %v", size, err, took, wait)
	}
}

// waitClusterSize asks ClusterSize until it answers want, for at most 10 s.
func waitClusterSize(t *testing.T, nc *nats.Conn, want int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		size, err := eventstore.ClusterSize(context.Background(), nc)
		if err == nil && size == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ClusterSize = %d, %v; want %d", size, err, want)
		}
	}
}

// TestEnsureStreamsNeverTakesReplicasAway: an instance started with fewer
// replicas than the ingest streams have (another instance's setting, or an
// operator's) leaves them their copies.
func TestEnsureStreamsNeverTakesReplicasAway(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	_, urls := startCluster(t)
	nc := connect(t, urls, "ensure")
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		// The meta group may still be electing its leader, and a request
		// made meanwhile goes unanswered: each attempt has its own wait.
		attempt, stop := context.WithTimeout(ctx, 5*time.Second)
		err := ingest.EnsureStreams(attempt, js, 3)
		stop()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := ingest.EnsureStreams(ctx, js, 1); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{ingest.StreamName, ingest.DeadStreamName} {
		stream, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := stream.CachedInfo().Config.Replicas; got != 3 {
			t.Errorf("stream %s has %d replicas after EnsureStreams(1), want its 3", name, got)
		}
	}
}

// TestTheReplicaCountWaitsForAServerStillJoining: serve counts the
// cluster's JetStream servers to choose its log's replicas when it starts,
// often beside a cluster starting too. A server already running whose
// routes are not up yet does not answer the count: a cluster just started
// counted 2 of its 3 servers in about one start in ten (the system
// account's route to the third server still connecting), and creditd
// would have made its log with 2 copies for good. Here the third server
// joins a second after the count begins.
func TestTheReplicaCountWaitsForAServerStillJoining(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	nodes, urls := clusterNodes(t)
	t.Cleanup(func() { stopNodes(nodes) })
	for _, n := range nodes[:2] {
		n.start(t)
	}
	nc := connect(t, strings.Split(urls, ",")[0], "size")
	defer nc.Close()
	joined := make(chan error, 1)
	time.AfterFunc(time.Second, func() { joined <- nodes[2].tryStart() })
	size, err := eventstore.ClusterSizeAwaiting(context.Background(), nc, eventstore.ReplicasWanted, eventstore.ClusterJoinWait)
	if err := <-joined; err != nil {
		t.Fatal(err)
	}
	if err != nil || size != 3 {
		t.Fatalf("servers counted = %d, %v; want 3", size, err)
	}
}
