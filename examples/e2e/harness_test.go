//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// engines are the project's engines every test runs on.
var engines = []string{"wasmtime", "wazy"}

// bins are the executables TestMain built.
var bins struct {
	hostharness                string
	calloutWasm, calloutNative string
	pgcacheWasm, pgcacheNative string
	helloWasm, dialprobeWasm   string
}

// Bounds of a served process's start and stop. The first start of a guest
// compiles it (about a minute for the 26 MB callout guest on wasmtime on a
// busy 2-core machine); later ones load it from the shared cache.
const (
	startTimeout = 10 * time.Minute
	stopTimeout  = time.Minute
)

// cacheDir is the compilation cache shared by the test runs on the
// machine (the one hostharness's own tests use), so that each guest is
// compiled once per engine, not once per test.
func cacheDir() string { return filepath.Join(os.TempDir(), "wasiserve-test-cache") }

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("SKIP: examples/e2e: the end-to-end tests build three guests and hostharness and start real upstreams; -short skips them")
		os.Exit(0)
	}
	os.Exit(buildAndRun(m))
}

// buildAndRun builds every executable into a temporary directory, runs
// the tests and removes the directory.
func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "wasiserve-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	builds := []struct {
		out  *string
		pkg  string
		wasm bool
	}{
		{&bins.hostharness, "./hostharness", false},
		{&bins.calloutWasm, "./examples/callout", true},
		{&bins.calloutNative, "./examples/callout", false},
		{&bins.pgcacheWasm, "./examples/pgcache", true},
		{&bins.pgcacheNative, "./examples/pgcache", false},
		{&bins.helloWasm, "./examples/hello", true},
		{&bins.dialprobeWasm, "./examples/e2e/testdata/dialprobe", true},
	}
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, b := range builds {
		name := strings.ReplaceAll(strings.TrimPrefix(b.pkg, "./"), "/", "-")
		env := os.Environ()
		if b.wasm {
			name += ".wasm"
			env = append(env, "GOOS=wasip1", "GOARCH=wasm")
		}
		*b.out = filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", *b.out, b.pkg)
		cmd.Dir, cmd.Env = root, env
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s (wasm %v): %v\n%s", b.pkg, b.wasm, err, out)
			return 1
		}
	}
	return m.Run()
}

// moduleRoot is the directory of the module's go.mod.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// syncBuffer is a bytes.Buffer safe for a process's writes and a test's
// reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// servingLine is the one stdout line of hostharness serve once the guest
// is ready.
var servingLine = regexp.MustCompile(`^serving \S+ at http://(\S+) \(engine (\S+)\)`)

// server is a served guest: hostharness serve, or a native build.
type server struct {
	name string
	base string // http://127.0.0.1:PORT
	cmd  *exec.Cmd
	logs *syncBuffer // stderr
	done chan struct{}
	err  error // the exit, once done is closed
}

// serve runs `hostharness serve --engine engine --listen 127.0.0.1:0` with
// args (flags, then the guest) and waits for its serving line. It is
// stopped when the test ends.
func serve(t testing.TB, engine string, args ...string) *server {
	t.Helper()
	all := append([]string{"serve", "--engine", engine, "--listen", "127.0.0.1:0", "--cache-dir", cacheDir()}, args...)
	cmd := exec.Command(bins.hostharness, all...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, engine, cmd)
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case line, ok := <-lines:
		m := servingLine.FindStringSubmatch(line)
		if !ok || m == nil {
			<-s.done
			t.Fatalf("hostharness %s: no serving line (got %q), exit %v; stderr:\n%s", strings.Join(all, " "), line, s.err, s.logs)
		}
		s.base = "http://" + m[1]
	case <-time.After(startTimeout):
		t.Fatalf("hostharness %s: not serving after %s; stderr:\n%s", strings.Join(all, " "), startTimeout, s.logs)
	}
	return s
}

// serveNative runs a native build of a guest with env on a listener the
// test binds, passed as systemd socket activation does (LISTEN_FDS=1, fd
// 3), so that its address is known before it starts.
func serveNative(t testing.TB, bin string, env ...string) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	ln.Close() // the child's copy stays open
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(append(os.Environ(), "LISTEN_FDS=1"), env...)
	cmd.ExtraFiles = []*os.File{f}
	s := start(t, "native", cmd)
	s.base = "http://" + ln.Addr().String()
	return s
}

// start starts cmd with its stderr into the server's logs, stopped when
// the test ends.
func start(t testing.TB, name string, cmd *exec.Cmd) *server {
	t.Helper()
	s := &server{name: name, cmd: cmd, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = s.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop sends SIGTERM and waits for the exit; a server that outlives
// stopTimeout is killed and reported.
func (s *server) stop(t testing.TB) {
	t.Helper()
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		s.cmd.Process.Kill()
		<-s.done
		t.Errorf("%s did not stop within %s of SIGTERM; stderr:\n%s", s.name, stopTimeout, s.logs)
	}
}

// client is the tests' HTTP client to the served guests.
var client = &http.Client{Timeout: 2 * time.Minute}

// get requests path from s and returns the status and body.
func (s *server) get(t testing.TB, path string) (int, []byte) {
	t.Helper()
	resp, err := client.Get(s.base + path)
	if err != nil {
		t.Fatalf("%s: GET %s: %v; stderr:\n%s", s.name, path, err, s.logs)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: GET %s: read the body: %v", s.name, path, err)
	}
	return resp.StatusCode, body
}

// freePort returns a loopback port nothing listens on now, for servers
// that cannot take a listener (postgres, redis-server).
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitFor calls ok every 50 ms until it is true, for at most d.
func waitFor(ctx context.Context, d time.Duration, ok func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for !ok() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return true
}

// TestOwnModule follows the README's "Depending on the guest packages
// from your own module" in a new module outside this one: a replace
// directive to this checkout, go mod tidy, and builds of a guest that
// imports the three guest packages, for wasip1 and natively.
func TestOwnModule(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src := `package main

import (
	"log"
	"net/http"

	"github.com/wasiserve/wasiserve/guest/wasihttp"
	"github.com/wasiserve/wasiserve/guest/wasinet"
	"github.com/wasiserve/wasiserve/guest/wasisock"
)

func main() {
	client := &http.Client{Transport: wasinet.NewTransport()}
	_ = client
	ln, _, err := wasisock.Listen(wasisock.Config{})
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(wasihttp.Serve(&http.Server{}, ln))
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, step := range [][]string{
		{"go", "mod", "init", "example.com/myservice"},
		{"go", "mod", "edit", "-require", "github.com/wasiserve/wasiserve@v0.0.0", "-replace", "github.com/wasiserve/wasiserve=" + root},
		{"go", "mod", "tidy"},
		{"env", "GOOS=wasip1", "GOARCH=wasm", "go", "build", "-o", "myservice.wasm", "."},
		{"go", "build", "-o", "myservice", "."},
	} {
		cmd := exec.Command(step[0], step[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(step, " "), err, out)
		}
	}
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mod), "wasmtime-go") || strings.Contains(string(mod), "wazy") {
		t.Errorf("the guest's module requires the host's engines:\n%s", mod)
	}
}
