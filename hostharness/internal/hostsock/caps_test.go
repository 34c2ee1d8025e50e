package hostsock

import (
	"context"
	"net"
	"testing"
)

// TestSockOpenLimit: sock_open answers EMFILE at the cap, counted together
// with accepted connections when LimitConns is set, and a closed socket
// frees its place.
func TestSockOpenLimit(t *testing.T) {
	open, closeFD, accept := funcNamed(t, "sock_open"), funcNamed(t, "fd_close"), funcNamed(t, "sock_accept")
	mem := make(byteMemory, 64)
	sockOpen := func(table *Table) (uint32, Errno) {
		stack := []uint64{afInet, sockStream, 16}
		if got := open.Call(table, mem, stack); got != Served {
			t.Fatalf("sock_open: outcome %d", got)
		}
		return le.Uint32(mem[16:]), Errno(stack[0])
	}
	for _, tc := range []struct {
		name     string
		limit    int
		accepted int // connections accepted before the guest opens sockets
		want     int // sockets it can then open
	}{
		{"no connection limit", 0, 0, maxSockets},
		{"connection limit", 5, 0, 5},
		{"connection limit with accepted connections", 5, 2, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			table, err := NewTable(context.Background(), ln, 3)
			if err != nil {
				t.Fatal(err)
			}
			defer table.Close()
			table.LimitConns(tc.limit)
			for range tc.accepted {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				stack := []uint64{3, 0, 20}
				if accept.Call(table, mem, stack); Errno(stack[0]) != errnoSuccess {
					t.Fatalf("sock_accept: errno %d", stack[0])
				}
			}
			var fds []uint32
			for range tc.want {
				fd, errno := sockOpen(table)
				if errno != errnoSuccess {
					t.Fatalf("sock_open %d: errno %d", len(fds)+1, errno)
				}
				fds = append(fds, fd)
			}
			if _, errno := sockOpen(table); errno != errnoMfile {
				t.Fatalf("sock_open past the cap of %d: errno %d, want EMFILE", tc.want, errno)
			}
			if tc.limit > 0 {
				if !table.atConnLimit() {
					t.Error("the guest's own sockets do not count against the connection limit")
				}
			}
			stack := []uint64{uint64(fds[0])}
			if closeFD.Call(table, mem, stack); Errno(stack[0]) != errnoSuccess {
				t.Fatalf("fd_close: errno %d", stack[0])
			}
			if _, errno := sockOpen(table); errno != errnoSuccess {
				t.Fatalf("sock_open after a close: errno %d", errno)
			}
		})
	}
}
