//go:build cgo

package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bytecodealliance/wasmtime-go/v42"
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

// newTestRun instantiates wat (hostCallWAT with memory, or without) on
// the wasmtime engine with a Table whose listener is at fd 3.
func newTestRun(t testing.TB, memory string) *wasmtimeRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir := t.TempDir()
	e, err := newWasmtimeEmbedded(ctx, Options{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	wasm, err := wasmtime.Wat2Wasm(fmt.Sprintf(hostCallWAT, memory))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "hostcall.wasm")
	if err := os.WriteFile(path, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	mod, err := e.Load(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	cfg := Config{Listener: ln}
	table, closeTable, err := hostTable(ctx, Wasmtime, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeTable)
	r, err := mod.(*wasmtimeModule).newRun(ctx, cfg, table)
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

// TestWasmtimeCancelRace cancels runs that end at their next host call,
// often before the goroutine that cancellation starts has interrupted
// the engine: that interruption must not reach an engine the ended run
// has closed (it panicked: "object has been closed already").
func TestWasmtimeCancelRace(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e, err := newWasmtimeEmbedded(ctx, Options{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	wasm, err := wasmtime.Wat2Wasm(spinOnListenerWAT)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "spin.wasm")
	if err := os.WriteFile(path, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	mod, err := e.Load(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const runs = 40
	for i := range runs {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- mod.Run(runCtx, Config{Listener: ln}) }()
		time.Sleep(time.Duration(i%4) * time.Millisecond)
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	// Let any interruption still on its way run: it would panic now.
	time.Sleep(50 * time.Millisecond)
}
