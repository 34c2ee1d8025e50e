//go:build linux

package hostsock

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"golang.org/x/sys/unix"
)

// newProxyTable is a table on a loopback listener that trusts cidr, with
// the header timeout given, and sends the guest headers; it returns the
// table's guest driver and the listener's address.
func newProxyTable(t *testing.T, cidr string, timeout time.Duration) (*guest, string) {
	t.Helper()
	table, addr := newTestListener(t, context.Background())
	table.SendProxyHeaders()
	if err := table.TrustProxyFrom(ProxyFrom{Trusted: []netip.Prefix{netip.MustParsePrefix(cidr)}, HeaderTimeout: timeout}); err != nil {
		t.Fatal(err)
	}
	g := &guest{t: t, table: table, mem: make(byteMemory, 1<<16)}
	if errno := g.call("fd_fdstat_set_flags", 3, fdflagNonblock); errno != errnoSuccess {
		t.Fatalf("fd_fdstat_set_flags: errno %d", errno)
	}
	return g, addr
}

// waitAccept waits in poll_oneoff on the listener (each wait bounded by
// a clock) and accepts, until sock_accept gives a connection or the
// bound passes: the guest's path through the epoll fd, as a Go guest
// takes it.
func (g *guest) waitAccept(within time.Duration) (uint32, bool) {
	g.t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); {
		switch errno := g.call("sock_accept", 3, fdflagNonblock, memResult); errno {
		case errnoSuccess:
			return binary.LittleEndian.Uint32(g.mem[memResult:]), true
		case errnoAgain:
		default:
			g.t.Fatalf("sock_accept: errno %d", errno)
		}
		g.pollListener(time.Second)
	}
	return 0, false
}

// pollListener waits in poll_oneoff until the listener is readable or d
// passes, and reports which.
func (g *guest) pollListener(d time.Duration) bool { return g.readableWithin(3, d) }

// guestHeader reads the header the host wrote at the start of fd and
// parses it.
func (g *guest) guestHeader(fd uint32) *proxyproto.Header {
	g.t.Helper()
	h, rest := g.guestHeaderAndData(fd)
	if len(rest) > 0 {
		g.t.Fatalf("the guest reads %q after the header, want nothing yet", rest)
	}
	return h
}

// guestHeaderAndData is guestHeader and what the guest's first read has
// after the header.
func (g *guest) guestHeaderAndData(fd uint32) (*proxyproto.Header, []byte) {
	g.t.Helper()
	got := g.recv(fd, 4096, false, 0)
	br := bufio.NewReader(bytes.NewReader(got))
	h, err := proxyproto.Read(br)
	if err != nil {
		g.t.Fatalf("guest's header %x: %v", got, err)
	}
	rest, _ := io.ReadAll(br)
	return h, rest
}

