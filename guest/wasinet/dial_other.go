//go:build !wasip1

package wasinet

import (
	"context"
	"net"
	"net/netip"
)

// DialContext connects to address on network with a net.Dialer of d's
// Timeout and KeepAlive.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.Timeout, KeepAlive: d.KeepAlive}
	return nd.DialContext(ctx, network, address)
}

// LookupNetIP returns the addresses of host on network ("ip", "ip4" or
// "ip6"), looked up by net.DefaultResolver; IPv4 addresses are plain
// (the resolver may give them IPv4-mapped), as on wasip1.
func LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, network, host)
	for i, a := range addrs {
		addrs[i] = a.Unmap()
	}
	return addrs, err
}

// SetDefaultTransport makes http.DefaultTransport (and so http.Get and
// http.DefaultClient) dial through this package on wasip1. Natively it
// changes nothing: package net already dials out.
func SetDefaultTransport() {}
