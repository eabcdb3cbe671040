package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"time"
)

// Partition leases on a cluster (--lease-ttl). A dead instance's
// partitions are taken over about a TTL after its last renewal, and every
// instance renews each of its leases every fifth of a TTL: 5 s keeps a
// takeover within seconds at a few renewals a second per partition, and
// rides out a stream leader election (about 2 s) without losing leases.
const (
	leaseTTLDefault = 5 * time.Second
	leaseTTLMin     = time.Second
	leaseTTLMax     = time.Minute
)

// instanceNameMax bounds the configured part of an instance's name.
const instanceNameMax = 64

// instanceName is this start's name among the instances: the configured
// name or the host name, cut to the characters a lease key takes, and a
// random suffix, so a restarted instance is a new member and never takes
// the leases of its previous life for its own.
func instanceName(configured string) string {
	name := configured
	if name == "" {
		name, _ = os.Hostname()
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '-'
	}, name)
	if len(name) > instanceNameMax {
		name = name[:instanceNameMax]
	}
	if name == "" {
		name = "creditd"
	}
	suffix := make([]byte, 3)
	rand.Read(suffix)
	return name + "-" + hex.EncodeToString(suffix)
}
