//go:build wasip1

package wasinet

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/stealthrocket/net/wasip1"
)

// socketsProbe checks once, at the first dial or lookup, that the runtime
// implements the socket extensions (see probeSockets).
var socketsProbe = sync.OnceValue(probeSockets)

// DialContext connects to address on network ("tcp", "tcp4", "tcp6")
// until ctx ends. A host name is resolved by the host (LookupNetIP); the
// addresses are tried in the order the host gave them, each with an even
// share of the time left. The connection has the addresses the host
// reports and, unless d.KeepAlive is negative, keep-alive probes.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	opErr := func(addr net.Addr, err error) error {
		if addr == nil {
			addr = &unresolvedAddr{network: network, address: address}
		}
		return &net.OpError{Op: "dial", Net: network, Addr: addr, Err: err}
	}
	t, err := parseTarget(network, address)
	if err != nil {
		return nil, opErr(nil, err)
	}
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	addrs, err := LookupNetIP(ctx, t.ipNetwork, t.host)
	if err != nil {
		return nil, opErr(nil, err)
	}
	var first error
	for i, a := range addrs {
		if ctx.Err() != nil {
			return nil, opErr(nil, context.Cause(ctx))
		}
		ap := netip.AddrPortFrom(a, t.port)
		c, err := d.dialAddr(ctx, ap, len(addrs)-i)
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = opErr(net.TCPAddrFromAddrPort(ap), explain(err, t, ap))
		}
	}
	return nil, first
}

// dialAddr connects to ap, one of left addresses still to try.
func (d *Dialer) dialAddr(ctx context.Context, ap netip.AddrPort, left int) (net.Conn, error) {
	if deadline, ok := attemptDeadline(ctx, time.Now(), left); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	c, err := wasip1.DialContext(ctx, "tcp", ap.String())
	if err != nil {
		return nil, err
	}
	if d.KeepAlive >= 0 {
		if err := controlFD(c, setKeepAlive); err != nil && !errors.Is(err, syscall.ENOPROTOOPT) {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// controlFD runs fn on the socket fd of c.
func controlFD(c net.Conn, fn func(fd int) error) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var fnErr error
	if err := raw.Control(func(fd uintptr) { fnErr = fn(int(fd)) }); err != nil {
		return err
	}
	return fnErr
}

// explain turns the error of a connect to ap (from
// github.com/stealthrocket/net/wasip1: an *net.OpError around a
// syscall error) into what the guest should read: the host's policy
// refusal with the pattern that allows it, the missing extensions, or
// the connect's own error.
func explain(err error, t target, ap netip.AddrPort) error {
	if oe, ok := errors.AsType[*net.OpError](err); ok {
		err = oe.Err
	}
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno) && errno == syscall.EACCES:
		return &deniedError{target: net.JoinHostPort(t.host, strconv.Itoa(int(t.port))), addr: ap, errno: errno}
	case errors.As(err, &errno) && noSocketsErrno(errno):
		return &probeError{call: "sock_open", errno: errno}
	}
	return err
}

// LookupNetIP returns the addresses of host on network ("ip", "ip4" or
// "ip6"). An IP literal is itself; a name is resolved by the host
// (sock_getaddrinfo), which answers only the names its dial policy
// allows: any other is not found.
func LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	family := uint8(afUnspec)
	switch network {
	case "ip":
	case "ip4":
		family = afInet
	case "ip6":
		family = afInet6
	default:
		return nil, net.UnknownNetworkError(network)
	}
	if err := socketsProbe(); err != nil {
		return nil, err
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return nil, &net.AddrError{Err: "IPv6 zones are not supported on wasip1", Addr: host}
		}
		if !keep(network, a) {
			return nil, &net.AddrError{Err: "no suitable address", Addr: host}
		}
		return []netip.Addr{a.Unmap()}, nil
	}
	if ctx.Err() != nil {
		return nil, &net.DNSError{Err: context.Cause(ctx).Error(), Name: host, IsTimeout: errors.Is(ctx.Err(), context.DeadlineExceeded)}
	}
	found, errno := getaddrinfo(host, family)
	switch {
	case noSocketsErrno(errno):
		return nil, &probeError{call: "sock_getaddrinfo", errno: errno}
	case errno == eaiAgain:
		return nil, &net.DNSError{Err: "temporary failure in the host's name resolution", Name: host, IsTemporary: true}
	case errno != 0:
		return nil, &net.DNSError{Err: "the host's name lookup failed: " + lookupErrText(errno), Name: host}
	}
	addrs := found[:0]
	for _, a := range found {
		if a = a.Unmap(); keep(network, a) {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, notFound(host)
	}
	return addrs, nil
}

// lookupErrText names a getaddrinfo error of the host.
func lookupErrText(errno syscall.Errno) string {
	if errno == eaiFail {
		return "non-recoverable failure"
	}
	return "error " + strconv.Itoa(int(errno)) + " (" + errno.Error() + ")"
}

// SetDefaultTransport makes http.DefaultTransport (and so http.Get and
// http.DefaultClient) dial through this package: it replaces it with
// NewTransport. Call it at start-up, before any request. Natively it
// changes nothing: package net already dials out.
func SetDefaultTransport() {
	http.DefaultTransport = NewTransport()
}

// unresolvedAddr is the net.Addr of a dial that failed before it had an
// IP address: the address as the caller wrote it.
type unresolvedAddr struct{ network, address string }

func (a *unresolvedAddr) Network() string { return a.network }
func (a *unresolvedAddr) String() string  { return a.address }
