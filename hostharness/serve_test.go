package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine/wazy"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/enginetest"
	"github.com/wasiserve/wasiserve/internal/syncbuf"
)

// servingLine is the one line serve prints on stdout once it listens on
// loopback TCP, IPv4 or IPv6.
var servingLine = regexp.MustCompile(`^serving (\S+) at http://(127\.0\.0\.1:\d+|\[::1\]:\d+) \(engine (\S+)\)$`)

// TestServeCommand runs `hostharness serve` in-process on each embedded
// engine, on IPv4 and IPv6 loopback: it must print the serving line,
// answer the curl echo, and exit 0 when interrupted.
func TestServeCommand(t *testing.T) {
	wasm := enginetest.Echo.Path(t)
	for _, name := range testEngines.EmbeddedNames() {
		for _, listen := range []string{"127.0.0.1:0", "[::1]:0"} {
			t.Run(name+"/"+listen, func(t *testing.T) {
				serveEcho(t, name, listen, wasm)
			})
		}
	}
}

// serveEcho is one TestServeCommand case.
func serveEcho(t *testing.T, name, listen, wasm string) {
	if ln, err := net.Listen("tcp", listen); err != nil {
		t.Skipf("this machine cannot listen on %s: %v", listen, err)
	} else {
		ln.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := serveInProcess(t, ctx, "--engine", name, "--listen", listen, "--cache-dir", enginetest.CacheDir(), wasm)
	m := servingLine.FindStringSubmatch(s.lines.Text())
	if m == nil || m[1] != wasm || m[3] != name {
		t.Fatalf("stdout line %q does not match %s", s.lines.Text(), servingLine)
	}
	if body := post(t, "http://"+m[2], "echo"); body != "echo" {
		t.Fatalf("echo answered %q", body)
	}
	cancel() // as SIGINT does
	select {
	case c := <-s.code:
		if c != 0 {
			t.Fatalf("exit code %d after interrupt, want 0", c)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after interrupt")
	}
	if s.lines.Scan() {
		t.Errorf("extra stdout line %q: serve must print exactly one", s.lines.Text())
	}
}

// servedInProcess is `hostharness serve` running in this process.
type servedInProcess struct {
	// lines is serve's stdout, its first line (the serving line) read.
	lines *bufio.Scanner
	// logs is serve's stderr and log.
	logs *syncbuf.Buffer
	// code receives serve's exit code.
	code chan int
	// sighup reaches serve as SIGHUP does.
	sighup chan os.Signal
}

// serveInProcess runs `hostharness serve args...` under ctx (cancel it to
// stop serve, as SIGINT does) and waits for its first stdout line.
func serveInProcess(t *testing.T, ctx context.Context, args ...string) *servedInProcess {
	t.Helper()
	stdoutR, stdoutW := io.Pipe()
	s := &servedInProcess{logs: &syncbuf.Buffer{}, code: make(chan int, 1), sighup: make(chan os.Signal, 1)}
	env := &cliEnv{engines: testEngines, stdout: stdoutW, stderr: s.logs, logger: newLogger(s.logs), sighup: s.sighup}
	go func() {
		s.code <- run(ctx, env, append([]string{"serve"}, args...))
		stdoutW.Close()
	}()
	s.lines = bufio.NewScanner(stdoutR)
	if !s.lines.Scan() {
		t.Fatalf("no serving line; exit %d, logs:\n%s", <-s.code, s.logs.String())
	}
	return s
}

// takenAddr is the address of a listener held until the test ends.
func takenAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

func TestServeErrors(t *testing.T) {
	// Every case fails before its guest is loaded.
	anyWasm := enginetest.Testdata("exit7.wasm")
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"missing wasm", []string{"serve", "--engine", wazy.SockName, filepath.Join(t.TempDir(), "nope.wasm")}, 2, "no such file"},
		{"unknown engine", []string{"serve", "--engine", "nosuch", "x.wasm"}, 2, "unknown engine"},
		{"renamed engine", []string{"serve", "--engine", "wasiserve", "x.wasm"}, 2, `it is now called "wazy"`},
		{"bad dir", []string{"serve", "--dir", ":/data", "x.wasm"}, 2, "want host[:guest]"},
		{"two guests", []string{"serve", "a.wasm", "b.wasm"}, 2, "at most one"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"negative instances", []string{"serve", "--instances", "-1", "x.wasm"}, 2, "--instances -1: want 1 to 1024"},
		{"absurd instances", []string{"serve", "--instances", "10000", "x.wasm"}, 2, "want 1 to 1024"},
		{"instances on wazy-sock", []string{"serve", "--engine", wazy.SockName, "--instances", "2", anyWasm}, 2,
			"--instances needs a host-owned listener, which engine wazy-sock does not support; use --engine"},
		{"max-conns on wazy-sock", []string{"serve", "--engine", wazy.SockName, "--max-conns", "5", anyWasm}, 2,
			"--max-conns needs a connection limit, which engine wazy-sock does not support"},
		{"systemd without a socket", []string{"serve", "--listen", "systemd", anyWasm}, 1, "systemd passed no socket"},
		{"port in use", []string{"serve", "--engine", wazy.Name, "--listen", takenAddr(t), anyWasm}, 1, "address already in use"},
		{"port in use, engine that binds itself", []string{"serve", "--engine", wazy.SockName, "--listen", takenAddr(t), anyWasm}, 1, "address already in use"},
		{"env without =", []string{"serve", "--env", "NOEQUALS", "x.wasm"}, 2, `--env: "NOEQUALS": want KEY=VALUE`},
		{"bad dial pattern", []string{"serve", "--allow-dial", "nocolon", "x.wasm"}, 2, "--allow-dial"},
		{"guest path twice", []string{"serve", "--dir", t.TempDir() + ":/d", "--dir", t.TempDir() + ":/d", "x.wasm"}, 2, "mounted twice"},
		{"missing dir", []string{"serve", "--dir", filepath.Join(t.TempDir(), "nope"), "x.wasm"}, 2, "no such file"},
		{"file as dir", []string{"serve", "--dir", anyWasm, "x.wasm"}, 2, "is not a directory"},
		{"negative drain timeout", []string{"serve", "--drain-timeout", "-1s", "x.wasm"}, 2, "want a duration of 0 or more"},
		{"negative max-conns", []string{"serve", "--max-conns", "-2", "x.wasm"}, 2, "--max-conns -2: want 0 or more"},
		{"tiny max-memory", []string{"serve", "--max-memory", "1", "x.wasm"}, 2, "--max-memory 1: want a size from 1MiB"},
		{"empty unix path", []string{"serve", "--listen", "unix:", "x.wasm"}, 2, "empty path"},
		{"guest not a regular file", []string{"serve", "/dev/zero"}, 2, "not a regular file"},
		{"ready file in a missing dir", []string{"serve", "--ready-file", filepath.Join(t.TempDir(), "nope", "ready"), anyWasm}, 2, "--ready-file: stat"},
		{"bad guest-stdout", []string{"serve", "--guest-stdout", "file", anyWasm}, 2, `--guest-stdout "file": want stderr or stdout`},
		{"admin without port", []string{"serve", "--admin", "nocolon", anyWasm}, 2, `--admin "nocolon": want HOST:PORT`},
		{"metrics, the alias of admin", []string{"serve", "--metrics", "nocolon", anyWasm}, 2, `--admin "nocolon": want HOST:PORT`},
		{"admin and metrics differing", []string{"serve", "--admin", "127.0.0.1:0", "--metrics", "127.0.0.1:1", anyWasm}, 2, "--metrics is another name of --admin"},
		{"negative shutdown delay", []string{"serve", "--shutdown-delay", "-1s", anyWasm}, 2, "--shutdown-delay -1s: want a duration of 0 or more"},
		{"admin port in use", []string{"serve", "--listen", "127.0.0.1:0", "--admin", takenAddr(t), anyWasm}, 1, "--admin: listen tcp"},
		{"watch without a guest", []string{"serve", "--watch"}, 2, "--watch: needs a guest file to watch"},
		{"cache others can write", []string{"serve", "--cache-dir", worldWritableDir(t), anyWasm}, 2, "not private to this user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr strings.Builder
			env := &cliEnv{engines: testEngines, stdout: io.Discard, stderr: &stderr, logger: slog.New(slog.NewTextHandler(&stderr, nil))}
			code := run(context.Background(), env, tc.args)
			if code != tc.wantCode || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr.String(), tc.wantCode, tc.wantErr)
			}
		})
	}
}

