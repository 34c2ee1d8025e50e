package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine/wazy"

	"github.com/wasiserve/wasiserve/internal/enginetest"
	"github.com/wasiserve/wasiserve/internal/syncbuf"
)

// server is `hostharness serve` run in-process by a test.
type server struct {
	base   string // http://127.0.0.1:PORT
	logs   *syncbuf.Buffer
	sighup chan os.Signal
	cancel context.CancelFunc
	code   chan int
}

// serveReloadable runs serve in this process with args (and --listen
// 127.0.0.1:0, the test cache) and waits for its serving line.
func serveReloadable(t *testing.T, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := serveInProcess(t, ctx, append([]string{"--listen", "127.0.0.1:0", "--cache-dir", enginetest.CacheDir()}, args...)...)
	m := servingLine.FindStringSubmatch(p.lines.Text())
	if m == nil {
		cancel()
		t.Fatalf("stdout line %q does not match %s", p.lines.Text(), servingLine)
	}
	go func() {
		for p.lines.Scan() {
		}
	}()
	s := &server{base: "http://" + m[2], logs: p.logs, sighup: p.sighup, cancel: cancel, code: p.code}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop interrupts serve (as SIGINT does) and checks that it exits 0.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case c := <-s.code:
		if c != 0 {
			t.Errorf("serve exited %d, want 0; logs:\n%s", c, s.logs.String())
		}
	case <-time.After(60 * time.Second):
		t.Errorf("serve did not stop; logs:\n%s", s.logs.String())
	}
}

// reload sends SIGHUP and waits until the log has one more line with
// want ("msg=reloaded" or "msg=\"reload failed\"").
func (s *server) reload(t *testing.T, want string) time.Duration {
	t.Helper()
	before := strings.Count(s.logs.String(), want)
	began := time.Now()
	s.sighup <- syscall.SIGHUP
	deadline := time.Now().Add(90 * time.Second)
	for strings.Count(s.logs.String(), want) == before {
		if time.Now().After(deadline) {
			t.Fatalf("no %q line after SIGHUP; logs:\n%s", want, s.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(began)
}

// replaceFile puts data at path by a rename, as a deploy does.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// fdTargets lists what this process's descriptors are open on.
func fdTargets() string {
	entries, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range entries {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		out = append(out, e.Name()+"="+target)
	}
	return strings.Join(out, " ")
}

// waitFDs waits (briefly: closes are asynchronous) until at most want
// descriptors are open and returns the count.
func waitFDs(t *testing.T, want int) int {
	t.Helper()
	n := enginetest.OpenFDs(t)
	for deadline := time.Now().Add(5 * time.Second); n > want && time.Now().Before(deadline); n = enginetest.OpenFDs(t) {
		time.Sleep(50 * time.Millisecond)
	}
	return n
}

// echoLoad keeps echo requests going, each with a random body whose
// SHA-256 the answer must match: workers on keep-alive connections and
// workers on a new connection per request.
type echoLoad struct {
	base                         string
	keepAlive, fresh             *http.Client
	ok, failed, refused, corrupt atomic.Int64
	marked                       atomic.Int64 // answers with X-Guest: marked
	errs                         syncbuf.Buffer
	stop                         chan struct{}
	wg                           sync.WaitGroup
}

// startLoad starts workers of each kind against base.
func startLoad(base string, workers int) *echoLoad {
	l := &echoLoad{base: base, stop: make(chan struct{}),
		keepAlive: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}},
		fresh:     &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	for range workers {
		for _, c := range []*http.Client{l.keepAlive, l.fresh} {
			l.wg.Go(func() {
				for {
					select {
					case <-l.stop:
						return
					default:
					}
					l.one(c)
				}
			})
		}
	}
	return l
}

// one sends one request. PUT, not POST: a keep-alive client may find the
// server closed its idle connection just as it sent a request (a guest
// that drains closes its idle connections, as any HTTP/1.1 server that
// stops does), and clients retry only idempotent requests then (RFC 9110
// section 9.2.2; Go's Transport does).
func (l *echoLoad) one(c *http.Client) (marked bool, err error) {
	body := make([]byte, 1+int(randUint32()%(32<<10)))
	rand.Read(body)
	want := sha256.Sum256(body)
	req, _ := http.NewRequest(http.MethodPut, l.base+"/", bytes.NewReader(body))
	resp, err := c.Do(req)
	if err != nil {
		l.failed.Add(1)
		if errors.Is(err, syscall.ECONNREFUSED) {
			l.refused.Add(1)
		}
		fmt.Fprintln(&l.errs, c.Transport.(*http.Transport).DisableKeepAlives, time.Now().Format("15:04:05.000"), err)
		return false, err
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case err != nil || resp.StatusCode != http.StatusOK:
		l.failed.Add(1)
		fmt.Fprintln(&l.errs, resp.Status, err)
		return false, fmt.Errorf("%s %v", resp.Status, err)
	case sha256.Sum256(got) != want:
		l.corrupt.Add(1)
		return false, errors.New("corrupted body")
	}
	l.ok.Add(1)
	marked = resp.Header.Get("X-Guest") == "marked"
	if marked {
		l.marked.Add(1)
	}
	return marked, nil
}

// finish stops the workers and closes their connections.
// waitServed waits until the load has had n more requests answered.
func (l *echoLoad) waitServed(t *testing.T, n int64) {
	t.Helper()
	want := l.ok.Load() + n
	for deadline := time.Now().Add(60 * time.Second); l.ok.Load() < want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the load had %d answers, want %d; errors:\n%s", l.ok.Load(), want, l.errs.String())
		}
	}
}

