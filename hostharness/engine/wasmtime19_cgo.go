//go:build cgo && wasmtime19

package engine

/*
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

// From wasmtime 19's wasi.h; wasmtime-go links the library that defines it
// but does not wrap it.
typedef struct wasi_config_t wasi_config_t;
extern bool wasi_config_preopen_socket(wasi_config_t *config, uint32_t fd_num, const char *host_port);
*/
import "C"

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/bytecodealliance/wasmtime-go/v19"
)

// wasmtimeAvailable reports that the embedded wasmtime engine is linked in.
const wasmtimeAvailable = true

// Wasmtime19 is the engine on wasmtime 19, whose own WASI owns the
// listener (wasi_config_preopen_socket). Binaries built with the build tag
// wasmtime19 have it instead of the wasmtime engine: the two wasmtime
// libraries cannot be linked into one binary (their symbols collide).
const Wasmtime19 = "wasmtime19"

// wasmtimeName is the name this build gives its embedded wasmtime engine.
const wasmtimeName = Wasmtime19

// wasmtimeCapabilities are this build's wasmtime engine's: wasmtime 19
// binds the listener itself.
var wasmtimeCapabilities = Capabilities{Drain}

// preopenSocketAllowEnv must be set or wasmtime 19 panics in
// wasi_config_preopen_socket.
const preopenSocketAllowEnv = "WASMTIME_WASI_CONFIG_PREOPEN_SOCKET_ALLOW"

// wasmtimeEngine runs guests with wasmtime 19 embedded through wasmtime-go.
// Every Run gets an engine of its own, so that interrupting one run (epochs
// are per engine) cannot interrupt another. Compiled code is kept on disk,
// serialised and uncompressed, and each Run maps it in: loading a cached
// guest costs a hash of the wasm and an mmap, not a recompilation.
type wasmtimeEngine struct {
	modulesDir string // serialised modules, by hash of their wasm
	maxMemory  int64  // bytes per linear memory; -1 means no limit
}

// wasmtimeCodeVersion names the compiler whose output the cache holds;
// wasmtime also checks its version and settings when deserialising.
const wasmtimeCodeVersion = "wasmtime-19.0.0-epoch"

func newWasmtimeEmbedded(_ context.Context, opts Options) (Engine, error) {
	dir := filepath.Join(opts.CacheDir, "wasmtime", "modules")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("wasmtime cache: %w", err)
	}
	maxMemory := int64(-1)
	if pages := opts.maxMemoryPages(); pages != 0 {
		maxMemory = int64(pages) * wasmPageSize
	}
	return &wasmtimeEngine{modulesDir: dir, maxMemory: maxMemory}, nil
}

func (e *wasmtimeEngine) Name() string { return wasmtimeName }

// newEngine returns a wasmtime engine with epoch interruption, to stop a
// guest. All engines share one configuration, so code serialised by one
// deserialises in another.
func newEngine() *wasmtime.Engine {
	cfg := wasmtime.NewConfig()
	cfg.SetEpochInterruption(true)
	return wasmtime.NewEngineWithConfig(cfg)
}

func (e *wasmtimeEngine) Load(_ context.Context, path string) (Module, error) {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	sum := sha256.Sum256(append([]byte(wasmtimeCodeVersion), wasm...))
	code := filepath.Join(e.modulesDir, hex.EncodeToString(sum[:])+".cwasm")
	m := &wasmtimeModule{engine: e, code: code, name: filepath.Base(path)}
	eng := newEngine()
	if mod, err := wasmtime.NewModuleDeserializeFile(eng, code); err == nil {
		return m, checkWasmtimeImports(eng, mod, path)
	}
	// Not cached, or cached by an incompatible build: compile afresh.
	mod, err := wasmtime.NewModule(eng, wasm)
	if err != nil {
		return nil, fmt.Errorf("compile %s with wasmtime: %w", path, err)
	}
	if err := checkWasmtimeImports(eng, mod, path); err != nil {
		return nil, err
	}
	serialised, err := mod.Serialize()
	if err != nil {
		return nil, fmt.Errorf("serialise %s: %w", path, err)
	}
	if err := writeFileAtomic(code, serialised); err != nil {
		return nil, fmt.Errorf("cache compiled %s: %w", path, err)
	}
	return m, nil
}

