package builtin_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/guest/echo"
	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/enginetest"
	"github.com/wasiserve/wasiserve/internal/syncbuf"
)

// haproxyConfig puts haproxy on front (a loopback port) in front of the
// guest at backend, with send-proxy-v2 or send-proxy on the data and
// health-check connections and an HTTP check of /healthz; stats answers
// on a Unix socket.
const haproxyConfig = `global
    stats socket %s level admin
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe
    bind %s
    default_backend guests
backend guests
    option httpchk GET /healthz
    server guest %s %s check inter 200ms rise 1 fall 1
`

// TestHAProxy serves the echo guest behind a real haproxy with
// send-proxy-v2 and with send-proxy (version 1), on every engine that
// reads the headers: haproxy's health checks pass (they carry a header
// too), and a client connecting to haproxy from 127.0.0.2 is what the
// guest sees, although haproxy connects from 127.0.0.1, the trusted
// address.
func TestHAProxy(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy is not installed (Debian: apt-get install haproxy):", err)
	}
	for _, name := range engines.With(engine.ProxyProtocol) {
		for _, send := range []string{"send-proxy-v2", "send-proxy"} {
			t.Run(name+"/"+send, func(t *testing.T) { testHAProxy(t, haproxy, name, send) })
		}
	}
}

// testHAProxy is one TestHAProxy case: engine name, haproxy sending
// its header with send.
func testHAProxy(t *testing.T, haproxy, name, send string) {
	inst := serve(t, newEngine(t, name), enginetest.Echo.Path(t),
		engine.Config{ProxyFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	front := freeAddr(t, "tcp4", "127.0.0.1")
	dir := t.TempDir()
	stats := filepath.Join(dir, "stats.sock")
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, haproxyConfig, stats, front, inst.Addr, send), 0o600); err != nil {
		t.Fatal(err)
	}
	var out syncbuf.Buffer
	cmd := exec.Command(haproxy, "-db", "-f", cfg)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for status := ""; status != "L7OK"; status = checkStatus(stats) {
		if time.Now().After(deadline) {
			t.Fatalf("haproxy's health check of the guest: %q, want L7OK", status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext,
	}}
	for i := range 3 {
		resp, err := client.Get("http://" + front + "/listener")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var report echo.Report
		if err := json.Unmarshal(body, &report); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /listener through haproxy: %s %q (%v)", resp.Status, body, err)
		}
		if host, _, _ := net.SplitHostPort(report.RemoteAddr); host != "127.0.0.2" {
			t.Fatalf("request %d through haproxy: guest sees %s, want the client at 127.0.0.2", i, report.RemoteAddr)
		}
	}
}

// checkStatus is the check_status of the backend's server in haproxy's
// "show stat", or "" while it cannot be read.
func checkStatus(statsSocket string) string {
	c, err := net.DialTimeout("unix", statsSocket, time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "show stat\n")
	sc := bufio.NewScanner(c)
	var columns []string
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ",")
		if strings.HasPrefix(sc.Text(), "# ") {
			columns = strings.Split(strings.TrimPrefix(sc.Text(), "# "), ",")
			continue
		}
		if len(fields) < 2 || fields[0] != "guests" || fields[1] != "guest" {
			continue
		}
		for i, col := range columns {
			if col == "check_status" && i < len(fields) {
				return strings.TrimPrefix(fields[i], "* ")
			}
		}
	}
	return ""
}
