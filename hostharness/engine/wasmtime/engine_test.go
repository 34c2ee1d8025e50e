//go:build cgo

package wasmtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	wt "github.com/bytecodealliance/wasmtime-go/v42"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/engine/internal/enginekit"
)

// hostCallWAT calls fd_fdstat_get n times on fd: the listener (3), which
// the Table serves, or stdout (1), which goes to wasmtime's own function
// through the forwarding module. "call" calls it once and returns the
// errno.
const hostCallWAT = `(module
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $stat (param i32 i32) (result i32)))
  %s
  (func (export "loop") (param $fd i32) (param $n i32) (result i32) (local $i i32) (local $e i32)
    (loop $l
      (local.set $e (call $stat (local.get $fd) (i32.const 64)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $e))
  (func (export "call") (param $fd i32) (param $ptr i32) (result i32)
    (call $stat (local.get $fd) (local.get $ptr)))
  (func (export "_start")))`

const withMemory = `(memory (export "memory") 1)`

// hostCallWATWith is hostCallWAT with memory (withMemory, or "").
func hostCallWATWith(memory string) string { return fmt.Sprintf(hostCallWAT, memory) }

// newTestRun instantiates hostCallWAT, with memory or without, on the
// wasmtime engine with a Table whose listener is at fd 3.
func newTestRun(t testing.TB, memory string) *wasmtimeRun {
	t.Helper()
	return newTestRunOf(t, hostCallWATWith(memory))
}

// newTestRunOf instantiates wat on the wasmtime engine with a Table whose
// listener is at fd 3.
func newTestRunOf(t testing.TB, wat string) *wasmtimeRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	mod := loadWAT(t, wat)
	ln := loopbackListener(t)
	cfg := engine.Config{Listener: ln}
	table, closeTable, err := enginekit.HostTable(ctx, Name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeTable)
	r, err := mod.newRun(ctx, cfg, nil, table)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	return r
}

func (r *wasmtimeRun) callExport(t testing.TB, name string, args ...any) int32 {
	t.Helper()
	v, err := r.guest.GetFunc(r.store, name).Call(r.store, args...)
	if err != nil {
		t.Fatal(err)
	}
	return v.(int32)
}

// TestWasmtimeHostCalls checks the answers of a served and a delegated
// call, and EFAULT, never a crash, for pointers outside memory and for a
// module without memory.
func TestWasmtimeHostCalls(t *testing.T) {
	const (
		errnoSuccess = 0
		errnoFault   = 21
	)
	r := newTestRun(t, withMemory)
	for _, tc := range []struct {
		name    string
		fd, ptr int32
		want    int32
	}{
		{"listener", 3, 64, errnoSuccess},
		{"stdout, delegated", 1, 64, errnoSuccess},
		{"listener, pointer past memory", 3, 65536 - 8, errnoFault},
	} {
		if got := r.callExport(t, "call", tc.fd, tc.ptr); got != tc.want {
			t.Errorf("%s: errno %d, want %d", tc.name, got, tc.want)
		}
	}
	// wasmtime's own functions trap on a pointer outside memory; the trap
	// comes back through the forwarding module as the guest's.
	if _, err := r.guest.GetFunc(r.store, "call").Call(r.store, int32(1), int32(-1)); err == nil || !strings.Contains(err.Error(), "out of bounds") {
		t.Errorf("stdout, pointer past memory: %v, want wasmtime's out-of-bounds trap", err)
	}
	if got := r.callExport(t, "call", int32(3), int32(64)); got != errnoSuccess {
		t.Fatalf("errno %d", got)
	}
	if mem := r.guest.GetExport(r.store, "memory").Memory().UnsafeData(r.store); mem[64] != 6 { // FILETYPE_SOCKET_STREAM
		t.Errorf("fd_fdstat_get of the listener wrote filetype %d, want 6 (socket stream)", mem[64])
	}

	bare := newTestRun(t, "")
	for _, fd := range []int32{3, 1} {
		if got := bare.callExport(t, "call", fd, int32(64)); got != errnoFault {
			t.Errorf("fd %d in a module without memory: errno %d, want %d", fd, got, errnoFault)
		}
	}
}

// BenchmarkWasmtimeHostCall measures one call of fd_fdstat_get from wasm:
// served by the Table, and delegated to wasmtime's own function.
func BenchmarkWasmtimeHostCall(b *testing.B) {
	for _, bc := range []struct {
		name string
		fd   int32
	}{{"served", 3}, {"delegated", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			r := newTestRun(b, withMemory)
			b.ResetTimer()
			if errno := r.callExport(b, "loop", bc.fd, int32(b.N)); errno != 0 {
				b.Fatalf("errno %d", errno)
			}
		})
	}
}

// spinOnListenerWAT calls fd_fdstat_get on the listener until the host
// stops it: it ends at a host call, not at an epoch interruption.
const spinOnListenerWAT = `(module
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $stat (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $l (drop (call $stat (i32.const 3) (i32.const 64))) (br $l))))`

// acceptLoopWAT accepts connections on the listener (fd 3, blocking) and
// drops them, until the host stops it.
const acceptLoopWAT = `(module
  (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $l (drop (call $accept (i32.const 3) (i32.const 0) (i32.const 64))) (br $l))))`