func (l *echoLoad) finish() {
	close(l.stop)
	l.wg.Wait()
	l.keepAlive.CloseIdleConnections()
}

func randUint32() uint32 {
	var b [4]byte
	rand.Read(b[:])
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// TestServeReloadUnderLoad keeps hash-verified echo load on serve
// (--instances 2, --restart) through 5 reloads on SIGHUP that alternate the
// echo guest and the marked guest, then 2 reloads to broken guests
// (garbage bytes, and a module that exits before it listens): no request
// may fail, no connection be refused, no body be corrupted; after each
// good reload every answer comes from the new guest; after the broken
// ones the old guest keeps serving; descriptors come back to where they
// were.
func TestServeReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "guest.wasm")
	guests := [][]byte{readFile(t, enginetest.Echo.Path(t)), readFile(t, enginetest.Marked.Path(t))}
	replaceFile(t, path, guests[0])
	// A first serve, stopped at once, sets up what an engine keeps for the
	// whole process (wasmtime's WASI runs on a runtime with descriptors
	// of its own, made at its first use), so that the baseline holds it.
	serveReloadable(t, "--instances", "2", path).stop(t)
	baseline := waitFDs(t, enginetest.OpenFDs(t))
	s := serveReloadable(t, "--instances", "2", "--restart", "--drain-timeout", "10s", path)
	serving := enginetest.OpenFDs(t)
	load := startLoad(s.base, 3)
	check := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	probe := &echoLoad{base: s.base, fresh: check}
	load.waitServed(t, 20) // the load runs
	for i := 1; i <= 5; i++ {
		replaceFile(t, path, guests[i%2])
		took := s.reload(t, "msg=reloaded")
		// The old instances have stopped: every new connection reaches
		// the new guest.
		for range 4 {
			marked, err := probe.one(check)
			if err != nil || marked != (i%2 == 1) {
				t.Fatalf("after reload %d: answer marked %v, err %v; want marked %v", i, marked, err, i%2 == 1)
			}
		}
		t.Logf("reload %d to the %s guest: %s; %d requests so far", i, []string{"echo", "marked"}[i%2], took.Round(time.Millisecond), load.ok.Load())
	}
	// The marked guest serves now. Broken replacements leave it serving.
	for _, broken := range [][]byte{[]byte("this is not a wasm module"), []byte("\x00asm\x01\x00\x00\x00")} {
		replaceFile(t, path, broken)
		s.reload(t, `msg="reload failed"`)
		for range 4 {
			if marked, err := probe.one(check); err != nil || !marked {
				t.Fatalf("after a broken reload: answer marked %v, err %v; want the old (marked) guest", marked, err)
			}
		}
	}
	load.waitServed(t, 20) // served after the last reload too
	load.finish()
	t.Logf("load: %d ok (%d from the marked guest), %d failed, %d refused, %d corrupted; probes: %d ok",
		load.ok.Load(), load.marked.Load(), load.failed.Load(), load.refused.Load(), load.corrupt.Load(), probe.ok.Load())
	if load.failed.Load() != 0 || load.refused.Load() != 0 || load.corrupt.Load() != 0 || probe.failed.Load() != 0 {
		t.Errorf("failed %d, refused %d, corrupted %d, want none; errors:\n%s", load.failed.Load(), load.refused.Load(), load.corrupt.Load(), load.errs.String())
	}
	if load.ok.Load() < 50 || load.marked.Load() == 0 || load.marked.Load() == load.ok.Load() {
		t.Errorf("%d answers, %d marked: want both guests to have served the load", load.ok.Load(), load.marked.Load())
	}
	if t.Failed() {
		for _, line := range strings.Split(s.logs.String(), "\n") {
			if !strings.Contains(line, "level=INFO") || strings.Contains(line, "reload") || strings.Contains(line, "drain") {
				t.Log(line)
			}
		}
	}
	if got := strings.Count(s.logs.String(), "msg=reloaded"); got != 5 {
		t.Errorf("%d reloads logged, want 5", got)
	}
	check.CloseIdleConnections()
	afterReloads := waitFDs(t, serving)
	if afterReloads > serving {
		t.Errorf("%d descriptors open after 7 reloads, %d before: reloads leak", afterReloads, serving)
	}
	s.stop(t)
	afterStop := waitFDs(t, baseline)
	if afterStop > baseline {
		t.Errorf("%d descriptors open after serve stopped, %d before it started: %s", afterStop, baseline, fdTargets())
	}
	t.Logf("descriptors: %d before serve, %d serving, %d after the reloads, %d after serve stopped", baseline, serving, afterReloads, afterStop)
}

