package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine/wazy"
	"github.com/wasiserve/wasiserve/internal/enginetest"
)

// adminGet GETs the admin listener's path and returns the status code
// and the body's line.
func adminGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// TestServeShutdownDelaySignals runs serve with --admin and a long
// --shutdown-delay, with a request in flight: SIGTERM turns /readyz to
// 503 "draining" while the guest still answers new requests; a second
// SIGTERM ends the delay instead of the process, the drain then waits
// for the request in flight, and serve exits 0 once it is answered.
func TestServeShutdownDelaySignals(t *testing.T) {
	p := startServe(t, nil, "--engine", wazy.Name, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
		"--shutdown-delay", "1h", "--drain-timeout", "1m", "--cache-dir", enginetest.CacheDir(), enginetest.Echo.Path(t))
	url := p.servingURL(t)
	m := metricsLine.FindStringSubmatch(p.logs.String())
	if m == nil {
		t.Fatalf("no admin line in the logs:\n%s", p.logs.String())
	}
	admin := strings.TrimSuffix(m[1], "/metrics")
	for _, path := range []string{"/livez", "/readyz"} {
		if code, body := adminGet(t, admin+path); code != http.StatusOK || body != "ok" {
			t.Fatalf("GET %s: %d %q, want 200 ok", path, code, body)
		}
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	finish := enginetest.StartEcho(t, conn)

	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitLog(t, "shutdown delay: not ready, still serving")
	if code, body := adminGet(t, admin+"/readyz"); code != http.StatusServiceUnavailable || body != "draining" {
		t.Fatalf("GET /readyz during the delay: %d %q, want 503 draining", code, body)
	}
	if code, _ := adminGet(t, admin+"/livez"); code != http.StatusOK {
		t.Fatalf("GET /livez during the delay: %d, want 200", code)
	}
	if got := post(t, url, "during the delay"); got != "during the delay" {
		t.Fatalf("echo during the delay: %q", got)
	}
	if strings.Contains(p.logs.String(), "msg=draining") {
		t.Fatalf("the drain began during the delay; logs:\n%s", p.logs.String())
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitLog(t, "second signal: shutdown delay ended")
	p.waitLog(t, "msg=draining")
	if rest := finish(); rest != "-last" {
		t.Errorf("the request in flight ended with %q, want -last", rest)
	}
	if code := p.wait(t, time.Minute); code != 0 {
		t.Errorf("exit %d, want 0; logs:\n%s", code, p.logs.String())
	}
}