// loadWAT loads wat with a new wasmtime engine whose cache is in a
// temporary directory; the module and the engine are closed when the
// test ends.
func loadWAT(t testing.TB, wat string) *wasmtimeModule {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	cache, err := engine.OpenCacheDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	e, err := newEngine(ctx, engine.Options{CacheDir: dir, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(ctx) })
	wasm, err := wt.Wat2Wasm(wat)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "guest.wasm")
	if err := os.WriteFile(path, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	mod, err := e.Load(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mod.Close(ctx) })
	return mod.(*wasmtimeModule)
}

// mapped reports whether this process maps the file at path.
func mapped(t *testing.T, path string) bool {
	t.Helper()
	if path == "" {
		return false // compiled in memory
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("cannot read this process's mappings: %v", err)
	}
	return strings.Contains(string(maps), path)
}

// TestWasmtimeModuleCloseWhileRunning closes a module while a run of it
// is active: the run goes on with the module's code until it is
// stopped, then the code is released, and a Run after Close fails.
func TestWasmtimeModuleCloseWhileRunning(t *testing.T) {
	ctx := context.Background()
	mod := loadWAT(t, acceptLoopWAT)
	ln := loopbackListener(t)
	if !mapped(t, mod.code) {
		t.Fatalf("the loaded module's code %s is not mapped", mod.code)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	stats := make(chan func() engine.Stats, 1)
	go func() {
		done <- mod.Run(runCtx, engine.Config{Listener: ln, OnStats: func(read func() engine.Stats) { stats <- read }})
	}()
	read := <-stats
	accepted := func(n uint64) {
		t.Helper()
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for read().AcceptedConns < n {
			select {
			case err := <-done:
				t.Fatalf("the run ended: %v", err)
			case <-time.After(time.Millisecond):
			}
		}
	}
	accepted(1) // it runs
	if err := mod.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := mod.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	accepted(2) // it runs on, after Close
	if !mapped(t, mod.code) {
		t.Fatal("Close released the code of a module still running")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run stopped after Close: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the run was not stopped 5 s after its context was cancelled")
	}
	if mapped(t, mod.code) {
		t.Error("the closed module's code is still mapped after its last run ended")
	}
	if err := mod.Run(ctx, engine.Config{Listener: ln}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Run after Close: %v, want an error saying the module is closed", err)
	}
}

// TestWasmtimeLoadAfterClose: an engine closed while a module it loaded
// is open keeps serving that module, and refuses to load another.
func TestWasmtimeLoadAfterClose(t *testing.T) {
	ctx := context.Background()
	mod := loadWAT(t, hostCallWATWith(withMemory))
	e := mod.engine
	if err := e.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ln := loopbackListener(t)
	// hostCallWAT's _start returns at once.
	if err := mod.Run(ctx, engine.Config{Listener: ln}); err != nil {
		t.Fatalf("Run of a module of a closed engine: %v", err)
	}
	wasm := filepath.Join(t.TempDir(), "other.wasm")
	if err := os.WriteFile(wasm, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Load(ctx, wasm); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Load after Close: %v, want an error saying the engine is closed", err)
	}
	if err := mod.Close(ctx); err != nil {
		t.Fatalf("module Close: %v", err)
	}
}

// TestWasmtimeCancelRace cancels runs that end at their next host call,
// often before the goroutine that cancellation starts has interrupted
// the engine: that interruption must not reach an engine the ended run
// has closed (it panicked: "object has been closed already").
func TestWasmtimeCancelRace(t *testing.T) {
	ctx := context.Background()
	mod := loadWAT(t, spinOnListenerWAT)
	ln := loopbackListener(t)
	const runs = 40
	for i := range runs {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- mod.Run(runCtx, engine.Config{Listener: ln}) }()
		time.Sleep(time.Duration(i%4) * time.Millisecond)
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("run %d: %v", i, err)
		}
	}
}

// TestInterruptOnDoneWaits: the stop that interruptOnDone returns waits
// for an interruption under way, so that a run that ends frees nothing
// that interruption still uses (TestWasmtimeCancelRace's panic).
func TestInterruptOnDoneWaits(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	entered, release := make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	stop := interruptOnDone(ctx, func() {
		close(entered)
		<-release
		finished.Store(true)
	})
	cancel()
	<-entered
	stopped := make(chan struct{})
	go func() {
		stop()
		close(stopped)
	}()
	select {
	case <-stopped:
		t.Fatal("stop returned while the interruption was under way")
	case <-time.After(20 * time.Millisecond): // the window in which a wrong stop returns
	}
	close(release)
	<-stopped
	if !finished.Load() {
		t.Fatal("stop returned before the interruption finished")
	}
	// Without a cancellation, stop returns at once and nothing runs.
	stop2 := interruptOnDone(context.Background(), func() { t.Error("interrupted without a cancellation") })
	stop2()
}

// loopbackListener listens on a free loopback port until the test ends.
func loopbackListener(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestLayoutCheck: the layout check passes on the wasmtime-go this module
// builds with, and names the type whose C value is not where a cast
// expects it.
func TestLayoutCheck(t *testing.T) {
	eng := newWasmtime()
	defer eng.Close()
	if err := checkWasmtimeLayout(eng); err != nil {
		t.Fatal(err)
	}
	saved := cLayouts
	t.Cleanup(func() { cLayouts = saved })
	for i, l := range saved {
		cLayouts = slices.Clone(saved)
		cLayouts[i].cType = "wasmtime._Ctype_struct_other"
		err := checkWasmtimeLayout(eng)
		if err == nil || !strings.Contains(err.Error(), l.goType.String()) {
			t.Errorf("a wrong C type for %s: %v, want an error naming it", l.goType, err)
		}
	}
}
