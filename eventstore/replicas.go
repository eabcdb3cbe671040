package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// ReplicasWanted is the replica count creditd asks of a cluster when left
// to choose: with three copies the log stays writable with one server
// lost (two of three are a majority), which is what a cluster is for.
const ReplicasWanted = 3

// AutoReplicas is the replica count for a cluster of clusterSize
// JetStream servers: ReplicasWanted, or every server when there are fewer,
// which short reports so the caller can warn that the log has fewer
// copies than creditd would keep.
func AutoReplicas(clusterSize int) (replicas int, short bool) {
	if clusterSize >= ReplicasWanted {
		return ReplicasWanted, false
	}
	return max(clusterSize, 1), true
}

// Bounds of ClusterSize's wait: it ends clusterPingQuiet after the last
// answer, and never later than clusterPingWait after asking.
const (
	clusterPingWait  = 3 * time.Second
	clusterPingQuiet = 300 * time.Millisecond
)

// ClusterJoinWait is how long serve keeps counting a cluster that answers
// with fewer than ReplicasWanted servers (ClusterSizeAwaiting) before it
// settles for fewer copies of its log: a few route retries (nats-server
// tries a route to a server not yet listening again after a second).
const ClusterJoinWait = 5 * time.Second

// clusterAskAgain paces ClusterSizeAwaiting's counts.
const clusterAskAgain = 250 * time.Millisecond

// accountStatzSubject asks every server for its statistics of the asking
// account. Every account imports it from the system account, so it needs
// no system credentials, unlike the server-wide $SYS.REQ.SERVER.PING.
const accountStatzSubject = "$SYS.REQ.ACCOUNT.PING.STATZ"

// ClusterSize counts the JetStream servers of the cluster nc is connected
// to: 1 for a server without a cluster.
//
// Why this way: the connection's list of servers (nc.Servers, gossiped
// connect_urls) repeats a server under each address it was named by and
// misses every server configured with no_advertise; JetStream's account
// info says nothing of servers; the servers' own ping ($SYS.REQ.SERVER.PING)
// needs the system account's credentials. The account statistics ping is
// answered by every running server, with its name, cluster and whether it
// runs JetStream, to any account. It counts the servers running now: a
// server down while creditd starts is not counted.
func ClusterSize(ctx context.Context, nc *nats.Conn) (int, error) {
	cluster := nc.ConnectedClusterName()
	if cluster == "" {
		return 1, nil
	}
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	// Unused: a server where the account has no connection answers too.
	if err := nc.PublishRequest(accountStatzSubject, inbox, []byte(`{"include_unused":true}`)); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, clusterPingWait)
	defer cancel()
	servers := map[string]bool{}
	for {
		wait, stop := ctx, context.CancelFunc(func() {})
		if len(servers) > 0 {
			wait, stop = context.WithTimeout(ctx, clusterPingQuiet)
		}
		msg, err := sub.NextMsgWithContext(wait)
		stop()
		if err != nil {
			if len(servers) > 0 && errors.Is(err, context.DeadlineExceeded) {
				return len(servers), nil
			}
			return 0, fmt.Errorf("count the servers of cluster %s (%s): %w", cluster, accountStatzSubject, err)
		}
		if msg.Header.Get("Status") == "503" {
			return 0, fmt.Errorf("count the servers of cluster %s: nothing answers %s (the server runs without a system account)", cluster, accountStatzSubject)
		}
		var answer struct {
			Server struct {
				ID        string `json:"id"`
				Cluster   string `json:"cluster"`
				JetStream bool   `json:"jetstream"`
			} `json:"server"`
		}
		if json.Unmarshal(msg.Data, &answer) != nil {
			continue
		}
		// Servers of other clusters answer too, across gateways; a stream
		// is placed in the cluster creditd is connected to.
		if answer.Server.Cluster == cluster && answer.Server.JetStream {
			servers[answer.Server.ID] = true
		}
	}
}

// ClusterSizeAwaiting counts like ClusterSize, and while fewer than want
// servers answer it counts again, for at most wait, returning the largest
// count. It is how serve chooses its log's replicas, which the stream keeps
// for good.
//
// Why wait: a server that runs but whose routes to the one asked are still
// connecting does not answer. In a cluster started a moment before, about
// one count in ten missed one of three servers: the asked server had 7 of
// its 8 routes, and its system account, which answers the count on a route
// of its own, heard the count's subject from 2 of the 3 servers. A cluster
// that truly has fewer than want servers costs serve the wait once, at
// start.
func ClusterSizeAwaiting(ctx context.Context, nc *nats.Conn, want int, wait time.Duration) (int, error) {
	deadline := time.Now().Add(wait)
	largest := 0
	for {
		size, err := ClusterSize(ctx, nc)
		if err != nil && largest == 0 {
			return 0, err
		}
		largest = max(largest, size)
		if largest >= want || !time.Now().Add(clusterAskAgain).Before(deadline) {
			return largest, nil
		}
		select {
		case <-ctx.Done():
			return largest, nil
		case <-time.After(clusterAskAgain):
		}
	}
}
