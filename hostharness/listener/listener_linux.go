//go:build linux

package listener

import (
	"fmt"
	"net"
	"syscall"
)

// noDelay sets TCP_NODELAY on a TCP listener: Linux copies it to every
// accepted socket, so that small responses do not wait for delayed ACKs
// (the host accepts with accept4(2), not through Go's net package, which
// would set it on each connection).
func noDelay(ln net.Listener) error {
	return rawControl(ln, func(fd int) error {
		if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1); err != nil {
			return fmt.Errorf("TCP_NODELAY: %w", err)
		}
		return nil
	})
}

// StopAccepting makes ln refuse new connections without closing it, so
// that guests still waiting on it are woken rather than left polling a
// closed descriptor: clients that connect are refused, connections queued
// but not yet accepted are reset, and accepts fail with EINVAL. Close ln
// once nothing uses it.
func StopAccepting(ln net.Listener) error {
	// shutdown(SHUT_RD) takes a TCP socket out of the listening state and
	// makes a Unix one refuse connections.
	if err := rawControl(ln, func(fd int) error { return syscall.Shutdown(fd, syscall.SHUT_RD) }); err != nil {
		return fmt.Errorf("stop listening on %s: %w", ln.Addr(), err)
	}
	return nil
}
