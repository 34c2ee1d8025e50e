//go:build linux

package engine

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
)

// setListenerNoDelay finds this process's listening TCP socket bound to
// addr and sets TCP_NODELAY on it. Linux copies the option to every socket
// the listener accepts, so engines that bind and accept themselves (wasmtime
// 19 does not set it) answer without Nagle's delay, as Go servers do.
func setListenerNoDelay(addr string) error {
	want, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return err
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if listening, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_ACCEPTCONN); err != nil || listening != 1 {
			continue
		}
		if !sockaddrIs(fd, want) {
			continue
		}
		return syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	}
	return fmt.Errorf("no listening socket bound to %s in this process", addr)
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
