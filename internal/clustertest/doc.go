// Package clustertest proves creditd on a real three-node JetStream
// cluster: its test starts the nodes and two creditd instances in one
// process on loopback, and stops the stream leader while clients write.
package clustertest
