//go:build linux

package engine

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// tuneListener finds this process's listening TCP socket bound to addr and
// gives it what a Go listener has, for engines that bind it themselves
// (wasmtime 19, through Rust's std): TCP_NODELAY, which Linux copies to
// every accepted socket, so that small responses do not wait for delayed
// ACKs; and a backlog of net.core.somaxconn instead of Rust's 128, so that
// a burst of connections is queued rather than dropped or reset.
func tuneListener(addr string) error {
	fd, err := listeningFD(addr)
	if err != nil {
		return err
	}
	if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1); err != nil {
		return fmt.Errorf("TCP_NODELAY: %w", err)
	}
	// listen(2) on a listening socket only changes its backlog.
	if err := syscall.Listen(fd, maxBacklog()); err != nil {
		return fmt.Errorf("raise the backlog: %w", err)
	}
	return nil
}

// stopListeningAt stops this process's listening TCP socket bound to addr,
// as listener.StopAccepting does, for engines that bind it themselves.
func stopListeningAt(addr string) error {
	fd, err := listeningFD(addr)
	if err != nil {
		return err
	}
	// As listener.StopAccepting does.
	return syscall.Shutdown(fd, syscall.SHUT_RD)
}

// listeningFD finds this process's listening TCP socket bound to addr.
func listeningFD(addr string) (int, error) {
	want, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return -1, err
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1, err
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if listening, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN); err != nil || listening != 1 {
			continue
		}
		if sockaddrIs(fd, want) {
			return fd, nil
		}
	}
	return -1, fmt.Errorf("no listening socket bound to %s in this process", addr)
}

// maxBacklog is net.core.somaxconn, the backlog Go's own listeners use.
func maxBacklog() int {
	data, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return syscall.SOMAXCONN
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || n <= 0 {
		return syscall.SOMAXCONN
	}
	return n
}

// sockaddrIs reports whether fd is bound to want's port and address.
func sockaddrIs(fd int, want *net.TCPAddr) bool {
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return false
	}
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return sa.Port == want.Port && net.IP(sa.Addr[:]).Equal(want.IP)
	case *syscall.SockaddrInet6:
		return sa.Port == want.Port && net.IP(sa.Addr[:]).Equal(want.IP)
	}
	return false
}
