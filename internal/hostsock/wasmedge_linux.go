//go:build linux

package hostsock

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// openSocket creates a non-blocking host socket of the WasmEdge family
// and type.
func openSocket(family, socktype int) (int, Errno) {
	domain := unix.AF_INET
	if family == afInet6 {
		domain = unix.AF_INET6
	}
	typ := unix.SOCK_STREAM
	if socktype == sockDgram {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(domain, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, errnoOf(err)
	}
	return fd, errnoSuccess
}

// toSockaddr converts ap for a socket of the WasmEdge family: an IPv4
// address on an IPv6 socket becomes IPv4-mapped; an IPv6 address on an
// IPv4 socket must be IPv4-mapped (EAFNOSUPPORT otherwise).
func toSockaddr(family int, ap netip.AddrPort) (unix.Sockaddr, Errno) {
	addr := ap.Addr()
	if family == afInet6 {
		return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: addr.As16()}, errnoSuccess
	}
	addr = addr.Unmap()
	if !addr.Is4() {
		return nil, errnoAfnosupport
	}
	return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: addr.As4()}, errnoSuccess
}

// fromSockaddr converts a host address; anything but IPv4 and IPv6 (an
// unnamed socket's) is the zero AddrPort.
func fromSockaddr(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

func bindSocket(host, family int, ap netip.AddrPort) Errno {
	sa, errno := toSockaddr(family, ap)
	if errno != errnoSuccess {
		return errno
	}
	if err := unix.Bind(host, sa); err != nil {
		return errnoOf(err)
	}
	return errnoSuccess
}

func listenSocket(host int, backlog int32) Errno {
	if err := unix.Listen(host, int(backlog)); err != nil {
		return errnoOf(err)
	}
	return errnoSuccess
}

// connectSocket starts a connection; on a stream socket it turns Nagle's
// algorithm off first, as package net does. A host socket is non-blocking,
// so a TCP connection answers EINPROGRESS.
func connectSocket(host, family int, dgram bool, ap netip.AddrPort) Errno {
	sa, errno := toSockaddr(family, ap)
	if errno != errnoSuccess {
		return errno
	}
	if !dgram {
		unix.SetsockoptInt(host, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	for {
		err := unix.Connect(host, sa)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return errnoOf(err)
		}
		return errnoSuccess
	}
}

// socketAddr is the socket's local address, or its peer's.
func socketAddr(host int, peer bool) (netip.AddrPort, Errno) {
	var sa unix.Sockaddr
	var err error
	if peer {
		sa, err = unix.Getpeername(host)
	} else {
		sa, err = unix.Getsockname(host)
	}
	if err != nil {
		return netip.AddrPort{}, errnoOf(err)
	}
	return fromSockaddr(sa), errnoSuccess
}

// hostOptions maps the integer SOL_SOCKET options to the host's.
var hostOptions = map[uint32]int{
	soReuseaddr: unix.SO_REUSEADDR,
	soDontroute: unix.SO_DONTROUTE,
	soBroadcast: unix.SO_BROADCAST,
	soSndbuf:    unix.SO_SNDBUF,
	soRcvbuf:    unix.SO_RCVBUF,
	soKeepalive: unix.SO_KEEPALIVE,
	soOobinline: unix.SO_OOBINLINE,
	soRcvlowat:  unix.SO_RCVLOWAT,
}

// getOption reads an integer option. SO_ERROR is the pending error as a
// WASI errno; SO_TYPE and SO_ACCEPTCONN are answered from the entry by the
// caller.
func getOption(host int, name uint32) (int32, Errno) {
	if name == soError {
		v, err := unix.GetsockoptInt(host, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return 0, errnoOf(err)
		}
		if v == 0 {
			return 0, errnoSuccess
		}
		return int32(errnoOf(unix.Errno(v))), errnoSuccess
	}
	opt, ok := hostOptions[name]
	if !ok {
		return 0, errnoNoprotoopt
	}
	v, err := unix.GetsockoptInt(host, unix.SOL_SOCKET, opt)
	if err != nil {
		return 0, errnoOf(err)
	}
	return int32(v), errnoSuccess
}

func setOption(host int, name uint32, value int32) Errno {
	opt, ok := hostOptions[name]
	if !ok {
		return errnoNoprotoopt
	}
	if err := unix.SetsockoptInt(host, unix.SOL_SOCKET, opt, int(value)); err != nil {
		return errnoOf(err)
	}
	return errnoSuccess
}

// recvFrom reads one datagram (or stream bytes) into bufs and returns the
// sender's address (zero for a stream socket).
func recvFrom(host int, bufs [][]byte, flags int) (int, netip.AddrPort, Errno) {
	n, from, errno := recvmsg(host, bufs, flags)
	return n, fromSockaddr(from), errno
}

// sendTo sends bufs as one datagram to ap.
func sendTo(host, family int, bufs [][]byte, ap netip.AddrPort) (int, Errno) {
	sa, errno := toSockaddr(family, ap)
	if errno != errnoSuccess {
		return 0, errno
	}
	return sendmsg(host, bufs, sa)
}
