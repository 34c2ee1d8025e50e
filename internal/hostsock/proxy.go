package hostsock

import (
	"fmt"
	"net"

	"github.com/pires/go-proxyproto"
)

// proxyHeader encodes the PROXY protocol v2 header of a connection from
// peer to local: TCP over IPv4 (both addresses IPv4, or IPv4-mapped IPv6,
// as package net reports them) or IPv6, or a Unix stream. It fails for
// anything else.
func proxyHeader(local, peer net.Addr) ([]byte, error) {
	h := proxyproto.HeaderProxyFromAddrs(2, peer, local)
	switch h.TransportProtocol {
	case proxyproto.TCPv4, proxyproto.TCPv6, proxyproto.UnixStream:
	default:
		return nil, fmt.Errorf("PROXY header for %s %v to %s %v: not a TCP or Unix stream", network(peer), peer, network(local), local)
	}
	return h.Format()
}

// network is addr's network, or "nil".
func network(addr net.Addr) string {
	if addr == nil {
		return "nil"
	}
	return addr.Network()
}

// SendProxyHeaders makes every connection accepted from now on on the
// listener NewTable was given start with a PROXY protocol v2 header of
// its addresses (see proxyHeader). Call it only for a guest that reads
// the header (one exporting wasisock.ProxyExport), before it runs, and
// give that guest the environment wasisock.EnvProxy=wasisock.ProxyV2.
// Connections on listeners the guest opened itself get no header.
func (t *Table) SendProxyHeaders() { t.proxyHeaders = true }

// takePending copies e's pending bytes into bufs and, unless peek,
// consumes them. It returns the count.
func (e *entry) takePending(bufs [][]byte, peek bool) int {
	n := 0
	for _, b := range bufs {
		n += copy(b, e.pending[n:])
	}
	if !peek {
		e.pending = e.pending[n:]
		if len(e.pending) == 0 {
			e.pending = nil
		}
	}
	return n
}
