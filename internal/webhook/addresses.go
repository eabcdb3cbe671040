package webhook

import "net/netip"

// refusedRange is an address range no webhook may reach, with what it is.
type refusedRange struct {
	prefix netip.Prefix
	reason string
}

// refusedRanges are the special-purpose ranges (RFC 6890 and its IANA
// registries) that lead into the host, its network or its cloud. The cloud
// metadata services live inside them: 169.254.169.254 (AWS, GCP, Azure),
// fd00:ec2::254 (AWS IPv6), 100.100.100.200 (Alibaba), 192.0.0.192 (Oracle).
var refusedRanges = func() []refusedRange {
	table := []struct{ prefix, reason string }{
		{"0.0.0.0/8", "unspecified"},
		{"10.0.0.0/8", "private"},
		{"100.64.0.0/10", "carrier-grade NAT"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.0.0/16", "link-local (cloud metadata)"},
		{"172.16.0.0/12", "private"},
		{"192.0.0.0/24", "IETF special-purpose"},
		{"192.0.2.0/24", "documentation"},
		{"192.88.99.0/24", "6to4 relay"},
		{"192.168.0.0/16", "private"},
		{"198.18.0.0/15", "benchmarking"},
		{"198.51.100.0/24", "documentation"},
		{"203.0.113.0/24", "documentation"},
		{"224.0.0.0/4", "multicast"},
		{"240.0.0.0/4", "reserved"},
		{"::1/128", "loopback"},
		{"::/96", "unspecified or IPv4-compatible"},
		{"100::/64", "discard"},
		{"2001::/32", "Teredo"},
		{"2001:db8::/32", "documentation"},
		{"fc00::/7", "unique-local"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local"},
		{"ff00::/8", "multicast"},
	}
	out := make([]refusedRange, len(table))
	for i, r := range table {
		out[i] = refusedRange{netip.MustParsePrefix(r.prefix), r.reason}
	}
	return out
}()

// Ranges that carry an IPv4 address in their last or middle bits: NAT64
// (RFC 6052) and 6to4 (RFC 3056) reach the IPv4 address they embed.
var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// refusedReason says why addr may not be called, "" when it may.
func refusedReason(addr netip.Addr) string {
	addr = addr.WithZone("").Unmap()
	switch {
	case nat64Prefix.Contains(addr):
		b := addr.As16()
		return refusedReason(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	case sixToFour.Contains(addr):
		b := addr.As16()
		return refusedReason(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
	}
	for _, r := range refusedRanges {
		if r.prefix.Contains(addr) {
			return r.reason
		}
	}
	return ""
}
