//go:build linux

package hostsock

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Supported reports why host sockets cannot be used on this platform, or
// nil where they can.
func Supported() error { return nil }

// rawFD returns the host fd of ln, which keeps it open (and non-blocking)
// until it is closed.
func rawFD(ln net.Listener) (int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("%T has no host socket", ln)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := raw.Control(func(s uintptr) { fd = int(s) }); err != nil {
		return -1, err
	}
	return fd, nil
}

func newWaker() (*waker, error) {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	return &waker{fd: fd}, nil
}

// signalFD makes the eventfd readable for good: a cancelled context stays
// cancelled.
func signalFD(fd int) {
	var one [8]byte
	one[0] = 1
	unix.Write(fd, one[:])
}

func closeFD(fd int) error { return unix.Close(fd) }

// accept takes one pending connection from a listening host socket; the
// connection is non-blocking on the host and has Nagle's algorithm off,
// like connections accepted by package net.
func accept(host int) (int, Errno) {
	for {
		fd, _, err := unix.Accept4(host, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.ECONNABORTED:
			continue // the client gave up before we took it; take the next
		case err != nil:
			return -1, errnoOf(err)
		}
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		return fd, errnoSuccess
	}
}

// recv reads into bufs with recvmsg(2) flags (MSG_PEEK, MSG_WAITALL).
// One buffer, what Go guests pass, goes through recvfrom(2): no msghdr and
// no iovec array to allocate.
func recv(host int, bufs [][]byte, flags int) (int, Errno) {
	if len(bufs) == 1 && len(bufs[0]) > 0 {
		return sockIO(unix.SYS_RECVFROM, host, bufs[0], flags)
	}
	n, _, errno := recvmsg(host, bufs, flags)
	return n, errno
}

// sockIO runs recvfrom(2) or sendto(2) on a connected socket with one
// non-empty buffer, retrying on EINTR.
func sockIO(trap uintptr, host int, p []byte, flags int) (int, Errno) {
	for {
		n, _, err := unix.Syscall6(trap, uintptr(host), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), uintptr(flags), 0, 0)
		switch err {
		case 0:
			return int(n), errnoSuccess
		case unix.EINTR:
			continue
		default:
			return 0, hostErrno(err)
		}
	}
}

// recvmsg reads into bufs and returns the sender's address, if any.
func recvmsg(host int, bufs [][]byte, flags int) (int, unix.Sockaddr, Errno) {
	for {
		n, _, _, from, err := unix.RecvmsgBuffers(host, bufs, nil, flags)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, nil, errnoOf(err)
		}
		return n, from, errnoSuccess
	}
}

// send writes bufs to a connected socket; one buffer goes through
// sendto(2), as in recv.
func send(host int, bufs [][]byte) (int, Errno) {
	if len(bufs) == 1 && len(bufs[0]) > 0 {
		return sockIO(unix.SYS_SENDTO, host, bufs[0], unix.MSG_NOSIGNAL)
	}
	return sendmsg(host, bufs, nil)
}

// sendmsg writes bufs, to sa unless it is nil; a peer that has gone gives
// EPIPE, never SIGPIPE.
func sendmsg(host int, bufs [][]byte, sa unix.Sockaddr) (int, Errno) {
	for {
		n, err := unix.SendmsgBuffers(host, bufs, nil, sa, unix.MSG_NOSIGNAL)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, errnoOf(err)
		}
		return n, errnoSuccess
	}
}

func shutdown(host int, how uint8) Errno {
	var sysHow int
	switch how {
	case sdRD:
		sysHow = unix.SHUT_RD
	case sdWR:
		sysHow = unix.SHUT_WR
	case sdRD | sdWR:
		sysHow = unix.SHUT_RDWR
	default:
		return errnoInval
	}
	if err := unix.Shutdown(host, sysHow); err != nil {
		return errnoOf(err)
	}
	return errnoSuccess
}

func stat(host int) (filestat, Errno) {
	var st unix.Stat_t
	if err := unix.Fstat(host, &st); err != nil {
		return filestat{}, errnoOf(err)
	}
	return filestat{
		dev:   st.Dev,
		ino:   st.Ino,
		nlink: uint64(st.Nlink),
		atim:  uint64(st.Atim.Nano()),
		mtim:  uint64(st.Mtim.Nano()),
		ctim:  uint64(st.Ctim.Nano()),
	}, errnoSuccess
}

