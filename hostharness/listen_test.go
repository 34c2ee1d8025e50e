package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine/wazy"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/enginetest"
	"github.com/wasiserve/wasiserve/internal/syncbuf"
)

// TestServeUnixInstancesDrain serves the echo guest on a Unix socket with
// two instances and no --engine (so serve picks the engine that can), then
// interrupts it with a request in flight: the request must complete, serve
// exit 0, and the socket file be gone.
func TestServeUnixInstancesDrain(t *testing.T) {
	wasm := enginetest.Echo.Path(t)
	sock := filepath.Join(t.TempDir(), "echo.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := serveInProcess(t, ctx, "--listen", "unix:"+sock, "--instances", "2", "--cache-dir", enginetest.CacheDir(), wasm)
	lines, logs, code := s.lines, s.logs, s.code
	// serve picks the first embedded engine whose host owns the listener.
	if want := fmt.Sprintf("serving %s at unix:%s (engine %s)", wasm, sock, testEngines.With(engine.HostListener)[0]); lines.Text() != want {
		t.Fatalf("serving line %q, want %q", lines.Text(), want)
	}
	if got := strings.Count(logs.String(), "echo guest serving"); got != 2 {
		t.Errorf("%d guest instances started, want 2; logs:\n%s", got, logs.String())
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	for i := range 10 {
		body := fmt.Sprint("unix ", i)
		resp, err := client.Post("http://echo/", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != body {
			t.Fatalf("echo %q, want %q", got, body)
		}
	}

	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	finish := enginetest.StartEcho(t, conn)
	cancel() // as SIGTERM does
	for !strings.Contains(logs.String(), "listener stopped by the host: finishing requests in flight") {
		select {
		case c := <-code:
			t.Fatalf("serve exited (%d) with a request in flight; logs:\n%s", c, logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if c, err := net.Dial("unix", sock); err == nil {
		c.Close()
		t.Error("a new client could connect to the draining server")
	}
	if rest := finish(); rest != "-last" {
		t.Fatalf("request in flight ended with %q, want the rest of its echo", rest)
	}
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d after draining, want 0; logs:\n%s", c, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop after draining; logs:\n%s", logs.String())
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file left behind: %v", err)
	}
	if strings.Contains(logs.String(), "drain timeout") {
		t.Errorf("a guest was stopped by the drain timeout instead of draining:\n%s", logs.String())
	}
}

// TestServeSystemdActivation runs the hostharness binary the way systemd
// socket activation does: the listening socket at fd 3, LISTEN_FDS=1 and
// LISTEN_PID set to the process itself, and no --listen.
func TestServeSystemdActivation(t *testing.T) {
	bin, wasm := harness.Path(t), enginetest.Echo.Path(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lnFile, err := ln.(*net.TCPListener).File()
	ln.Close() // the child holds the socket now, through lnFile
	if err != nil {
		t.Fatal(err)
	}
	defer lnFile.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// LISTEN_PID must be the pid of hostharness itself: sh sets it to its
	// own pid ($$) and execs hostharness, which keeps that pid.
	cmd := exec.CommandContext(ctx, "sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`,
		bin, "serve", "--engine", wazy.Name, "--cache-dir", enginetest.CacheDir(), wasm)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "LISTEN_") }),
		"LISTEN_FDS=1", "LISTEN_FDNAMES=web")
	cmd.ExtraFiles = []*os.File{lnFile}
	var logs syncbuf.Buffer
	cmd.Stderr = &logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		cmd.Wait()
		t.Fatalf("no serving line; logs:\n%s", logs.String())
	}
	want := regexp.MustCompile(`^serving \S+ at http://` + regexp.QuoteMeta(ln.Addr().String()) + ` \(engine ` + wazy.Name + `\)$`)
	if !want.MatchString(lines.Text()) {
		t.Fatalf("serving line %q, want the inherited socket's address %s", lines.Text(), ln.Addr())
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Post("http://"+ln.Addr().String(), "text/plain", strings.NewReader("activated"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "activated" {
		t.Fatalf("echo %q", got)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v; logs:\n%s", err, logs.String())
	}
}

// busyModule is a WASI command whose _start spins forever without a host
// call: (module (func (export "_start") (loop (br 0)))).
var busyModule = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
	0x03, 0x02, 0x01, 0x00, // function 0 has type 0
	0x07, 0x0a, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00, // export _start
	0x0a, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b, // loop br 0
}

// TestServeBusyGuestStops runs, as its own process, serve of a guest that
// spins without ever calling the host: SIGTERM must stop the guest itself
// (the engines' compiled code yields to the host), not leave it running.
func TestServeBusyGuestStops(t *testing.T) {
	bin, wasm := harness.Path(t), filepath.Join(t.TempDir(), "busy.wasm")
	if err := os.WriteFile(wasm, busyModule, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range projectEngines() {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "serve", "--engine", name, "--listen", "127.0.0.1:0", "--cache-dir", enginetest.CacheDir(), wasm)
			var logs syncbuf.Buffer
			cmd.Stderr = &logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			for !strings.Contains(logs.String(), "compiled guest") {
				if ctx.Err() != nil {
					t.Fatalf("the guest was not compiled; logs:\n%s", logs.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond) // the guest is spinning
			cmd.Process.Signal(syscall.SIGTERM)
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case <-exited:
			case <-time.After(engine.StopTimeout):
				t.Fatalf("serve did not exit within %s of SIGTERM with a spinning guest; logs:\n%s", engine.StopTimeout, logs.String())
			}
			if strings.Contains(logs.String(), "did not stop") {
				t.Errorf("the spinning guest was not stopped; logs:\n%s", logs.String())
			}
		})
	}
}

// TestSpinningGuestIsolated serves two instances of a guest whose handler
// spins forever in pure computation, in this process, and forces the
// host's garbage collector while one instance spins: the collection must
// finish, the other instance keep answering, and a stop end serve within
// the drain timeout (then the spinning guest is stopped).
func TestSpinningGuestIsolated(t *testing.T) {
	for _, name := range projectEngines() {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			const drainTimeout = 2 * time.Second
			s := serveInProcess(t, ctx, "--engine", name, "--instances", "2", "--listen", "127.0.0.1:0",
				"--drain-timeout", drainTimeout.String(), "--env", "SPIN_PATH=/spin", "--cache-dir", enginetest.CacheDir(), enginetest.FD3.Path(t))
			lines, logs, code := s.lines, s.logs, s.code
			m := servingLine.FindStringSubmatch(lines.Text())
			if m == nil {
				t.Fatalf("serving line %q", lines.Text())
			}
			base := "http://" + m[2]
			go (&http.Client{Timeout: time.Minute}).Get(base + "/spin")
			for !strings.Contains(logs.String(), "fd3guest: spinning") {
				time.Sleep(10 * time.Millisecond)
			}
			gcDone := make(chan struct{})
			go func() {
				for range 3 {
					runtime.GC()
				}
				close(gcDone)
			}()
			select {
			case <-gcDone:
			case <-time.After(30 * time.Second):
				t.Fatal("the host's garbage collection did not finish while a guest spun: the host is frozen")
			}
			client := &http.Client{Timeout: 10 * time.Second}
			for i := range 5 {
				resp, err := client.Post(base+"/", "text/plain", strings.NewReader(fmt.Sprint(i)))
				if err != nil {
					t.Fatalf("the other instance did not answer while one spun: %v", err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := fmt.Sprint("fd3:", i); string(body) != want {
					t.Fatalf("answered %q, want %q", body, want)
				}
				runtime.GC()
			}
			stopped := time.Now()
			cancel() // as SIGTERM does
			select {
			case <-code:
			case <-time.After(drainTimeout + engine.StopTimeout):
				t.Fatalf("serve did not stop %s after a stop with a spinning guest; logs:\n%s", drainTimeout+engine.StopTimeout, logs.String())
			}
			if took := time.Since(stopped); took > drainTimeout+engine.StopTimeout {
				t.Errorf("stop took %s", took)
			}
			if strings.Contains(logs.String(), "did not stop") {
				t.Errorf("the spinning guest was not stopped; logs:\n%s", logs.String())
			}
		})
	}
}

// projectEngines lists the embedded engines with the project's socket
// layer (a host-owned listener).
func projectEngines() []string {
	var names []string
	for _, name := range testEngines.EmbeddedNames() {
		if capabilitiesOf(name).Has(engine.HostListener) {
			names = append(names, name)
		}
	}
	return names
}
