package webhook

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Client bounds; the whole request is bounded by the caller's timeout.
const (
	dialTimeout           = 5 * time.Second
	tlsHandshakeTimeout   = 5 * time.Second
	idleConnsPerHostMax   = 2
	idleConnTimeout       = 90 * time.Second
	responseHeaderTimeout = 10 * time.Second
)

// Client returns the HTTP client that calls webhooks, each request bounded
// by timeout. It follows no redirect (a redirect is the answer, a failed
// delivery), uses no proxy (a proxy's address would be checked instead of
// the webhook's), and checks the address of every connection it opens
// against the policy, after name resolution, so a name that resolves to an
// internal address (DNS rebinding) is refused however it passed CheckURL.
func (p Policy) Client(timeout time.Duration) *http.Client {
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           p.dialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   tlsHandshakeTimeout,
		ResponseHeaderTimeout: responseHeaderTimeout,
		MaxIdleConnsPerHost:   idleConnsPerHostMax,
		IdleConnTimeout:       idleConnTimeout,
	}
	return &http.Client{
		Transport:     transport,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// dialContext dials address (the URL's host and port) with a Control
// function that sees each resolved address just before the connect.
func (p Policy) dialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	dialer := &net.Dialer{
		Timeout: dialTimeout,
		Control: func(_, connected string, _ syscall.RawConn) error {
			return p.checkConnected(name, connected)
		},
	}
	return dialer.DialContext(ctx, network, address)
}

// checkConnected refuses a connection to an internal address unless the
// operator admitted the URL's host name or the address.
func (p Policy) checkConnected(host, connected string) error {
	ipPort, err := netip.ParseAddrPort(connected)
	if err != nil {
		return fmt.Errorf("webhook address %q: %w", connected, err)
	}
	addr := ipPort.Addr().WithZone("").Unmap()
	if p.admits(host, addr) {
		return nil
	}
	if reason := refusedReason(addr); reason != "" {
		return fmt.Errorf("webhook address %s is %s: refused", addr, reason)
	}
	return nil
}
