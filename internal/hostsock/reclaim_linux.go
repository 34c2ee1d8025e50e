//go:build linux

package hostsock

import "golang.org/x/sys/unix"

// backlog is the number of clients waiting in a listening socket's accept
// queue: TCP's count (TCP_INFO's unacked field of a listener), or, for
// other sockets, 1 when the listener is readable and 0 when not.
func backlog(host int) int {
	if info, err := unix.GetsockoptTCPInfo(host, unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
		return int(info.Unacked)
	}
	fds := []unix.PollFd{{Fd: int32(host), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 0); err == nil && n > 0 && fds[0].Revents&unix.POLLIN != 0 {
		return 1
	}
	return 0
}

// unread is the number of bytes received on a connected socket that have
// not been read; -1 if it cannot be told.
func unread(host int) int {
	n, err := unix.IoctlGetInt(host, unix.SIOCINQ)
	if err != nil {
		return -1
	}
	return n
}

// unsent is the number of bytes written to a connected socket that the
// peer has not acknowledged; -1 if it cannot be told.
func unsent(host int) int {
	n, err := unix.IoctlGetInt(host, unix.SIOCOUTQ)
	if err != nil {
		return -1
	}
	return n
}
