package clustertest

import (
	"context"
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
