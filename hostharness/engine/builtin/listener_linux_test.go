//go:build linux

package builtin_test

import (
	"net"
	"time"

	"github.com/wasiserve/wasiserve/internal/enginetest"

	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/wasiserve/wasiserve/hostharness/engine"
)

// serverSideNoDelay returns TCP_NODELAY of this process's socket whose peer
// is peer, or -1 if there is none.
func serverSideNoDelay(t *testing.T, peer string) int {
	t.Helper()
	want, err := net.ResolveTCPAddr("tcp", peer)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		sa, err := syscall.Getpeername(fd)
		if err != nil {
			continue
		}
		in4, ok := sa.(*syscall.SockaddrInet4)
		if !ok || in4.Port != want.Port || !net.IP(in4.Addr[:]).Equal(want.IP) {
			continue
		}
		v, err := syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return -1
}

// TestAcceptedConnsNoDelay checks that the guest's accepted connections
// have Nagle's algorithm off, as a Go server's do: otherwise a response
// written in two pieces waits for the client's delayed ACK (~40 ms).
func TestAcceptedConnsNoDelay(t *testing.T) {
	for _, name := range engines.EmbeddedNames() {
		t.Run(name, func(t *testing.T) {
			inst := serve(t, newEngine(t, name), enginetest.Echo.Path(t), engine.Config{})
			conn, err := net.Dial("tcp", inst.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			local := conn.LocalAddr().String()
			// The server side is a socket of this process whose peer is conn.
			if !waitFor(5*time.Second, func() bool { return serverSideNoDelay(t, local) == 1 }) {
				t.Fatalf("TCP_NODELAY on the accepted connection = %d, want 1", serverSideNoDelay(t, local))
			}
		})
	}
}

// TestListenBacklog dials a burst of connections at a guest that never
// accepts: every engine's listener must queue them all (a backlog of
// somaxconn, as Go's listeners have), not just the 128 that wasmtime 19
// binds with, beyond which handshakes are dropped or reset.
func TestListenBacklog(t *testing.T) {
	const burst = 512
	for _, name := range engines.EmbeddedNames() {
		t.Run(name, func(t *testing.T) {
			inst := serve(t, newEngine(t, name), enginetest.FD3.Path(t), engine.Config{Env: []string{"NO_ACCEPT=1"}})
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for i := range burst {
				c, err := net.DialTimeout("tcp", inst.Addr, 2*time.Second)
				if err != nil {
					t.Fatalf("connection %d of %d to a guest that does not accept: %v", i+1, burst, err)
				}
				conns = append(conns, c)
			}
		})
	}
}
