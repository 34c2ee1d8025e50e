package builtin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/wasiserve/wasiserve/internal/enginetest"

	wazyrt "github.com/samyfodil/wazy"

	"github.com/wasiserve/wasiserve/guest/echo"
	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/syncbuf"
)

// freeAddr returns a loopback address (network "tcp4" or "tcp6") with a
// port that was free a moment ago, or skips the test when the host has no
// such loopback.
func freeAddr(t *testing.T, network, host string) string {
	t.Helper()
	ln, err := net.Listen(network, net.JoinHostPort(host, "0"))
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// upstream is a local HTTP server that counts the connections it accepts.
type upstream struct {
	*httptest.Server
	conns atomic.Int32
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "upstream says hello to "+r.URL.Path)
	}))
	u.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.conns.Add(1)
		}
	}
	u.Start()
	t.Cleanup(u.Close)
	return u
}

// port is the upstream's port.
func (u *upstream) port() string {
	_, port, _ := net.SplitHostPort(u.Listener.Addr().String())
	return port
}

// fetch asks the guest at base to fetch target and returns the status and
// body.
func fetch(t *testing.T, base, target string) (int, string) {
	t.Helper()
	resp, body := get(t, base+"/fetch?url="+url.QueryEscape(target))
	return resp.StatusCode, string(body)
}

// TestSockExtListen serves the socket-extension guest on an address it
// binds itself (LISTEN_ADDR), allowed by AllowListen, over IPv4 and IPv6.
func TestSockExtListen(t *testing.T) {
	for _, name := range socketEngines {
		t.Run(name, func(t *testing.T) {
			eng := newEngine(t, name)
			for _, tc := range []struct{ network, host string }{{"tcp4", "127.0.0.1"}, {"tcp6", "::1"}} {
				t.Run(tc.network, func(t *testing.T) {
					addr := freeAddr(t, tc.network, tc.host)
					serve(t, eng, enginetest.EchoWasmEdge.Path(t), engine.Config{
						Env:         []string{"LISTEN_ADDR=" + addr},
						AllowListen: []string{addr},
					})
					base := "http://" + addr
					resp, body := post(t, base+"/any/path", "text/plain", []byte("echo over "+tc.network))
					if resp.StatusCode != http.StatusOK || string(body) != "echo over "+tc.network {
						t.Fatalf("echo on the guest's own listener: %d %q", resp.StatusCode, body)
					}
					_, body = get(t, base+"/listener")
					var report echo.Report
					if err := json.Unmarshal(body, &report); err != nil {
						t.Fatal(err)
					}
					if report.Listener.Source != "address" || report.Listener.Addr != addr {
						t.Errorf("GET /listener: %+v, want source address at %s", report.Listener, addr)
					}
				})
			}
		})
	}
}

// TestSockExtFetch has the guest fetch from a local server that
// AllowDial allows, by address and by a name that sock_getaddrinfo
// resolves on the host.
func TestSockExtFetch(t *testing.T) {
	for _, name := range socketEngines {
		t.Run(name, func(t *testing.T) {
			up := newUpstream(t)
			inst := serve(t, newEngine(t, name), enginetest.EchoWasmEdge.Path(t), engine.Config{
				AllowDial: []string{"127.0.0.1:" + up.port(), "localhost:" + up.port()},
			})
			for _, target := range []string{up.URL + "/by-address", "http://localhost:" + up.port() + "/by-name"} {
				status, body := fetch(t, inst.URL(), target)
				want := "upstream says hello to /" + strings.SplitN(target, "/", 4)[3]
				if status != http.StatusOK || body != want {
					t.Errorf("fetch %s: %d %q, want 200 %q", target, status, body, want)
				}
			}
			// The echo service is unchanged beside the new route.
			if resp, body := post(t, inst.URL()+"/fetch", "text/plain", []byte("posted")); resp.StatusCode != http.StatusOK || string(body) != "posted" {
				t.Errorf("POST /fetch: %d %q, want the echo", resp.StatusCode, body)
			}
		})
	}
}

// TestSockExtDialDenied checks that dials the policy does not allow fail
// with EACCES (a 502 from the guest) without a connection reaching the
// server, that names no pattern allows are not resolved, and that each
// denial is logged.
func TestSockExtDialDenied(t *testing.T) {
	up := newUpstream(t)
	for _, tc := range []struct {
		name     string
		allow    []string
		target   string
		wantBody string
		wantLog  string
	}{
		{"no pattern", nil, up.URL + "/", "connect: Permission denied", "op=connect addr=" + up.Listener.Addr().String()},
		{"other port", []string{"127.0.0.1:1"}, up.URL + "/", "connect: Permission denied", "denied by the dial policy"},
		{"name not allowed", []string{"127.0.0.1:" + up.port()}, "http://localhost:" + up.port() + "/", "lookup localhost", "op=getaddrinfo name=localhost"},
	} {
		for _, name := range socketEngines {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				var logs syncbuf.Buffer
				inst := serve(t, newEngine(t, name), enginetest.EchoWasmEdge.Path(t), engine.Config{
					AllowDial: tc.allow,
					Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
				})
				status, body := fetch(t, inst.URL(), tc.target)
				if status != http.StatusBadGateway || !strings.Contains(body, tc.wantBody) {
					t.Errorf("fetch %s: %d %q, want 502 with %q", tc.target, status, body, tc.wantBody)
				}
				if !strings.Contains(logs.String(), tc.wantLog) {
					t.Errorf("log lacks %q:\n%s", tc.wantLog, logs.String())
				}
			})
		}
	}
	if n := up.conns.Load(); n != 0 {
		t.Errorf("the upstream saw %d connections, want none", n)
	}
}