// worldWritableDir is a new directory of mode 0777.
func worldWritableDir(t *testing.T) string {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestServeRestart serves a guest that always exits with code 3: with
// --restart the harness must keep restarting it, logging each restart,
// until interrupted; without it, serve returns the guest's exit code.
func TestServeRestart(t *testing.T) {
	wasm := enginetest.FD3.Path(t)
	args := []string{"serve", "--engine", wazy.SockName, "--listen", "127.0.0.1:0", "--cache-dir", enginetest.CacheDir(), "--env", "EXIT_CODE=3"}

	t.Run("without restart", func(t *testing.T) {
		var logs syncbuf.Buffer
		env := &cliEnv{engines: testEngines, stdout: io.Discard, stderr: &logs, logger: slog.New(slog.NewTextHandler(&logs, nil))}
		if code := run(context.Background(), env, append(args, wasm)); code != 3 {
			t.Fatalf("exit %d, want the guest's 3; logs:\n%s", code, logs.String())
		}
	})
	t.Run("with restart", func(t *testing.T) {
		var logs syncbuf.Buffer
		env := &cliEnv{engines: testEngines, stdout: io.Discard, stderr: &logs, logger: slog.New(slog.NewTextHandler(&logs, nil))}
		ctx, cancel := context.WithCancel(context.Background())
		code := make(chan int, 1)
		go func() { code <- run(ctx, env, append(args, "--restart", wasm)) }()
		deadline := time.Now().Add(60 * time.Second)
		for strings.Count(logs.String(), "restarting guest") < 3 {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("fewer than 3 restarts in 60s; logs:\n%s", logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		select {
		case c := <-code:
			if c != 0 {
				t.Fatalf("exit %d after interrupt, want 0; logs:\n%s", c, logs.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatal("serve --restart did not stop after interrupt")
		}
		if !strings.Contains(logs.String(), "code=3") {
			t.Errorf("logs do not report the exit code 3:\n%s", logs.String())
		}
	})
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{"", 0, false},
		{"1048576", 1 << 20, false},
		{"1024KiB", 1 << 20, false},
		{"64KiB", 64 << 10, false}, // parsed; the library refuses it (TestServeErrors)
		{"1", 1, false},
		{"256MiB", 256 << 20, false},
		{"256M", 256 << 20, false},
		{"1GB", 1 << 30, false},
		{"4GiB", 4 << 30, false},
		{"5GiB", 5 << 30, false},
		{"99999999999G", 0, true},
		{"0", 0, true},
		{"-1M", 0, true},
		{"lots", 0, true},
	} {
		got, err := parseSize(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestServeTrapLoggedOnce serves a guest whose stack overflows on each
// embedded engine: serve exits 1 and logs the trap (bounded, see
// engine.ExitError) once, not a second time in its own error.
func TestServeTrapLoggedOnce(t *testing.T) {
	wasm := enginetest.Testdata("hostile/stack_overflow.wasm")
	for _, name := range testEngines.EmbeddedNames() {
		t.Run(name, func(t *testing.T) {
			var logs syncbuf.Buffer
			env := &cliEnv{engines: testEngines, stdout: io.Discard, stderr: &logs, logger: slog.New(slog.NewTextHandler(&logs, nil))}
			code := run(context.Background(), env, []string{"serve", "--engine", name, "--listen", "127.0.0.1:0",
				"--cache-dir", enginetest.CacheDir(), wasm})
			out := logs.String()
			t.Logf("exit %d, %d bytes of logs", code, len(out))
			if code != 1 {
				t.Errorf("exit %d, want 1; logs:\n%.3000s", code, out)
			}
			if n := len(regexp.MustCompile(`stack (overflow|exhausted)`).FindAllString(out, -1)); n != 1 {
				t.Errorf("the trap's cause is logged %d times, want once; logs:\n%.3000s", n, out)
			}
			if len(out) > 2*engine.MaxTrapBytes {
				t.Errorf("%d bytes of logs for one trap", len(out))
			}
		})
	}
}
