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

// TestLentListenerOptions: a guest cannot set the options of the listener
// it was lent, which other instances share; it can read them, and set
// those of a socket it opened.
func TestLentListenerOptions(t *testing.T) {
	table := newTestTable(t, context.Background())
	set, get, open := funcNamed(t, "sock_setsockopt"), funcNamed(t, "sock_getsockopt"), funcNamed(t, "sock_open")
	mem := make(byteMemory, 64)
	call := func(f Func, stack ...uint64) Errno {
		t.Helper()
		if got := f.Call(table, mem, stack); got != Served {
			t.Fatalf("%s: outcome %d", f.Name, got)
		}
		return Errno(stack[0])
	}
	rcvbuf := func(fd uint32) uint32 {
		t.Helper()
		if errno := call(get, uint64(fd), solSocket, soRcvbuf, 32, 4); errno != errnoSuccess {
			t.Fatalf("sock_getsockopt SO_RCVBUF of fd %d: errno %d", fd, errno)
		}
		return le.Uint32(mem[32:])
	}
	before := rcvbuf(3)
	le.PutUint32(mem[32:], 4096)
	if errno := call(set, 3, solSocket, soRcvbuf, 32, 4); errno != errnoAcces {
		t.Errorf("sock_setsockopt SO_RCVBUF on the lent listener: errno %d, want EACCES (%d)", errno, errnoAcces)
	}
	if after := rcvbuf(3); after != before {
		t.Errorf("the lent listener's SO_RCVBUF changed from %d to %d", before, after)
	}
	if errno := call(open, afInet, sockStream, 16); errno != errnoSuccess {
		t.Fatalf("sock_open: errno %d", errno)
	}
	own := le.Uint32(mem[16:])
	le.PutUint32(mem[32:], 1)
	if errno := call(set, uint64(own), solSocket, soReuseaddr, 32, 4); errno != errnoSuccess {
		t.Errorf("sock_setsockopt on the guest's own socket: errno %d", errno)
	}
}
