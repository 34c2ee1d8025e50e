package wasinet

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		network, address string
		want             target
		wantErr          string
	}{
		{"tcp", "127.0.0.1:5432", target{host: "127.0.0.1", port: 5432, ipNetwork: "ip"}, ""},
		{"tcp4", "db.internal:6379", target{host: "db.internal", port: 6379, ipNetwork: "ip4"}, ""},
		{"tcp6", "[::1]:443", target{host: "::1", port: 443, ipNetwork: "ip6"}, ""},
		{"tcp", "example.com:https", target{host: "example.com", port: 443, ipNetwork: "ip"}, ""},
		{"udp", "127.0.0.1:53", target{}, "unknown network udp"},
		{"unix", "/run/x.sock", target{}, "unknown network unix"},
		{"tcp", "127.0.0.1", target{}, "missing port"},
		{"tcp", ":80", target{}, "missing host"},
		{"tcp", "host:70000", target{}, "invalid port"},
		{"tcp", "host:nosuchservice", target{}, "unknown port"},
	} {
		got, err := parseTarget(tc.network, tc.address)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("parseTarget(%q, %q) = %+v, %v; want an error with %q", tc.network, tc.address, got, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("parseTarget(%q, %q) = %+v, %v; want %+v", tc.network, tc.address, got, err, tc.want)
		}
	}
}

func TestKeep(t *testing.T) {
	v4, v6, mapped := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:10.0.0.1")
	for _, tc := range []struct {
		network string
		addr    netip.Addr
		want    bool
	}{
		{"ip", v4, true}, {"ip", v6, true},
		{"ip4", v4, true}, {"ip4", mapped, true}, {"ip4", v6, false},
		{"ip6", v6, true}, {"ip6", v4, false}, {"ip6", mapped, false},
	} {
		if got := keep(tc.network, tc.addr); got != tc.want {
			t.Errorf("keep(%s, %s) = %v, want %v", tc.network, tc.addr, got, tc.want)
		}
	}
}

func TestAttemptDeadline(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	withDeadline := func(d time.Duration) context.Context {
		ctx, cancel := context.WithDeadline(context.Background(), now.Add(d))
		t.Cleanup(cancel)
		return ctx
	}
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		left   int
		want   time.Duration // from now
		wantOK bool
	}{
		{"no deadline", context.Background(), 3, 0, false},
		{"last address gets all", withDeadline(9 * time.Second), 1, 9 * time.Second, true},
		{"even share", withDeadline(9 * time.Second), 3, 3 * time.Second, true},
		{"at least the minimum", withDeadline(3 * time.Second), 3, minAttemptTimeout, true},
		{"never past the deadline", withDeadline(time.Second), 3, time.Second, true},
	} {
		got, ok := attemptDeadline(tc.ctx, now, tc.left)
		if ok != tc.wantOK || (ok && got.Sub(now) != tc.want) {
			t.Errorf("%s: deadline in %v (ok %v), want %v (ok %v)", tc.name, got.Sub(now), ok, tc.want, tc.wantOK)
		}
	}
}

// TestErrors checks the texts and the identities of the errors a guest
// reads: a refused dial is a permission error naming the address and the
// pattern that allows it, a missing extension is ErrNoSocketExtensions,
// a name the host does not resolve is a not-found DNS error.
func TestErrors(t *testing.T) {
	ap := netip.MustParseAddrPort("127.0.0.1:5432")
	for _, tc := range []struct {
		name string
		err  error
		want string
		is   error
	}{
		{"denied address", &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(ap),
			Err: &deniedError{target: "127.0.0.1:5432", addr: ap, errno: syscall.EACCES}},
			"dial tcp 127.0.0.1:5432: connect: permission denied: the host's dial policy does not allow 127.0.0.1:5432; " +
				"with hostharness serve, allow it with --allow-dial 127.0.0.1:5432", fs.ErrPermission},
		{"denied name", &deniedError{target: "db.internal:5432", addr: ap, errno: syscall.EACCES},
			"does not allow db.internal:5432 (127.0.0.1:5432); with hostharness serve, allow it with --allow-dial db.internal:5432", fs.ErrPermission},
		{"not implemented", &probeError{call: "sock_open", errno: syscall.ENOSYS},
			"does not provide the WasmEdge socket extensions that outbound connections need: run the guest with hostharness serve " +
				"(--engine wasmtime or --engine wazy) and --allow-dial, or with WasmEdge (sock_open answered ENOSYS)", ErrNoSocketExtensions},
		{"not supported", &probeError{call: "sock_getaddrinfo", errno: syscall.ENOTSUP}, "(sock_getaddrinfo answered ENOTSUP)", ErrNoSocketExtensions},
		{"zero values", &probeError{call: "sock_open", zero: true}, "(sock_open returned no socket)", ErrNoSocketExtensions},
		{"not found", notFound("db.internal"), "lookup db.internal: no such host (the host resolves only the names its dial policy allows", nil},
	} {
		if !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: %q lacks %q", tc.name, tc.err, tc.want)
		}
		if tc.is != nil && !errors.Is(tc.err, tc.is) {
			t.Errorf("%s: errors.Is(%v, %v) is false", tc.name, tc.err, tc.is)
		}
	}
	var dnsErr *net.DNSError
	if !errors.As(notFound("x"), &dnsErr) || !dnsErr.IsNotFound {
		t.Error("notFound is not a DNS error with IsNotFound")
	}
}

// echoServer listens on network's loopback and echoes each connection
// until EOF; ok is false where that loopback is missing.
func echoServer(t *testing.T, network string) (addr string, ok bool) {
	host := "127.0.0.1:0"
	if network == "tcp6" {
		host = "[::1]:0"
	}
	ln, err := net.Listen(network, host)
	if err != nil {
		return "", false
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String(), true
}

// TestDial checks, natively, what the package documents for both builds
// (the wasip1 build is checked the same way end to end by examples/e2e):
// the connection's addresses, a half close, a read deadline.
func TestDial(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			addr, ok := echoServer(t, network)
			if !ok {
				t.Skipf("SKIP: no %s loopback here", network)
			}
			c, err := DialContext(context.Background(), "tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.RemoteAddr().String() != addr || c.LocalAddr().(*net.TCPAddr).Port == 0 {
				t.Errorf("addresses: local %v, remote %v; want a bound local address and remote %s", c.LocalAddr(), c.RemoteAddr(), addr)
			}
			io.WriteString(c, "ping")
			if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if got, err := io.ReadAll(c); string(got) != "ping" || err != nil {
				t.Errorf("after CloseWrite read %q, %v; want the echo, then EOF", got, err)
			}
			idle, err := Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer idle.Close()
			idle.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := idle.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("read past the deadline: %v, want os.ErrDeadlineExceeded", err)
			}
		})
	}
}

func TestDialCancelled(t *testing.T) {
	addr, _ := echoServer(t, "tcp4")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if c, err := (&Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr); !errors.Is(err, context.Canceled) {
		if c != nil {
			c.Close()
		}
		t.Errorf("dial with a cancelled context: %v, want context.Canceled", err)
	}
}

// TestTransportKeepAlive makes three requests through NewTransport: they
// share one connection.
func TestTransportKeepAlive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := map[string]bool{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		io.WriteString(w, "ok")
	})}
	go srv.Serve(ln)
	defer srv.Close()
	client := &http.Client{Transport: NewTransport(), Timeout: 10 * time.Second}
	for range 3 {
		resp, err := client.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if len(conns) != 1 {
		t.Errorf("3 requests on %d connections, want 1", len(conns))
	}
}