// TestSockExtBindDenied checks that the guest cannot listen on an address
// no AllowListen pattern allows: its listen fails with EACCES and it exits.
func TestSockExtBindDenied(t *testing.T) {
	for _, name := range socketEngines {
		t.Run(name, func(t *testing.T) {
			addr := freeAddr(t, "tcp4", "127.0.0.1")
			_, port, _ := net.SplitHostPort(addr)
			other, _ := strconv.Atoi(port)
			for _, allow := range [][]string{nil, {fmt.Sprintf("127.0.0.1:%d", other+1)}, {"[::1]:" + port}} {
				t.Run(fmt.Sprint(allow), func(t *testing.T) {
					var stderr syncbuf.Buffer
					err := runToExit(t, name, enginetest.EchoWasmEdge.Path(t), engine.Config{
						Env:         []string{"LISTEN_ADDR=" + addr},
						AllowListen: allow,
						Stderr:      &stderr,
					})
					var exit *engine.ExitError
					if !errors.As(err, &exit) || !strings.Contains(stderr.String(), "bind: Permission denied") {
						t.Fatalf("guest listening on %s with AllowListen %q: %v, stderr:\n%s\nwant an exit after bind: Permission denied", addr, allow, err, stderr.String())
					}
					if fd, ok := boundHere(addr); ok {
						t.Errorf("fd %d of this process is bound to %s after the denied bind", fd, addr)
					}
				})
			}
		})
	}
}

// TestSockExtRefused checks that the engines without the socket
// extensions refuse the variant at Load, naming an extension import, and
// refuse the policy fields at Run.
func TestSockExtRefused(t *testing.T) {
	for _, name := range engines.EmbeddedNames() {
		if capabilitiesOf(name).Has(engine.HostListener) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			_, err := newEngine(t, name).Load(context.Background(), enginetest.EchoWasmEdge.Path(t))
			var missing *engine.MissingImportError
			if !errors.As(err, &missing) || !missing.SocketExtension() || !strings.Contains(err.Error(), "wasi_snapshot_preview1.sock_") {
				t.Errorf("Load of the socket-extension guest: %v, want an *engine.MissingImportError naming a sock_ import", err)
			}
			wantUnsupported(t, runToExit(t, name, enginetest.Echo.Path(t), engine.Config{AllowDial: []string{"*:*"}}), engine.SocketExtensions, "AllowDial")
			wantUnsupported(t, runToExit(t, name, enginetest.Echo.Path(t), engine.Config{AllowListen: []string{"*:*"}}), engine.SocketExtensions, "AllowListen")
		})
	}
}

// TestDefaultGuestImports checks that the default echo guest imports no
// socket extension, so that every runtime can run it, and that the
// variant does.
func TestDefaultGuestImports(t *testing.T) {
	ctx := context.Background()
	rt := wazyrt.NewRuntime(ctx)
	defer rt.Close(ctx)
	for _, tc := range []struct {
		wasm string
		want bool
	}{{enginetest.Echo.Path(t), false}, {enginetest.EchoWasmEdge.Path(t), true}} {
		wasm, err := os.ReadFile(tc.wasm)
		if err != nil {
			t.Fatal(err)
		}
		compiled, err := rt.CompileModule(ctx, wasm)
		if err != nil {
			t.Fatal(err)
		}
		got := false
		for _, f := range compiled.ImportedFunctions() {
			if _, name, _ := f.Import(); name == "sock_open" || name == "sock_connect" {
				got = true
			}
		}
		if got != tc.want {
			t.Errorf("%s imports the socket extensions: %v, want %v", tc.wasm, got, tc.want)
		}
	}
}

// boundHere finds a socket of this process bound to the TCP address addr.
// (Dialling addr would also see other processes, which may take a port
// freeAddr found free.)
func boundHere(addr string) (int, bool) {
	want, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return -1, false
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1, false
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		sa, err := syscall.Getsockname(fd)
		if err != nil {
			continue
		}
		if in4, ok := sa.(*syscall.SockaddrInet4); ok && in4.Port == want.Port && net.IP(in4.Addr[:]).Equal(want.IP) {
			return fd, true
		}
	}
	return -1, false
}
