package builtin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine/wazy"

	"github.com/wasiserve/wasiserve/guest/echo"
	"github.com/wasiserve/wasiserve/guest/wasisock"
	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/enginetest"
)

// addrClient is an HTTP client to one instance that records the local and
// remote address of every connection it makes.
type addrClient struct {
	*http.Client
	local, remote net.Addr
}

func newAddrClient(inst *engine.Instance) *addrClient {
	c := &addrClient{}
	c.Client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, inst.Network, inst.Addr)
			if err == nil {
				c.local, c.remote = conn.LocalAddr(), conn.RemoteAddr()
			}
			return conn, err
		},
	}}
	return c
}

// listenerReport asks the echo guest for GET /listener.
func (c *addrClient) listenerReport(t *testing.T) echo.Report {
	t.Helper()
	resp, err := c.Get("http://guest/listener")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var report echo.Report
	if err := json.Unmarshal(body, &report); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /listener: %d %s (%v)", resp.StatusCode, body, err)
	}
	return report
}

// TestGuestSeesAddresses serves the echo guest on every engine whose host
// owns the accepts and checks that its RemoteAddr, LocalAddr and
// ln.Addr() are what the client and the host see, over IPv4, IPv6 and a
// Unix socket. The operator's own values of the contract's variables are
// dropped: the host alone says what it does.
func TestGuestSeesAddresses(t *testing.T) {
	for _, name := range engines.With(engine.HostListener) {
		t.Run(name, func(t *testing.T) { testGuestSeesAddresses(t, newEngine(t, name)) })
	}
}

func testGuestSeesAddresses(t *testing.T, eng engine.Engine) {
	for _, tc := range []struct{ name, listen string }{
		{"IPv4", "127.0.0.1:0"},
		{"IPv6", "[::1]:0"},
		{"Unix", "unix:" + filepath.Join(t.TempDir(), "echo.sock")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := enginetest.Listen(t, tc.listen)
			if err != nil && tc.name == "IPv6" {
				t.Skip("no IPv6 loopback here:", err)
			}
			if err != nil {
				t.Fatal(err)
			}
			cfg := engine.Config{
				Listener: ln,
				Env:      []string{wasisock.EnvListenAddr + "=198.51.100.7:1", wasisock.EnvProxy + "=v1"},
			}
			inst := serve(t, eng, enginetest.Echo.Path(t), cfg)
			c := newAddrClient(inst)
			for i := range 2 { // two connections: each has its own header
				report := c.listenerReport(t)
				if report.RemoteAddr != c.local.String() || report.LocalAddr != c.remote.String() || report.Listener.Addr != inst.Addr {
					t.Fatalf("connection %d: guest sees remote %q, local %q, listener %q; the client is %s, connected to %s; the host listens on %s",
						i, report.RemoteAddr, report.LocalAddr, report.Listener.Addr, c.local, c.remote, inst.Addr)
				}
			}
		})
	}
}

// TestClientCannotSpoofAddress sends a PROXY header of the client's own
// before its request: the guest reads the host's header first, so the
// client's is taken as a (bad) request, never as its address.
func TestClientCannotSpoofAddress(t *testing.T) {
	inst := serve(t, newEngine(t, wazy.Name), enginetest.Echo.Path(t), engine.Config{})
	conn, err := net.Dial("tcp", inst.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	spoof := "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x01\xc6\x33\x64\x07\x10\x92\x1f\x90"
	fmt.Fprintf(conn, "%sGET /listener HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", spoof)
	resp, _ := io.ReadAll(conn)
	if strings.Contains(string(resp), "192.0.2.1") || !strings.HasPrefix(string(resp), "HTTP/1.1 400 ") {
		t.Fatalf("a client's own PROXY header got %q; want 400 Bad Request", resp)
	}
}

// TestOtherEnginesTellNothing: where the engine does not own the accepts,
// the guest gets no header and none of the contract's variables, even
// when the operator passes them: it serves, with WASI's empty addresses.
func TestOtherEnginesTellNothing(t *testing.T) {
	for _, name := range engines.EmbeddedNames() {
		if capabilitiesOf(name).Has(engine.HostListener) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			inst := serve(t, newEngine(t, name), enginetest.Echo.Path(t), engine.Config{Env: []string{wasisock.EnvProxy + "=" + wasisock.ProxyV2}})
			report := newAddrClient(inst).listenerReport(t)
			if report.Listener.Addr != "" {
				t.Fatalf("listener address %q: want none told", report.Listener.Addr)
			}
		})
	}
}