// checkWasmtimeImports reports an import that wasmtime's WASI does not
// define (a WasmEdge socket extension, say) at Load, as the wazero engine
// does, rather than at every Run.
func checkWasmtimeImports(eng *wasmtime.Engine, mod *wasmtime.Module, path string) error {
	linker := wasmtime.NewLinker(eng)
	if err := linker.DefineWasi(); err != nil {
		return fmt.Errorf("load %s: wasmtime WASI: %w", path, err)
	}
	store := wasmtime.NewStore(eng)
	for _, imp := range mod.Imports() {
		name := ""
		if n := imp.Name(); n != nil {
			name = *n
		}
		if linker.Get(store, imp.Module(), name) == nil {
			return errMissingImport(path, imp.Module(), name, wasmtimeName)
		}
	}
	return nil
}

func (e *wasmtimeEngine) Close(context.Context) error { return nil }

type wasmtimeModule struct {
	engine *wasmtimeEngine
	code   string // path of the serialised module
	name   string
}

func (m *wasmtimeModule) Close(context.Context) error { return nil }

func (m *wasmtimeModule) Engine() string { return wasmtimeName }

func (m *wasmtimeModule) Run(ctx context.Context, cfg Config) error {
	listen, err := takeOverAddr(wasmtimeName, cfg)
	if err != nil {
		return err
	}
	eng := newEngine()
	mod, err := wasmtime.NewModuleDeserializeFile(eng, m.code)
	if err != nil {
		return fmt.Errorf("wasmtime: load compiled %s: %w", m.name, err)
	}
	wasi, waitOutput, err := m.wasiConfig(cfg, listen)
	if err != nil {
		return err
	}
	store := wasmtime.NewStore(eng)
	store.SetWasi(wasi)
	store.Limiter(m.engine.maxMemory, -1, -1, -1, -1)
	defer func() {
		store.Close() // closes the guest's stdio, ending the output copies
		waitOutput()
	}()
	store.SetEpochDeadline(1)

	linker := wasmtime.NewLinker(eng)
	if err := linker.DefineWasi(); err != nil {
		return fmt.Errorf("wasmtime: define WASI: %w", err)
	}
	instance, err := linker.Instantiate(store, mod)
	if err != nil {
		return fmt.Errorf("wasmtime: instantiate %s: %w", m.name, err)
	}
	start := instance.GetFunc(store, "_start")
	if start == nil {
		return fmt.Errorf("wasmtime: %s has no _start: not a WASI command", m.name)
	}

	stopped := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		drain := cfg.Drain
		for {
			select {
			case <-ctx.Done():
				interrupt(eng, listen)
				return
			case <-drain:
				drain = nil
				if err := stopListeningAt(listen); err != nil {
					cfg.logger().Warn("wasmtime: cannot stop the guest's listener; it serves until the drain timeout", "err", err)
				}
			case <-stopped:
				return
			}
		}
	}()
	_, err = start.Call(store)
	close(stopped)
	wg.Wait()
	return wasmtimeExit(ctx, err)
}

// interrupt stops a running guest: the epoch trap fires when the guest next
// runs wasm code, and a connection to its listener wakes it from a blocking
// poll_oneoff in case it is idle.
func interrupt(eng *wasmtime.Engine, listen string) {
	eng.IncrementEpoch()
	if conn, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
		conn.Close()
	}
}