// pollFD is one host fd to wait on and, after wait, what it is ready for.
type pollFD = unix.PollFd

// Readiness bits of pollFD.
const (
	pollIn   = unix.POLLIN
	pollOut  = unix.POLLOUT
	pollErr  = unix.POLLERR
	pollHup  = unix.POLLHUP
	pollNval = unix.POLLNVAL
)

// ppoll blocks in ppoll(2) until one of fds is ready or the deadline
// passes (never, if zero), and sets their Revents.
func ppoll(fds []pollFD, deadline time.Time) Errno {
	for {
		var ts *unix.Timespec
		if !deadline.IsZero() {
			t := unix.NsecToTimespec(max(time.Until(deadline), 0).Nanoseconds())
			ts = &t
		}
		_, err := unix.Ppoll(fds, ts, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return errnoOf(err)
		}
		return errnoSuccess
	}
}

// errnoOf maps a host error to its WASI errno. A bare syscall.Errno, the
// common case (EAGAIN), is mapped without allocating.
func errnoOf(err error) Errno {
	errno, ok := err.(syscall.Errno)
	if !ok {
		var wrapped syscall.Errno
		if !errors.As(err, &wrapped) {
			return errnoIO
		}
		errno = wrapped
	}
	return hostErrno(errno)
}

// hostErrno maps a host errno to its WASI errno.
func hostErrno(errno syscall.Errno) Errno {
	switch errno {
	case unix.EACCES:
		return 2
	case unix.EADDRINUSE:
		return 3
	case unix.EADDRNOTAVAIL:
		return 4
	case unix.EAFNOSUPPORT:
		return errnoAfnosupport
	case unix.EALREADY:
		return 7
	case unix.EDESTADDRREQ:
		return 17
	case unix.EINPROGRESS:
		return errnoInprogress
	case unix.EISCONN:
		return errnoIsconn
	case unix.ENOPROTOOPT:
		return errnoNoprotoopt
	case unix.EPROTONOSUPPORT:
		return errnoProtonosuppo
	case unix.EPROTOTYPE:
		return 67
	case unix.EAGAIN:
		return errnoAgain
	case unix.EBADF:
		return errnoBadf
	case unix.ECONNABORTED:
		return 13
	case unix.ECONNREFUSED:
		return 14
	case unix.ECONNRESET:
		return 15
	case unix.EFAULT:
		return errnoFault
	case unix.EHOSTUNREACH:
		return 23
	case unix.EINTR:
		return errnoIntr
	case unix.EINVAL:
		return errnoInval
	case unix.EMFILE:
		return errnoMfile
	case unix.EMSGSIZE:
		return 35
	case unix.ENETDOWN:
		return 38
	case unix.ENETRESET:
		return 39
	case unix.ENETUNREACH:
		return 40
	case unix.ENFILE:
		return 41
	case unix.ENOBUFS:
		return 42
	case unix.ENOMEM:
		return 48
	case unix.ENOTCONN:
		return errnoNotconn
	case unix.ENOTSOCK:
		return 57
	case unix.EOPNOTSUPP:
		return errnoNotsup
	case unix.EPERM:
		return 63
	case unix.EPIPE:
		return 64
	case unix.EPROTO:
		return 65
	case unix.ETIMEDOUT:
		return 73
	}
	return errnoIO
}

// recvmsg(2) flags sock_recv maps its ri_flags to.
const (
	msgPeek    = unix.MSG_PEEK
	msgWaitall = unix.MSG_WAITALL
)

// acceptedHeader is the PROXY header of an accepted host socket (see
// proxyHeader). It answers EAGAIN when the client has already gone (its
// address can no longer be read), so that the caller drops the socket and
// accepts the next.
func acceptedHeader(host int) ([]byte, Errno) {
	local, peer, errno := hostAddrs(host)
	if errno != errnoSuccess {
		return nil, errno
	}
	header, err := proxyHeader(local, peer)
	if err != nil {
		return nil, errnoAfnosupport
	}
	return header, errnoSuccess
}

// streamAddr is a host stream socket's address as package net gives it
// (a Unix socket without a name is "@", as Linux reports it), or nil for
// any other family.
func streamAddr(sa unix.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: "unix"}
	}
	return nil
}
