// Package webhook decides which webhook URLs creditd calls and calls them
// through a client that enforces the same rules on the address it actually
// connects to. A tenant chooses its webhook URL, so without these rules a
// tenant could make creditd POST to its own admin routes, to other services
// on its network, or to the cloud's metadata service.
package webhook

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// urlLengthMax bounds a webhook URL.
const urlLengthMax = 2048

// Policy is the operator's webhook rules. The zero value is strict: https
// only, and only to public addresses.
type Policy struct {
	// AllowHTTP admits plain http URLs, for local development.
	AllowHTTP bool
	// AllowHosts admits internal hosts the operator names: a host name
	// (admitted whatever it resolves to), an IP address, or a CIDR range.
	AllowHosts []string
}

// Validate reports an allowlist entry that is neither a host name, an IP
// address nor a CIDR range.
func (p Policy) Validate() error {
	var errs []error
	for _, entry := range p.AllowHosts {
		if _, err := netip.ParsePrefix(entry); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(entry); err == nil {
			continue
		}
		if !validName(strings.ToLower(strings.TrimSuffix(entry, "."))) {
			errs = append(errs, fmt.Errorf("webhook allowlist entry %q is not a host name, an IP address or a CIDR range", entry))
		}
	}
	return errors.Join(errs...)
}

// CheckURL reports why raw may not be a webhook URL, nil when it may.
func (p Policy) CheckURL(raw string) error {
	if len(raw) > urlLengthMax {
		return fmt.Errorf("is longer than %d characters", urlLengthMax)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" || u.Host == "" {
		return errors.New("must be an absolute https URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && p.AllowHTTP:
	case u.Scheme == "http":
		return errors.New("must use https (the operator has not allowed plain http)")
	default:
		return errors.New("must be an https URL")
	}
	if u.User != nil {
		// Credentials in a URL end up in logs and in GET /v1/notices; the
		// signature header authenticates creditd instead.
		return errors.New("must not carry credentials; verify the Creditd-Signature header instead")
	}
	return p.checkHost(u.Hostname())
}

// checkHost refuses a host that names or spells an internal address,
// unless the operator admitted it.
func (p Policy) checkHost(host string) error {
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	addr, isAddr := parseAddr(name)
	if p.admits(name, addr) {
		return nil
	}
	if isAddr {
		if reason := refusedReason(addr); reason != "" {
			return fmt.Errorf("points at a %s address (%s)", reason, addr)
		}
		return nil
	}
	if looksNumeric(name) {
		// Resolvers disagree on such spellings (glibc reads 0x7f000001 as
		// 127.0.0.1, Go's resolver as a name): refuse what is not one.
		return fmt.Errorf("host %q is neither a host name nor an IP address", host)
	}
	if !validName(name) {
		return fmt.Errorf("host %q is not a valid host name", host)
	}
	for _, suffix := range internalNameSuffixes {
		if name == suffix || strings.HasSuffix(name, "."+suffix) {
			return fmt.Errorf("host %q is an internal name", host)
		}
	}
	return nil
}

// internalNameSuffixes are names that resolve only inside a host or its
// network: localhost (RFC 6761), mDNS (.local), home networks, the
// private-use .internal (metadata.google.internal) and bare "metadata".
var internalNameSuffixes = []string{"localhost", "local", "home.arpa", "internal", "metadata", "localdomain"}

// admits reports whether the operator's allowlist names host or contains
// addr (addr may be the zero Addr).
func (p Policy) admits(host string, addr netip.Addr) bool {
	for _, entry := range p.AllowHosts {
		entry = strings.ToLower(strings.TrimSuffix(entry, "."))
		if prefix, err := netip.ParsePrefix(entry); err == nil {
			if addr.IsValid() && prefix.Contains(addr) {
				return true
			}
			continue
		}
		if allowed, err := netip.ParseAddr(entry); err == nil {
			if addr.IsValid() && allowed.Unmap() == addr {
				return true
			}
			continue
		}
		if host != "" && entry == host {
			return true
		}
	}
	return false
}

// parseAddr parses an IP literal in any spelling a resolver might accept:
// dotted quad, IPv6 with or without a zone, and the inet_aton forms
// (0x7f000001, 2130706433, 0177.0.0.1, 127.1). The result is unmapped
// (::ffff:127.0.0.1 is 127.0.0.1) and without zone.
func parseAddr(host string) (netip.Addr, bool) {
	if addr, err := netip.ParseAddr(host); err == nil {
		return addr.WithZone("").Unmap(), true
	}
	if addr, ok := parseInetAton(host); ok {
		return addr, true
	}
	return netip.Addr{}, false
}

// parseInetAton reads the legacy IPv4 forms of inet_aton(3): one to four
// parts, each decimal, octal (leading 0) or hexadecimal (0x), the last
// filling the remaining bytes.
func parseInetAton(host string) (netip.Addr, bool) {
	parts := strings.Split(host, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	values := make([]uint64, len(parts))
	for i, part := range parts {
		v, err := strconv.ParseUint(part, 0, 32)
		if err != nil || part == "" || strings.ContainsAny(part, "_+-") {
			return netip.Addr{}, false
		}
		values[i] = v
	}
	var n uint64
	for i, v := range values[:len(values)-1] {
		if v > 0xff {
			return netip.Addr{}, false
		}
		n |= v << (24 - 8*i)
	}
	last := values[len(values)-1]
	if last >= 1<<(8*(5-len(values))) {
		return netip.Addr{}, false
	}
	n |= last
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// looksNumeric is the WHATWG URL rule: a host whose last label is a number
// is an IPv4 address or invalid, never a name.
func looksNumeric(host string) bool {
	last := host[strings.LastIndex(host, ".")+1:]
	if strings.HasPrefix(last, "0x") {
		return true
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}

// validName accepts letters, digits, hyphens and underscores in dot-separated
// labels of at most 63 characters.
func validName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || strings.Trim(label, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return false
		}
	}
	return true
}