// dialProxy connects to addr and sends first.
func dialProxy(t *testing.T, addr, first string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if first != "" {
		if _, err := io.WriteString(c, first); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// closedNow reports whether the host has closed c: the client reads the
// end (or a reset) within a short wait, rather than nothing.
func closedNow(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	defer c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := c.Read(make([]byte, 1))
	switch {
	case n > 0:
		t.Fatal("the host wrote to a connection it refused")
	case errors.Is(err, os.ErrDeadlineExceeded):
		return false
	case err != nil && !errors.Is(err, io.EOF) && !isReset(err):
		t.Fatalf("read: %v, want the end of the connection", err)
	}
	return true
}

// isReset reports whether err is a connection reset (a host that closed
// with unread bytes resets).
func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// TestTableProxyFrom accepts real connections from a trusted loopback
// peer through sock_accept and checks what the guest reads and sees.
func TestTableProxyFrom(t *testing.T) {
	for _, tc := range []struct {
		name, header string
		want         *connAddrs // nil: the connection's own
	}{
		{"v2 TCP4", v2TCP4, relayed4},
		{"v2 TCP6", v2TCP6, relayed6},
		{"v2 TCP4 with a TLV", v2TCP4TLV, relayed4},
		{"v2 LOCAL", v2Local, nil},
		{"v1 TCP4", v1TCP4, relayed4},
		{"v1 TCP6", v1TCP6, relayed6},
		{"v1 UNKNOWN", v1Unknown, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, addr := newProxyTable(t, "127.0.0.1/32", time.Hour)
			const first = "GET / HTTP/1.1\r\n"
			c := dialProxy(t, addr, tc.header+first)
			fd, ok := g.waitAccept(30 * time.Second)
			if !ok {
				t.Fatal("no connection accepted")
			}
			h, got := g.guestHeaderAndData(fd)
			want := &connAddrs{peer: c.LocalAddr().(*net.TCPAddr).AddrPort(), local: c.RemoteAddr().(*net.TCPAddr).AddrPort()}
			if tc.want != nil {
				want = tc.want
			}
			src, dst, _ := h.TCPAddrs()
			if src.AddrPort() != want.peer || dst.AddrPort() != want.local {
				t.Fatalf("guest's header says %s -> %s, want %s -> %s", src, dst, want.peer, want.local)
			}
			for _, peer := range []bool{true, false} {
				ap, errno := g.table.fds[fd].sockAddr(peer)
				if wantAP := map[bool]netip.AddrPort{true: want.peer, false: want.local}[peer]; errno != errnoSuccess || ap != wantAP {
					t.Fatalf("sockAddr(peer %v) = %s, errno %d; want %s", peer, ap, errno, wantAP)
				}
			}
			for len(got) < len(first) {
				got = append(got, g.recvEventually(fd)...)
			}
			if string(got) != first {
				t.Fatalf("after the header the guest reads %q, want %q", got, first)
			}
		})
	}
}

// TestTableProxyFromRefuses closes trusted connections whose header is
// missing, bad, cut short or late, and serves the next one.
func TestTableProxyFromRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, first string
		hangUp      bool // the client closes after first
	}{
		{"no header", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"malformed v1", "PROXY TCP4 203.0.113.777 198.51.100.1 4242 80\r\n", false},
		{"malformed v2", v2Sig + "\x21\x12\x00\x0c" + strings.Repeat("\x01", 12), false},
		{"truncated", v2TCP4[:20], true},
		{"late", "", false},
		{"late after part of it", v2TCP4[:10], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, addr := newProxyTable(t, "127.0.0.1/32", 200*time.Millisecond)
			bad := dialProxy(t, addr, tc.first)
			if tc.hangUp {
				bad.(*net.TCPConn).CloseWrite()
			}
			// The guest waits as a Go guest does; the host closes the bad
			// connection without ever giving it to the guest.
			for deadline := time.Now().Add(30 * time.Second); !closedNow(t, bad); {
				if time.Now().After(deadline) {
					t.Fatal("the bad connection is still open")
				}
				if _, ok := g.acceptNow(); ok {
					t.Fatal("the guest got the bad connection")
				}
				g.pollListener(time.Second)
			}
			good := dialProxy(t, addr, v2TCP4)
			fd, ok := g.waitAccept(30 * time.Second)
			if !ok {
				t.Fatal("the next connection was not accepted")
			}
			if src, _, _ := g.guestHeader(fd).TCPAddrs(); src.AddrPort() != relayed4.peer {
				t.Fatalf("next connection: guest sees %s, want %s", src, relayed4.peer)
			}
			good.Close()
		})
	}
}