// wasiConfig builds the guest's WASI context: args, env, dirs, stdio and
// the listener, which goes after the directories.
func (m *wasmtimeModule) wasiConfig(cfg Config, listen string) (*wasmtime.WasiConfig, func(), error) {
	wasi := wasmtime.NewWasiConfig()
	wasi.SetArgv(append([]string{m.name}, cfg.Args...))
	var keys, values []string
	for _, kv := range cfg.Env {
		k, v, err := splitEnv(kv)
		if err != nil {
			return nil, nil, err
		}
		keys, values = append(keys, k), append(values, v)
	}
	wasi.SetEnv(keys, values)
	for _, d := range cfg.Dirs {
		if d.ReadOnly {
			return nil, nil, fmt.Errorf("wasmtime: dir %s: wasmtime 19's C API preopens directories read-write only; drop :ro or use --engine wazero", d.Host)
		}
		if err := wasi.PreopenDir(d.Host, d.Guest); err != nil {
			return nil, nil, fmt.Errorf("wasmtime: preopen dir %s: %w", d.Host, err)
		}
	}
	stdout, err := redirect(cfg.Stdout, os.Stdout, wasi.InheritStdout, wasi.SetStdoutFile)
	if err != nil {
		return nil, nil, fmt.Errorf("wasmtime: guest stdout: %w", err)
	}
	stderr, err := redirect(cfg.Stderr, os.Stderr, wasi.InheritStderr, wasi.SetStderrFile)
	if err != nil {
		stdout()
		return nil, nil, fmt.Errorf("wasmtime: guest stderr: %w", err)
	}
	waitOutput := func() { stdout(); stderr() }
	if err := preopenSocket(wasi, cfg.ListenerFD(), listen); err != nil {
		wasi.Close()
		waitOutput()
		return nil, nil, err
	}
	if err := tuneListener(listen); err != nil {
		cfg.logger().Warn("wasmtime: cannot tune the listener (TCP_NODELAY, backlog); small responses may wait for delayed ACKs and bursts of connections may be dropped", "listen", listen, "err", err)
	}
	return wasi, waitOutput, nil
}

// redirect connects one guest output stream to w. wasmtime 19 can only
// inherit the host's stream or open a path, so any other writer is fed by a
// pipe that wasmtime opens through /dev/fd. The returned function waits
// (briefly) for the copy to drain once wasmtime has closed its end.
func redirect(w io.Writer, std *os.File, inherit func(), setFile func(string) error) (wait func(), err error) {
	noWait := func() {}
	switch {
	case w == nil:
		return noWait, nil
	case w == io.Writer(std):
		inherit()
		return noWait, nil
	}
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	err = setFile(fmt.Sprintf("/dev/fd/%d", pw.Fd()))
	pw.Close() // wasmtime opened a descriptor of its own
	if err != nil {
		r.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer r.Close()
		io.Copy(w, r)
	}()
	return func() {
		select {
		case <-done:
		case <-time.After(time.Second):
		}
	}, nil
}

// preopenSocket binds listen and preopens it at guest fd fd, through the C
// function wasmtime-go does not wrap. WasiConfig's only field is the C
// pointer; the version is pinned in go.mod and a test covers this path.
func preopenSocket(wasi *wasmtime.WasiConfig, fd uint32, listen string) error {
	if err := os.Setenv(preopenSocketAllowEnv, "1"); err != nil {
		return fmt.Errorf("wasmtime: %s: %w", preopenSocketAllowEnv, err)
	}
	ptr := *(**C.wasi_config_t)(unsafe.Pointer(wasi))
	hostPort := C.CString(listen)
	defer C.free(unsafe.Pointer(hostPort))
	ok := C.wasi_config_preopen_socket(ptr, C.uint32_t(fd), hostPort)
	runtime.KeepAlive(wasi)
	if !ok {
		return fmt.Errorf("wasmtime: preopen listener %s at fd %d failed (address in use or invalid?)", listen, fd)
	}
	return nil
}

// wasmtimeExit maps the result of calling _start to Run's contract.
func wasmtimeExit(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var wErr *wasmtime.Error
	if errors.As(err, &wErr) {
		if code, ok := wErr.ExitStatus(); ok {
			if code == 0 {
				return nil
			}
			return &ExitError{Code: int(code)}
		}
	}
	if ctx.Err() != nil {
		return nil // interrupted by the host
	}
	msg := err.Error()
	var trap *wasmtime.Trap
	if errors.As(err, &trap) {
		msg = trap.Message()
	}
	return &ExitError{Code: 1, Trap: strings.TrimSpace(msg)}
}
