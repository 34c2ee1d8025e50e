package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/internal/enginetest"
)

// metricsLine is serve's log line with the metrics address.
var metricsLine = regexp.MustCompile(`msg="serving metrics" at=(http://127\.0\.0\.1:\d+/metrics)`)

// scrape fetches url and returns each sample, keyed by its name and
// labels as the text format prints them.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET %s: %s, Content-Type %q", url, resp.Status, ct)
	}
	samples := map[string]float64{}
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		line := lines.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return samples
}

// waitSample scrapes until ok accepts the sample key's value.
func waitSample(t *testing.T, url, key string, ok func(float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := scrape(t, url)
		if v, found := s[key]; found && ok(v) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (present %v) after 30s", key, s[key], s[key] != 0)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeMetrics scrapes --metrics while load, the accept queue held at
// --max-conns, a denied dial, a reload, a failed reload and a trap with
// --restart happen, and checks that the counters move with them.
func TestServeMetrics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "guest.wasm")
	replaceFile(t, path, readFile(t, enginetest.EchoWasmEdge.Path(t)))
	s := serveReloadable(t, "--restart", "--max-conns", "2", "--metrics", "127.0.0.1:0", path)
	m := metricsLine.FindStringSubmatch(s.logs.String())
	if m == nil {
		t.Fatalf("no metrics line in the logs:\n%s", s.logs.String())
	}
	metricsURL := m[1]
	sum := sha256.Sum256(readFile(t, enginetest.EchoWasmEdge.Path(t)))
	before := scrape(t, metricsURL)
	build := `wasiserve_build_info{engine="` + defaultEngineName() + `",guest="` + path + `",guest_sha256="` + hex.EncodeToString(sum[:]) + `"}`
	for key, want := range map[string]float64{
		build: 1, `wasiserve_instance_starts_total{instance="0"}`: 1, `wasiserve_instances_running{instance="0"}`: 1,
		`wasiserve_reloads_total{result="ok"}`: 0, `wasiserve_draining`: 0,
	} {
		if got, ok := before[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if mem := before[`wasiserve_guest_memory_bytes{instance="0"}`]; mem < 1<<20 {
		t.Errorf("guest memory %v bytes, want the echo guest's few MiB", mem)
	}
	if before[`process_open_fds`] == 0 {
		t.Error("no process_open_fds: the process collector is missing")
	}

	// Load: 20 echoes of 1 KiB each.
	load := &echoLoad{base: s.base, fresh: &http.Client{Timeout: 30 * time.Second}}
	for range 20 {
		if _, err := load.one(load.fresh); err != nil {
			t.Fatal(err)
		}
	}
	after := scrape(t, metricsURL)
	for _, name := range []string{"connections_accepted_total", "socket_read_bytes_total", "socket_written_bytes_total"} {
		key := `wasiserve_` + name + `{instance="0"}`
		if after[key] <= before[key] {
			t.Errorf("%s did not move with load: %v then %v", key, before[key], after[key])
		}
	}
	if got := after[`wasiserve_socket_written_bytes_total{instance="0"}`] - before[`wasiserve_socket_written_bytes_total{instance="0"}`]; got < 20 {
		t.Errorf("%v bytes written for 20 echoes", got)
	}
	load.fresh.CloseIdleConnections()

	// The accept queue held: two idle connections reach --max-conns 2.
	var idle []net.Conn
	for range 2 {
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		idle = append(idle, conn)
	}
	held := waitSample(t, metricsURL, `wasiserve_accept_holds_total{instance="0"}`, func(v float64) bool { return v >= 1 })
	if open := held[`wasiserve_connections_open{instance="0"}`]; open != 2 {
		t.Errorf("%v connections open at the limit, want 2", open)
	}
	// A third client waits: the host reclaims an idle one for it.
	third, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	idle = append(idle, third)
	reclaimed := waitSample(t, metricsURL, `wasiserve_connections_reclaimed_total{instance="0",reason="idle"}`, func(v float64) bool { return v >= 1 })
	if slow := reclaimed[`wasiserve_connections_reclaimed_total{instance="0",reason="slow"}`]; slow != 0 {
		t.Errorf("%v idle connections reclaimed as slow", slow)
	}
	for _, c := range idle {
		c.Close()
	}
	waitSample(t, metricsURL, `wasiserve_connections_open{instance="0"}`, func(v float64) bool { return v == 0 })

	// A denied dial: the guest answers 502.
	resp, err := http.Get(s.base + "/fetch?url=" + url.QueryEscape("http://127.0.0.1:1/"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("denied fetch: %s, want 502", resp.Status)
	}
	waitSample(t, metricsURL, `wasiserve_socket_denials_total{instance="0",policy="dial"}`, func(v float64) bool { return v >= 1 })

	// A reload, a failed one, and a trap after it, with --restart.
	replaceFile(t, path, readFile(t, enginetest.Marked.Path(t)))
	s.reload(t, "msg=reloaded")
	replaceFile(t, path, []byte("garbage"))
	s.reload(t, `msg="reload failed"`)
	if resp, err := http.Get(s.base + "/trap"); err == nil {
		resp.Body.Close()
		t.Errorf("GET /trap answered %s, want the guest to trap", resp.Status)
	}
	final := waitSample(t, metricsURL, `wasiserve_instance_starts_total{instance="0"}`, func(v float64) bool { return v >= 3 })
	for key, want := range map[string]float64{
		`wasiserve_reloads_total{result="ok"}`: 1, `wasiserve_reloads_total{result="failed"}`: 1,
		`wasiserve_instance_traps_total{instance="0"}`: 1, `wasiserve_instance_exits_total{instance="0"}`: 1,
		`wasiserve_instance_restarts_total{instance="0"}`: 1,
	} {
		if got := final[key]; got != want {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
	if final[`wasiserve_connections_accepted_total{instance="0"}`] < after[`wasiserve_connections_accepted_total{instance="0"}`] {
		t.Error("connections_accepted_total went down across the reload: counters must add up")
	}
}