// TestTableProxyFromDoesNotBlock: a trusted peer that sends nothing does
// not hold up the connections behind it, and a header that arrives in
// pieces, in time, is taken.
func TestTableProxyFromDoesNotBlock(t *testing.T) {
	g, addr := newProxyTable(t, "127.0.0.1/32", time.Hour)
	silent := dialProxy(t, addr, "")
	pieces := dialProxy(t, addr, v2TCP4[:7])
	good := dialProxy(t, addr, v1TCP6)
	fd, ok := g.waitAccept(30 * time.Second)
	if !ok {
		t.Fatal("no connection accepted past the silent one")
	}
	if src, _, _ := g.guestHeader(fd).TCPAddrs(); src.AddrPort() != relayed6.peer {
		t.Fatalf("guest sees %s first, want the complete header's %s", src, relayed6.peer)
	}
	if _, ok := g.acceptNow(); ok {
		t.Fatal("a connection accepted with its header incomplete")
	}
	io.WriteString(pieces, v2TCP4[7:])
	if !g.pollListener(30 * time.Second) {
		t.Fatal("the rest of an awaited header did not wake the guest's poll")
	}
	if fd, ok = g.waitAccept(30 * time.Second); !ok {
		t.Fatal("the header sent in pieces was not taken")
	}
	if src, _, _ := g.guestHeader(fd).TCPAddrs(); src.AddrPort() != relayed4.peer {
		t.Fatalf("guest sees %s, want %s", src, relayed4.peer)
	}
	if n := len(g.table.proxy.awaited); n != 1 {
		t.Fatalf("%d headers awaited, want the silent connection's", n)
	}
	silent.Close()
	good.Close()
}

// TestTableProxyFromTimeout: the header timeout wakes a guest waiting on
// the listener, and the silent trusted connection is closed.
func TestTableProxyFromTimeout(t *testing.T) {
	g, addr := newProxyTable(t, "127.0.0.1/32", 200*time.Millisecond)
	silent := dialProxy(t, addr, "")
	for deadline := time.Now().Add(30 * time.Second); len(g.table.proxy.awaited) == 0; g.pollListener(time.Second) {
		if _, ok := g.acceptNow(); ok || time.Now().After(deadline) {
			t.Fatal("the silent connection was accepted, or never awaited")
		}
	}
	if !g.pollListener(30 * time.Second) {
		t.Fatal("the header timeout did not wake the guest's poll")
	}
	if _, ok := g.acceptNow(); ok {
		t.Fatal("the silent connection was accepted")
	}
	if n := len(g.table.proxy.awaited); n != 0 {
		t.Fatalf("%d headers still awaited after the timeout", n)
	}
	for deadline := time.Now().Add(30 * time.Second); !closedNow(t, silent); {
		if time.Now().After(deadline) {
			t.Fatal("the silent connection is open after its timeout")
		}
	}
}

// TestTableProxyFromBlocking: a guest whose listener blocks waits in
// sock_accept through awaited headers and gets the first complete one.
func TestTableProxyFromBlocking(t *testing.T) {
	g, addr := newProxyTable(t, "127.0.0.1/32", time.Hour)
	g.call("fd_fdstat_set_flags", 3, 0)
	dialProxy(t, addr, "")
	pieces := dialProxy(t, addr, v1TCP4[:9])
	go func() {
		time.Sleep(50 * time.Millisecond) // most likely after the accept began waiting; either order is right
		io.WriteString(pieces, v1TCP4[9:])
	}()
	if errno := g.call("sock_accept", 3, 0, memResult); errno != errnoSuccess {
		t.Fatalf("blocking sock_accept: errno %d", errno)
	}
	fd := binary.LittleEndian.Uint32(g.mem[memResult:])
	if src, _, _ := g.guestHeader(fd).TCPAddrs(); src.AddrPort() != relayed4.peer {
		t.Fatalf("guest sees %s, want %s", src, relayed4.peer)
	}
}

// acceptNow calls sock_accept once.
func (g *guest) acceptNow() (uint32, bool) {
	g.t.Helper()
	if g.call("sock_accept", 3, fdflagNonblock, memResult) != errnoSuccess {
		return 0, false
	}
	return binary.LittleEndian.Uint32(g.mem[memResult:]), true
}

