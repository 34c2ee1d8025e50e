package hostsock

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"net"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestProxyHeader checks the encoder against headers written out by hand
// from the specification; the guest shim's parser is tested against the
// same bytes (package wasisock).
func TestProxyHeader(t *testing.T) {
	tcp := func(ip string, port int) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: port} }
	unixName := func(name string) string {
		b := make([]byte, 108)
		copy(b, name)
		return hex.EncodeToString(b)
	}
	const sig = "0d0a0d0a000d0a515549540a"
	for _, tc := range []struct {
		name        string
		local, peer net.Addr
		want        string
	}{
		{"IPv4", tcp("198.51.100.7", 8080), tcp("192.0.2.1", 4242),
			sig + "2111000c" + "c0000201" + "c6336407" + "1092" + "1f90"},
		{"IPv4-mapped IPv6, as a dual-stack listener reports IPv4", tcp("::ffff:198.51.100.7", 8080), tcp("::ffff:192.0.2.1", 4242),
			sig + "2111000c" + "c0000201" + "c6336407" + "1092" + "1f90"},
		{"IPv6", tcp("2001:db8::2", 8080), tcp("2001:db8::1", 4242),
			sig + "21210024" + "20010db8000000000000000000000001" + "20010db8000000000000000000000002" + "1092" + "1f90"},
		{"Unix", &net.UnixAddr{Name: "/run/app.sock", Net: "unix"}, &net.UnixAddr{Name: "@", Net: "unix"},
			sig + "213100d8" + unixName("@") + unixName("/run/app.sock")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := proxyHeader(tc.local, tc.peer)
			if err != nil || hex.EncodeToString(got) != tc.want {
				t.Fatalf("proxyHeader = %x, %v\nwant %s", got, err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name        string
		local, peer net.Addr
	}{
		{"nil", nil, nil},
		{"empty TCP", &net.TCPAddr{}, &net.TCPAddr{}},
		{"UDP", &net.UDPAddr{IP: net.IPv4(1, 2, 3, 4)}, &net.UDPAddr{IP: net.IPv4(1, 2, 3, 4)}},
		{"unixgram", &net.UnixAddr{Name: "/a", Net: "unixgram"}, &net.UnixAddr{Name: "@", Net: "unixgram"}},
		{"TCP to Unix", &net.UnixAddr{Name: "/a", Net: "unix"}, tcp("192.0.2.1", 1)},
	} {
		if got, err := proxyHeader(tc.local, tc.peer); err == nil {
			t.Errorf("%s: proxyHeader = %x, want an error", tc.name, got)
		}
	}
}

// TestAcceptedHeader reads the addresses of really accepted sockets and
// checks that the header carries what package net reports for them.
func TestAcceptedHeader(t *testing.T) {
	if err := Supported(); err != nil {
		t.Skip("no host socket layer here:", err)
	}
	for _, tc := range []struct{ name, network, addr string }{
		{"IPv4", "tcp", "127.0.0.1:0"},
		{"IPv6", "tcp", "[::1]:0"},
		{"IPv4 on a dual-stack listener", "tcp", "[::]:0"},
		{"Unix", "unix", filepath.Join(t.TempDir(), "s.sock")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen(tc.network, tc.addr)
			if err != nil {
				t.Skipf("cannot listen on %s here: %v", tc.addr, err)
			}
			defer ln.Close()
			dial := ln.Addr().String()
			if tc.addr == "[::]:0" {
				dial = net.JoinHostPort("127.0.0.1", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
			}
			client, err := net.Dial(tc.network, dial)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			c, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var header []byte
			var errno Errno
			raw, err := c.(syscall.Conn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			raw.Control(func(fd uintptr) { header, errno = acceptedHeader(int(fd)) })
			if errno != errnoSuccess {
				t.Fatalf("acceptedHeader: errno %d", errno)
			}
			h, err := proxyproto.Read(bufio.NewReader(bytes.NewReader(header)))
			if err != nil {
				t.Fatalf("parse %x: %v", header, err)
			}
			if h.SourceAddr.String() != c.RemoteAddr().String() || h.DestinationAddr.String() != c.LocalAddr().String() {
				t.Fatalf("header says %s -> %s; package net says %s -> %s", h.SourceAddr, h.DestinationAddr, c.RemoteAddr(), c.LocalAddr())
			}
		})
	}
}

// Offsets in the guest memory of TestTableProxyHeaders.
const (
	memIovec  = 0   // one iovec
	memResult = 16  // a u32 result
	memFlags  = 20  // a u16 ro_flags
	memSub    = 32  // two subscriptions
	memEvent  = 128 // two events
	memBuf    = 256 // the iovec's buffer
)

// guest drives a table's functions as a guest would.
type guest struct {
	t     *testing.T
	table *Table
	mem   byteMemory
}

func (g *guest) call(name string, stack ...uint64) Errno {
	g.t.Helper()
	f := funcNamed(g.t, name)
	stack = append(stack, make([]uint64, max(0, len(f.Params)-len(stack)))...)
	if got := f.Call(g.table, g.mem, stack); got != Served {
		g.t.Fatalf("%s: outcome %d, want Served", name, got)
	}
	return Errno(stack[0])
}

// readable polls fd for reading, with a clock that ends the poll at
// once, and reports whether fd was ready.
func (g *guest) readable(fd uint32) bool { return g.readableWithin(fd, 0) }

// readableWithin waits in poll_oneoff until fd is readable or d (relative)
// passes, and reports which.
func (g *guest) readableWithin(fd uint32, d time.Duration) bool {
	g.t.Helper()
	clear(g.mem[memSub : memSub+2*subscriptionSize])
	g.mem[memSub+8] = eventtypeFdRead
	binary.LittleEndian.PutUint32(g.mem[memSub+16:], fd)
	g.mem[memSub+subscriptionSize+8] = eventtypeClock
	binary.LittleEndian.PutUint64(g.mem[memSub+subscriptionSize+24:], uint64(d))
	if errno := g.call("poll_oneoff", memSub, memEvent, 2, memResult); errno != errnoSuccess {
		g.t.Fatalf("poll_oneoff: errno %d", errno)
	}
	for i := range binary.LittleEndian.Uint32(g.mem[memResult:]) {
		if g.mem[memEvent+i*eventSize+10] == eventtypeFdRead {
			return true
		}
	}
	return false
}

// recv reads up to n bytes from fd with fd_read, or with sock_recv and
// riFlags when sockRecv.
func (g *guest) recv(fd uint32, n uint32, sockRecv bool, riFlags uint64) []byte {
	g.t.Helper()
	binary.LittleEndian.PutUint32(g.mem[memIovec:], memBuf)
	binary.LittleEndian.PutUint32(g.mem[memIovec+4:], n)
	var errno Errno
	if sockRecv {
		errno = g.call("sock_recv", uint64(fd), memIovec, 1, riFlags, memResult, memFlags)
	} else {
		errno = g.call("fd_read", uint64(fd), memIovec, 1, memResult)
	}
	if errno != errnoSuccess {
		g.t.Fatalf("read fd %d: errno %d", fd, errno)
	}
	got := binary.LittleEndian.Uint32(g.mem[memResult:])
	return append([]byte(nil), g.mem[memBuf:memBuf+got]...)
}

// TestTableProxyHeaders accepts a real connection through the table's
// sock_accept and checks that the guest reads the host's header before the
// client's bytes (and reads nothing else without SendProxyHeaders), that
// poll_oneoff reports the connection readable before the client sent
// anything, and that MSG_PEEK leaves the header in place.
func TestTableProxyHeaders(t *testing.T) {
	for _, send := range []bool{true, false} {
		t.Run(map[bool]string{true: "with headers", false: "without"}[send], func(t *testing.T) {
			table := newTestTable(t, context.Background())
			if send {
				table.SendProxyHeaders()
			}
			g := &guest{t: t, table: table, mem: make(byteMemory, 1024)}
			ln := table.fds[3]
			client, err := net.Dial("tcp", sockName(t, ln.host))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			client.SetDeadline(time.Now().Add(10 * time.Second))
			var fd uint32
			for deadline := time.Now().Add(5 * time.Second); ; {
				errno := g.call("sock_accept", 3, fdflagNonblock, memResult)
				if errno == errnoSuccess {
					fd = binary.LittleEndian.Uint32(g.mem[memResult:])
					break
				}
				if errno != errnoAgain || time.Now().After(deadline) {
					t.Fatalf("sock_accept: errno %d", errno)
				}
				time.Sleep(10 * time.Millisecond)
			}
			want, err := proxyHeader(client.RemoteAddr(), client.LocalAddr())
			if err != nil {
				t.Fatal(err)
			}
			if !send {
				if g.readable(fd) {
					t.Fatal("poll_oneoff: readable before the client sent anything, without headers")
				}
				client.Write([]byte("hi"))
				if got := g.recvEventually(fd); string(got) != "hi" {
					t.Fatalf("read %q, want the client's bytes alone", got)
				}
				return
			}
			if !g.readable(fd) {
				t.Fatal("poll_oneoff: not readable with a header pending")
			}
			if got := g.recv(fd, 64, true, riRecvPeek); !bytes.Equal(got, want[:min(64, len(want))]) {
				t.Fatalf("MSG_PEEK: %x, want %x", got, want[:min(64, len(want))])
			}
			first := g.recv(fd, 10, false, 0)
			rest := g.recv(fd, 512, true, 0)
			if got := append(first, rest...); !bytes.Equal(got, want) {
				t.Fatalf("header read %x, want %x", got, want)
			}
			if g.readable(fd) {
				t.Fatal("poll_oneoff: readable once the header is read and the client sent nothing")
			}
			client.Write([]byte("GET /"))
			if got := g.recvEventually(fd); string(got) != "GET /" {
				t.Fatalf("after the header: %q, want the client's bytes", got)
			}
		})
	}
}

// recvEventually reads fd (non-blocking) until the client's bytes arrive.
func (g *guest) recvEventually(fd uint32) []byte {
	g.t.Helper()
	g.call("fd_fdstat_set_flags", uint64(fd), fdflagNonblock)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		binary.LittleEndian.PutUint32(g.mem[memIovec:], memBuf)
		binary.LittleEndian.PutUint32(g.mem[memIovec+4:], 512)
		switch errno := g.call("fd_read", uint64(fd), memIovec, 1, memResult); errno {
		case errnoAgain:
			continue
		case errnoSuccess:
			n := binary.LittleEndian.Uint32(g.mem[memResult:])
			return append([]byte(nil), g.mem[memBuf:memBuf+n]...)
		default:
			g.t.Fatalf("fd_read: errno %d", errno)
		}
	}
	g.t.Fatal("no bytes from the client within 5 s")
	return nil
}

// sockName is the address a host listening socket is bound to.
func sockName(t *testing.T, host int) string {
	t.Helper()
	sa, err := syscall.Getsockname(host)
	if err != nil {
		t.Fatal(err)
	}
	in4 := sa.(*syscall.SockaddrInet4)
	return (&net.TCPAddr{IP: net.IP(in4.Addr[:]), Port: in4.Port}).String()
}

// TestAcceptSkipsGoneClient: a client that reset its connection before the
// guest took it has no address left to tell; the guest gets the next
// client's connection, with that client's header.
func TestAcceptSkipsGoneClient(t *testing.T) {
	table := newTestTable(t, context.Background())
	table.SendProxyHeaders()
	g := &guest{t: t, table: table, mem: make(byteMemory, 1024)}
	addr := sockName(t, table.fds[3].host)
	gone, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	gone.(*net.TCPConn).SetLinger(0)
	gone.Close() // a reset
	client, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	time.Sleep(100 * time.Millisecond) // let the reset arrive
	if errno := g.call("sock_accept", 3, 0, memResult); errno != errnoSuccess {
		t.Fatalf("sock_accept: errno %d", errno)
	}
	fd := binary.LittleEndian.Uint32(g.mem[memResult:])
	want, err := proxyHeader(client.RemoteAddr(), client.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	if got := g.recv(fd, 512, false, 0); !bytes.Equal(got, want) {
		t.Fatalf("header %x, want %x (the second client's)", got, want)
	}
}
