// Package clustertest proves creditd on a real three-node JetStream
// cluster: its tests start the nodes and creditd instances in one process
// on loopback. One stops the stream leader while clients write; the
// others run three instances that own the write partitions by leases,
// under steady load, through the crash of an owner, through a rolling
// restart, and in a race to spend one small balance.
package clustertest