// TestTableProxyFromUntrusted: a peer outside the trusted prefixes is
// served as without ProxyFrom: the guest's header has its real address,
// and a PROXY header it sends is data.
func TestTableProxyFromUntrusted(t *testing.T) {
	g, addr := newProxyTable(t, "10.0.0.0/8", time.Hour)
	c := dialProxy(t, addr, v2TCP4+"GET /")
	fd, ok := g.waitAccept(30 * time.Second)
	if !ok {
		t.Fatal("no connection accepted")
	}
	h, got := g.guestHeaderAndData(fd)
	if src, _, _ := h.TCPAddrs(); src.AddrPort() != c.LocalAddr().(*net.TCPAddr).AddrPort() {
		t.Fatalf("guest sees %s, want the client's own %s", src, c.LocalAddr())
	}
	if g.table.fds[fd].addrs != nil {
		t.Fatalf("untrusted connection has header addresses %+v", g.table.fds[fd].addrs)
	}
	for len(got) < len(v2TCP4+"GET /") {
		got = append(got, g.recvEventually(fd)...)
	}
	if string(got) != v2TCP4+"GET /" {
		t.Fatalf("guest reads %q, want the client's header as data", got)
	}
}

// TestTableProxyFromBound: past MaxAwaitedHeaders silent trusted
// connections the listener is no longer polled (further clients wait in
// the backlog, and the guest's poll does not spin); one of them leaving
// lets the next in.
func TestTableProxyFromBound(t *testing.T) {
	g, addr := newProxyTable(t, "127.0.0.1/32", time.Hour)
	silent := make([]net.Conn, MaxAwaitedHeaders)
	for i := range silent {
		silent[i] = dialProxy(t, addr, "")
	}
	for deadline := time.Now().Add(30 * time.Second); len(g.table.proxy.awaited) < MaxAwaitedHeaders; {
		if _, ok := g.acceptNow(); ok {
			t.Fatal("a silent connection was accepted")
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d headers awaited, want %d", len(g.table.proxy.awaited), MaxAwaitedHeaders)
		}
		g.pollListener(time.Second)
	}
	dialProxy(t, addr, v2TCP4)
	if _, ok := g.acceptNow(); ok {
		t.Fatal("accepted past the bound")
	}
	if g.pollListener(100 * time.Millisecond) {
		t.Fatal("the listener polls readable with the awaited headers at the bound")
	}
	silent[0].Close()
	fd, ok := g.waitAccept(30 * time.Second)
	if !ok {
		t.Fatal("the next connection was not accepted once a silent one left")
	}
	if src, _, _ := g.guestHeader(fd).TCPAddrs(); src.AddrPort() != relayed4.peer {
		t.Fatalf("guest sees %s, want %s", src, relayed4.peer)
	}
}

// TestProxyLog: closed trusted connections log one warning per
// ProxyLogInterval, the next counting those held back; one that closed
// before sending a byte (a TCP health check) logs at debug level only.
func TestProxyLog(t *testing.T) {
	var out strings.Builder
	logger := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := &proxyState{cfg: ProxyFrom{Logger: logger}, log: newProxyLog(logger)}
	peer := netip.MustParseAddrPort("127.0.0.1:9")
	for range 3 {
		p.log.closed(peer, errNoProxyHeader)
	}
	p.log.limit.now = func() time.Time { return time.Now().Add(ProxyLogInterval) } // as if the interval had passed
	p.log.closed(peer, errProxyHeaderLate)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "also_closed_since_last_line=0") || !strings.Contains(lines[1], "also_closed_since_last_line=2") ||
		!strings.Contains(lines[1], "level=WARN") || !strings.Contains(lines[1], "not complete in time") {
		t.Fatalf("log:\n%s\nwant two warnings, the second counting 2 held back", out.String())
	}
	out.Reset()
	host, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	p.reject(&awaitedConn{host: host, peer: peer}, errProxyHeaderCut)
	if got := out.String(); !strings.Contains(got, "level=DEBUG") || strings.Contains(got, "WARN") {
		t.Fatalf("a connection closed before sending anything logged %q, want debug only", got)
	}
}