// TestServeReloadWatch serves the echo guest on a Unix socket with
// --watch: replacing the file (by a rename, as a deploy does) switches the
// answers to the new guest, with the listener kept.
func TestServeReloadWatch(t *testing.T) {
	dir := t.TempDir()
	path, sock := filepath.Join(dir, "guest.wasm"), filepath.Join(dir, "echo.sock")
	replaceFile(t, path, readFile(t, enginetest.Echo.Path(t)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	var logs syncbuf.Buffer
	env := &cliEnv{engines: testEngines, stdout: stdoutW, stderr: &logs, logger: slog.New(slog.NewTextHandler(&logs, nil))}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, env, []string{"serve", "--listen", "unix:" + sock, "--watch", "--cache-dir", enginetest.CacheDir(), path})
		stdoutW.Close()
	}()
	if !bufio.NewScanner(stdoutR).Scan() {
		t.Fatalf("no serving line; exit %d, logs:\n%s", <-code, logs.String())
	}
	go io.Copy(io.Discard, stdoutR)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	probe := &echoLoad{base: "http://echo", fresh: client}
	if marked, err := probe.one(client); err != nil || marked {
		t.Fatalf("before the change: marked %v, err %v; want the echo guest", marked, err)
	}
	replaceFile(t, path, readFile(t, enginetest.Marked.Path(t)))
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(logs.String(), "msg=reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload after the file changed; logs:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if marked, err := probe.one(client); err != nil || !marked {
		t.Fatalf("after the change: marked %v, err %v; want the marked guest", marked, err)
	}
	if n := strings.Count(logs.String(), "guest file changed: reload requested"); n != 1 {
		t.Errorf("%d reloads requested for one rename, want 1 (debounced)", n)
	}
	cancel()
	if c := <-code; c != 0 {
		t.Errorf("exit %d, want 0; logs:\n%s", c, logs.String())
	}
}

// TestServeReloadNeedsHostListener sends SIGHUP to serve on an engine that
// binds its socket itself: the reload is refused with a log line that
// names an engine that can, and the guest keeps serving.
func TestServeReloadNeedsHostListener(t *testing.T) {
	s := serveReloadable(t, "--engine", wazy.SockName, enginetest.Echo.Path(t))
	s.sighup <- syscall.SIGHUP
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(s.logs.String(), "reload ignored: it needs an engine with a host-owned listener") {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal logged; logs:\n%s", s.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	probe := &echoLoad{base: s.base, fresh: &http.Client{Timeout: 30 * time.Second}}
	if _, err := probe.one(probe.fresh); err != nil {
		t.Fatalf("after the refused reload: %v", err)
	}
}

// TestServeReloadBacklog checks that connections waiting in the kernel's
// backlog when a reload drains the old guest go to the new guest instead
// of being reset: the old guest is held at --max-conns 1 by an idle
// connection (with --reclaim off, so that the host keeps it), so that it
// accepts none of them.
func TestServeReloadBacklog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "guest.wasm")
	replaceFile(t, path, readFile(t, enginetest.Echo.Path(t)))
	s := serveReloadable(t, "--max-conns", "1", "--reclaim", "off", "--metrics", "127.0.0.1:0", path)
	metricsURL := metricsLine.FindStringSubmatch(s.logs.String())[1]
	hold, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	waitSample(t, metricsURL, `wasiserve_connections_open{instance="0"}`, func(v float64) bool { return v == 1 })
	const queued = 5
	// dialed hears of each connection the kernel completed: it waits in
	// the backlog, as the old guest accepts none.
	dialed := make(chan struct{}, queued)
	var dialer net.Dialer
	transport := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, network, addr)
		if err == nil {
			dialed <- struct{}{}
		}
		return conn, err
	}}
	probe := &echoLoad{base: s.base, fresh: &http.Client{Timeout: 60 * time.Second, Transport: transport}}
	results := make(chan error, queued)
	for range queued {
		go func() {
			marked, err := probe.one(probe.fresh)
			if err == nil && !marked {
				err = errors.New("answered by the old guest")
			}
			results <- err
		}()
	}
	for range queued {
		<-dialed
	}
	if st := scrape(t, metricsURL); st[`wasiserve_connections_accepted_total{instance="0"}`] != 1 {
		t.Fatalf("the old guest accepted %v connections, want only the one that holds it", st[`wasiserve_connections_accepted_total{instance="0"}`])
	}
	replaceFile(t, path, readFile(t, enginetest.Marked.Path(t)))
	s.reload(t, "msg=reloaded")
	for range queued {
		if err := <-results; err != nil {
			t.Errorf("a connection queued during the reload: %v", err)
		}
	}
}
