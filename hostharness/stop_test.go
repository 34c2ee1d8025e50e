package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine/wazy"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/enginetest"
	"github.com/wasiserve/wasiserve/internal/sdnotify"
	"github.com/wasiserve/wasiserve/internal/syncbuf"
)

// serveProcess is `hostharness serve` running as a process of its own.
type serveProcess struct {
	cmd    *exec.Cmd
	stdout *bufio.Scanner
	logs   *syncbuf.Buffer
	exited chan struct{}
	err    error // cmd.Wait's, once exited is closed
}

// startServe starts the hostharness binary with args (after "serve") and
// env added to the test's environment (less any NOTIFY_SOCKET of its own);
// it is killed when the test ends.
func startServe(t *testing.T, env []string, args ...string) *serveProcess {
	t.Helper()
	cmd := exec.Command(harness.Path(t), append([]string{"serve"}, args...)...)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, sdnotify.EnvVar+"=")
	}), env...)
	p := &serveProcess{cmd: cmd, logs: &syncbuf.Buffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdout = bufio.NewScanner(stdout)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		// Wait closes stdout once the process exits: read what is
		// left first (Scan, before).
		defer close(p.exited)
		p.err = cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// servingURL reads the first stdout line, which must be the serving line
// whatever the guest prints, and returns its URL.
func (p *serveProcess) servingURL(t *testing.T) string {
	t.Helper()
	if !p.stdout.Scan() {
		<-p.exited
		t.Fatalf("no serving line (%v); logs:\n%s", p.err, p.logs.String())
	}
	m := servingLine.FindStringSubmatch(p.stdout.Text())
	if m == nil {
		t.Fatalf("first stdout line %q is not the serving line; logs:\n%s", p.stdout.Text(), p.logs.String())
	}
	return "http://" + m[2]
}

// wait waits at most d for the process to exit and returns its exit code.
func (p *serveProcess) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		t.Fatalf("serve still running after %s; logs:\n%s", d, p.logs.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// post POSTs body to url and returns the answer.
func post(t *testing.T, url, body string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(got)
}

// TestServeStopFatalGuest stops, with SIGTERM, a guest that serves with
// log.Fatal(http.Serve(ln, h)): its accept fails once the host stopped
// the listener and it exits 1, which is an ordinary stop: serve must exit
// 0 and report the guest's status at info level.
func TestServeStopFatalGuest(t *testing.T) {
	for _, name := range testEngines.EmbeddedNames() {
		t.Run(name, func(t *testing.T) {
			p := startServe(t, nil, "--engine", name, "--listen", "127.0.0.1:0", "--cache-dir", enginetest.CacheDir(), enginetest.Fatal.Path(t))
			url := p.servingURL(t)
			if got := post(t, url, "hi"); got != "fatal:hi" {
				t.Fatalf("guest answered %q", got)
			}
			p.cmd.Process.Signal(syscall.SIGTERM)
			if code := p.wait(t, 30*time.Second); code != 0 {
				t.Fatalf("exit %d after SIGTERM, want 0; logs:\n%s", code, p.logs.String())
			}
			logs := p.logs.String()
			if strings.Contains(logs, "level=ERROR") {
				t.Errorf("an ordinary stop logged an error:\n%s", logs)
			}
			if capabilitiesOf(name).Has(engine.Drain) && !strings.Contains(logs, `level=INFO msg="guest exited after the listener stopped" code=1`) {
				t.Errorf("the guest's exit status is not logged at info level:\n%s", logs)
			}
		})
	}
}

// TestServeGuestFailsOnItsOwn serves the same guest and makes it exit 3
// by itself, with no stop asked for: serve must fail with the guest's
// code.
func TestServeGuestFailsOnItsOwn(t *testing.T) {
	stdoutR, stdoutW := io.Pipe()
	var logs syncbuf.Buffer
	env := &cliEnv{engines: testEngines, stdout: stdoutW, stderr: &logs, logger: slog.New(slog.NewTextHandler(&logs, nil))}
	code := make(chan int, 1)
	fatalGuest := enginetest.Fatal.Path(t)
	go func() {
		code <- run(context.Background(), env, []string{"serve", "--engine", wazy.Name, "--listen", "127.0.0.1:0",
			"--cache-dir", enginetest.CacheDir(), fatalGuest})
		stdoutW.Close()
	}()
	lines := bufio.NewScanner(stdoutR)
	var url string
	for lines.Scan() {
		if m := servingLine.FindStringSubmatch(lines.Text()); m != nil {
			url = "http://" + m[2]
			break
		}
	}
	if url == "" {
		t.Fatalf("no serving line; exit %d, logs:\n%s", <-code, logs.String())
	}
	go io.Copy(io.Discard, stdoutR)
	if _, err := (&http.Client{Timeout: 30 * time.Second}).Get(url + "/exit"); err == nil {
		t.Error("GET /exit was answered; the guest should have exited")
	}
	select {
	case c := <-code:
		if c != 3 {
			t.Fatalf("exit %d, want the guest's 3; logs:\n%s", c, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop after its guest exited; logs:\n%s", logs.String())
	}
}

// waitLog waits until the process has logged text.
func (p *serveProcess) waitLog(t *testing.T, text string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(p.logs.String(), text) {
		select {
		case <-p.exited:
			t.Fatalf("serve exited (%v) before logging %q; logs:\n%s", p.err, text, p.logs.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not log %q; logs:\n%s", text, p.logs.String())
		}
	}
}

// TestServeInterruptedWhileCompiling sends SIGINT while serve builds the
// echo guest, and while it compiles the guest with an empty compilation
// cache (seconds on any engine): serve must exit within 2 s, with code 0
// and a line saying what it interrupted.
func TestServeInterruptedWhileCompiling(t *testing.T) {
	type startUp struct {
		name, engine, wasm string
		logged, during     string
	}
	cases := []startUp{{"build", defaultEngineName(), "", "building guest", "building the guest"}}
	for _, name := range testEngines.EmbeddedNames() {
		cases = append(cases, startUp{"compile/" + name, name, enginetest.Echo.Path(t), "loading guest", "loading the guest"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Not t.TempDir: an abandoned go build may still write to it.
			cacheDir, err := os.MkdirTemp("", "wasiserve-cold-cache")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(cacheDir) })
			args := []string{"--engine", tc.engine, "--listen", "127.0.0.1:0", "--cache-dir", cacheDir}
			if tc.wasm != "" {
				args = append(args, tc.wasm)
			}
			p := startServe(t, nil, args...)
			p.waitLog(t, tc.logged)
			time.Sleep(200 * time.Millisecond) // well into it
			if logs := p.logs.String(); strings.Contains(logs, "compiled guest") || strings.Contains(logs, "built guest") {
				t.Fatalf("done in 200ms with an empty cache; logs:\n%s", logs)
			}
			p.cmd.Process.Signal(os.Interrupt)
			signalled := time.Now()
			code := p.wait(t, 2*time.Second)
			t.Logf("exited %s after SIGINT", time.Since(signalled).Round(time.Millisecond))
			if code != 0 {
				t.Errorf("exit %d after SIGINT, want 0; logs:\n%s", code, p.logs.String())
			}
			if !strings.Contains(p.logs.String(), `msg="interrupted while `+tc.during+`"`) {
				t.Errorf("serve did not say what it interrupted; logs:\n%s", p.logs.String())
			}
		})
	}
}

// TestServeSecondSignal drains a guest with a request in flight and a
// long drain timeout: a second SIGTERM meanwhile must end serve at once,
// with the signal's status.
func TestServeSecondSignal(t *testing.T) {
	p := startServe(t, nil, "--engine", wazy.Name, "--listen", "127.0.0.1:0", "--drain-timeout", "1m", "--cache-dir", enginetest.CacheDir(), enginetest.Echo.Path(t))
	url := p.servingURL(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	enginetest.StartEcho(t, conn) // never finished: the drain waits for it
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitLog(t, "draining")
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, 2*time.Second); code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit %d after a second SIGTERM, want %d; logs:\n%s", code, 128+int(syscall.SIGTERM), p.logs.String())
	}
	if !strings.Contains(p.logs.String(), "second signal: exiting now") {
		t.Errorf("serve did not say why it exited; logs:\n%s", p.logs.String())
	}
}
