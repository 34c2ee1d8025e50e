package builtin_test

import (
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/guest/echo"
	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/enginetest"
)

// PROXY headers a balancer sends, for a client at 203.0.113.7:4242 (and
// [2001:db8::7]:4242) that connected to 198.51.100.1:80.
const (
	proxyV2TCP4  = "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xcb\x00\x71\x07\xc6\x33\x64\x01\x10\x92\x00\x50"
	proxyV2LOCAL = "\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"
	proxyV1TCP6  = "PROXY TCP6 2001:db8::7 2001:db8::1 4242 80\r\n"
	listenerGET  = "GET /listener HTTP/1.1\r\nHost: guest\r\nConnection: close\r\n\r\n"
)

// rawGET connects to inst from 127.0.0.1, sends first and then GET
// /listener, and returns the whole response (empty when the host closed
// the connection without one) and the client's own address.
func rawGET(t *testing.T, inst *engine.Instance, first string) (string, string) {
	t.Helper()
	c, err := net.Dial("tcp", inst.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, first+listenerGET); err != nil {
		t.Fatal(err)
	}
	resp, err := io.ReadAll(c)
	if err != nil && !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("reading the response: %v (read %q)", err, resp)
	}
	return string(resp), c.LocalAddr().String()
}

// reportOf decodes the echo guest's GET /listener answer.
func reportOf(t *testing.T, resp string) echo.Report {
	t.Helper()
	head, body, _ := strings.Cut(resp, "\r\n\r\n")
	var report echo.Report
	if !strings.HasPrefix(head, "HTTP/1.1 200 ") || json.Unmarshal([]byte(body), &report) != nil {
		t.Fatalf("GET /listener: %q, want 200 and the report", resp)
	}
	return report
}

// TestProxyFrom serves the echo guest on every engine that takes PROXY
// headers: a trusted peer's header (v2 or v1) is the client address the
// guest sees, a LOCAL one keeps the peer's own, a trusted peer without a
// header is closed unanswered; without ProxyFrom, or from a peer it does
// not trust, the same header is the client's data, which the guest
// answers with 400.
func TestProxyFrom(t *testing.T) {
	names := engines.With(engine.ProxyProtocol)
	if len(names) < 2 {
		t.Fatalf("engines with %s: %v, want both of the project's", engine.ProxyProtocol, names)
	}
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	elsewhere := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			eng := newEngine(t, name)
			wasm := enginetest.Echo.Path(t)
			t.Run("trusted", func(t *testing.T) {
				inst := serve(t, eng, wasm, engine.Config{ProxyFrom: loopback})
				for _, tc := range []struct{ name, header, remote, local string }{
					{"v2 TCP4", proxyV2TCP4, "203.0.113.7:4242", "198.51.100.1:80"},
					{"v1 TCP6", proxyV1TCP6, "[2001:db8::7]:4242", "[2001:db8::1]:80"},
				} {
					resp, _ := rawGET(t, inst, tc.header)
					if r := reportOf(t, resp); r.RemoteAddr != tc.remote || r.LocalAddr != tc.local {
						t.Fatalf("%s: guest sees %s -> %s, want %s -> %s", tc.name, r.RemoteAddr, r.LocalAddr, tc.remote, tc.local)
					}
				}
				resp, client := rawGET(t, inst, proxyV2LOCAL)
				if r := reportOf(t, resp); r.RemoteAddr != client || r.LocalAddr != inst.Addr {
					t.Fatalf("LOCAL: guest sees %s -> %s, want the connection's own %s -> %s", r.RemoteAddr, r.LocalAddr, client, inst.Addr)
				}
				if resp, _ := rawGET(t, inst, ""); resp != "" {
					t.Fatalf("trusted peer without a header: %q, want the connection closed unanswered", resp)
				}
				if resp, _ := rawGET(t, inst, "PROXY TCP4 203.0.113.777 198.51.100.1 4242 80\r\n"); resp != "" {
					t.Fatalf("trusted peer with a malformed header: %q, want the connection closed unanswered", resp)
				}
			})
			for _, tc := range []struct {
				name  string
				trust []netip.Prefix
			}{{"without ProxyFrom", nil}, {"untrusted peer", elsewhere}} {
				t.Run(tc.name, func(t *testing.T) {
					inst := serve(t, eng, wasm, engine.Config{ProxyFrom: tc.trust})
					if resp, _ := rawGET(t, inst, proxyV2TCP4); !strings.HasPrefix(resp, "HTTP/1.1 400 ") || strings.Contains(resp, "203.0.113.7") {
						t.Fatalf("a header from a peer not trusted: %q, want 400 Bad Request", resp)
					}
					resp, client := rawGET(t, inst, "")
					if r := reportOf(t, resp); r.RemoteAddr != client {
						t.Fatalf("guest sees %s, want the client's own %s", r.RemoteAddr, client)
					}
				})
			}
		})
	}
}

// TestProxyFromNeedsTCP: a Unix listener's peers have no IP address to
// trust, so the run fails at once, saying so.
func TestProxyFromNeedsTCP(t *testing.T) {
	ln, err := enginetest.Listen(t, "unix:"+t.TempDir()+"/s.sock")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range engines.With(engine.ProxyProtocol) {
		t.Run(name, func(t *testing.T) {
			_, err := enginetest.Serve(t, newEngine(t, name), enginetest.Echo.Path(t),
				engine.Config{Listener: ln, ProxyFrom: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
			if err == nil || !strings.Contains(err.Error(), "needs a TCP listener") {
				t.Fatalf("serve on a Unix listener with ProxyFrom: %v, want it refused", err)
			}
		})
	}
}
