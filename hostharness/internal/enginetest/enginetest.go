// Package enginetest holds what the tests of several packages need to run
// guests: guests built once per test binary, and engines and served
// instances that clean up after the test.
package enginetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/internal/guestbuild"
)

// CacheDir is the compilation cache shared by every test run on the
// machine, so that each guest is compiled once, not once per test.
func CacheDir() string {
	return filepath.Join(os.TempDir(), "wasiserve-test-cache")
}

// Guest is one guest to build before the tests run.
type Guest struct {
	// Pkg is the package to build, as go build takes it.
	Pkg string
	// Target is the platform: guestbuild.WASI (or a WASI target with build
	// tags, such as guestbuild.WASIWasmEdge), or the zero Target (native).
	Target guestbuild.Target
	// Path receives the built file's path.
	Path *string
}

// Main builds guests into a temporary directory, runs the tests and
// removes the directory; a TestMain calls os.Exit(enginetest.Main(m, ...)).
func Main(m *testing.M, guests ...Guest) int {
	dir, err := os.MkdirTemp("", "wasiserve-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	for i, g := range guests {
		*g.Path = filepath.Join(dir, fmt.Sprintf("%d-%s", i, filepath.Base(g.Pkg)))
		if g.Target.IsWASI() {
			*g.Path += ".wasm"
		}
		if err := guestbuild.Build(context.Background(), g.Pkg, g.Target, *g.Path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// NewEngine returns the named engine, using CacheDir, closed when the test
// ends.
func NewEngine(t testing.TB, name string) (engine.Engine, error) {
	t.Helper()
	ctx := context.Background()
	eng, err := engine.New(ctx, name, engine.Options{CacheDir: CacheDir()})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { eng.Close(ctx) })
	return eng, nil
}

// Serve loads wasm with eng and serves it under cfg (on a free loopback
// port unless cfg.Listen says otherwise) until the test ends, when the
// guest is stopped and a failure to stop is reported.
func Serve(t testing.TB, eng engine.Engine, wasm string, cfg engine.Config) (*engine.Instance, error) {
	t.Helper()
	ctx := context.Background()
	mod, err := eng.Load(ctx, wasm)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { mod.Close(ctx) })
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
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
