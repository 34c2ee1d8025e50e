// Package enginetest holds what the tests of several packages need to run
// guests: guests built on first need, once per test binary, and engines
// and served instances that clean up after the test.
package enginetest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/engine/builtin"
	"github.com/wasiserve/wasiserve/hostharness/listener"
	"github.com/wasiserve/wasiserve/internal/guestbuild"
)

// CacheDir is the compilation cache shared by every test run on the
// machine, so that each guest is compiled once, not once per test.
func CacheDir() string {
	return filepath.Join(os.TempDir(), "wasiserve-test-cache")
}

// Guest is a guest to build on first need, once per test binary.
type Guest struct {
	// Pkg is the package to build, as go build takes it.
	Pkg string
	// Target is the platform: guestbuild.WASI (or a WASI target with build
	// tags, such as guestbuild.WASIWasmEdge), or the zero Target (native).
	Target guestbuild.Target
	// Env adds to go build's environment, e.g. CGO_ENABLED=0.
	Env []string
}

// The guests the tests of several packages run.
var (
	// Echo is the echo guest for wasip1; EchoNative the same natively.
	Echo       = Guest{Pkg: guestbuild.Package, Target: guestbuild.WASI}
	EchoNative = Guest{Pkg: guestbuild.Package}
	// EchoWasmEdge is the echo guest's variant for the WasmEdge socket
	// extensions.
	EchoWasmEdge = Guest{Pkg: guestbuild.Package, Target: guestbuild.WASIWasmEdge}
	// FD3 takes fd 3 as its listener, without the shim; Dir reports the
	// directories it sees; Marked is the echo guest with a mark on every
	// response (and GET /trap); Fatal is log.Fatal(http.Serve(ln, h));
	// Dying dies on request as Go servers die under load (out of memory,
	// a runtime stuck printing its goroutines).
	FD3    = Guest{Pkg: Testdata("fd3guest"), Target: guestbuild.WASI}
	Dir    = Guest{Pkg: Testdata("dirguest"), Target: guestbuild.WASI}
	Marked = Guest{Pkg: Testdata("markedguest"), Target: guestbuild.WASI}
	Fatal  = Guest{Pkg: Testdata("fatalguest"), Target: guestbuild.WASI}
	Dying  = Guest{Pkg: Testdata("dyingguest"), Target: guestbuild.WASI}
)

//go:generate sh -c "for f in testdata/*.wat testdata/hostile/*.wat; do wat2wasm --enable-multi-memory $DOLLAR{f} -o $DOLLAR{f%.wat}.wasm; done"

// Testdata is the path of the file or directory name in this package's
// testdata, which holds the guests and modules the tests share; its
// .wasm modules are built from their .wat sources (go generate, with
// wabt's wat2wasm).
func Testdata(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", name)
}

// built holds the guests built by this test binary.
var built struct {
	sync.Mutex
	dir   string
	paths map[string]string
	errs  map[string]error
}

// Path builds g, once per test binary, and returns the built file's path;
// a failed build fails t. Under -short it skips t: a test that needs a
// built guest serves it end to end, which scripts/test.sh runs in full.
func (g Guest) Path(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: needs the guest %s built and served (the full suite runs it)", filepath.Base(g.Pkg))
	}
	path, err := g.build()
	if err != nil {
		t.Fatalf("build %s: %v", g.Pkg, err)
	}
	return path
}

// Build is Path for code without a testing.TB (an Example): it returns
// the build's error.
func (g Guest) Build() (string, error) { return g.build() }

// build builds g into the binary's guest directory, once.
func (g Guest) build() (string, error) {
	key := fmt.Sprint(g.Pkg, g.Target, g.Env)
	built.Lock()
	defer built.Unlock()
	if path, ok := built.paths[key]; ok {
		return path, built.errs[key]
	}
	if built.dir == "" {
		dir, err := os.MkdirTemp("", "wasiserve-test")
		if err != nil {
			return "", err
		}
		built.dir, built.paths, built.errs = dir, map[string]string{}, map[string]error{}
	}
	path := filepath.Join(built.dir, fmt.Sprintf("%d-%s", len(built.paths), filepath.Base(g.Pkg)))
	if g.Target.IsWASI() {
		path += ".wasm"
	}
	err := guestbuild.Build(context.Background(), g.Pkg, g.Target, path, g.Env...)
	built.paths[key], built.errs[key] = path, err
	return path, err
}

// Main runs the tests, then removes the guests they built; a TestMain
// calls os.Exit(enginetest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	built.Lock()
	defer built.Unlock()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	return code
}

// Engines are the engines the tests run: every built-in one.
func Engines() engine.Set { return builtin.Engines() }

// NewEngine returns the named engine, using CacheDir, closed when the test
// ends.
func NewEngine(t testing.TB, name string) (engine.Engine, error) {
	t.Helper()
	ctx := context.Background()
	eng, err := Engines().New(ctx, name, engine.Options{CacheDir: CacheDir()})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { eng.Close(ctx) })
	return eng, nil
}

// Serve loads wasm with eng and serves it under cfg (on a free loopback
// port unless cfg.Listener is set) until the test ends, when the guest is
// stopped and a failure to stop is reported.
func Serve(t testing.TB, eng engine.Engine, wasm string, cfg engine.Config) (*engine.Instance, error) {
	t.Helper()
	ctx := context.Background()
	mod, err := eng.Load(ctx, wasm)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { mod.Close(ctx) })
	if cfg.Listener == nil {
		if cfg.Listener, err = Listen(t, "127.0.0.1:0"); err != nil {
			return nil, err
		}
	}
	inst, err := engine.Serve(ctx, mod, cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if err := inst.Stop(); err != nil {
			t.Errorf("stop %s guest: %v", eng.Name(), err)
		}
	})
	return inst, nil
}

// Listen opens a listener for spec (a --listen value), closed when the
// test ends.
func Listen(t testing.TB, spec string) (net.Listener, error) {
	t.Helper()
	s, err := listener.Parse(spec)
	if err != nil {
		return nil, err
	}
	ln, err := s.Open(os.Getenv)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { ln.Close() })
	return ln, nil
}

// StartEcho sends the echo guest on conn a POST whose body it sends only
// in part: 64 KiB, enough for the streamed echo to flush its start. Once
// that part has come back the request is in flight in the guest. finish
// sends the rest ("-last") and returns what the rest of the echo was.
func StartEcho(t testing.TB, conn net.Conn) (finish func() string) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	first := bytes.Repeat([]byte("a"), 64<<10)
	const last = "-last"
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(first)+len(last))
	if _, err := conn.Write(first); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if _, err := io.ReadFull(resp.Body, make([]byte, len(first))); err != nil {
		t.Fatalf("echo of the first part: %v", err)
	}
	return func() string {
		t.Helper()
		if _, err := io.WriteString(conn, last); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("rest of the echo: %v", err)
		}
		return string(rest)
	}
}

// OpenFDs counts this process's open descriptors (the engines run in it,
// so every guest socket is one of them); it skips the test where they
// cannot be counted.
func OpenFDs(t testing.TB) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors here: %v", err)
	}
	return len(entries)
}
