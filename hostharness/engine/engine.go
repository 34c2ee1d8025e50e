// Package engine runs a wasip1 guest module with a preopened listening
// socket under one of several WebAssembly engines: wazero (pure Go),
// wasmtime embedded through cgo, or an installed runtime CLI.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Mount preopens a host directory for the guest.
type Mount struct {
	// Host is the directory on the host.
	Host string
	// Guest is the path the guest sees it at.
	Guest string
	// ReadOnly mounts the directory read-only, confined to Host even
	// against symlinks that point outside it. Engines that cannot do that
	// refuse the mount.
	ReadOnly bool
}

// ParseMount parses "host[:guest][:ro|:rw]"; guest defaults to host and the
// mode to read-write.
func ParseMount(s string) (Mount, error) {
	parts := strings.Split(s, ":")
	var m Mount
	if n := len(parts); n > 1 && (parts[n-1] == "ro" || parts[n-1] == "rw") {
		m.ReadOnly = parts[n-1] == "ro"
		parts = parts[:n-1]
	}
	switch len(parts) {
	case 1:
		m.Host, m.Guest = parts[0], parts[0]
	case 2:
		m.Host, m.Guest = parts[0], parts[1]
	default:
		return Mount{}, fmt.Errorf("dir %q: want host[:guest][:ro|:rw]", s)
	}
	if m.Host == "" || m.Guest == "" {
		return Mount{}, fmt.Errorf("dir %q: want host[:guest][:ro|:rw]", s)
	}
	return m, nil
}

// Config describes one run of a guest.
type Config struct {
	// Args are the guest's arguments after its program name.
	Args []string
	// Env holds "KEY=VALUE" entries; the guest sees nothing else.
	Env []string
	// Dirs are preopened in order, at fds 3, 4, ...; the listener comes
	// after them so that the guest's preopen scan still finds them.
	Dirs []Mount
	// Listen is the "host:port" the engine binds and preopens for the
	// guest. The port must not be 0: Serve picks one first.
	Listen string
	// Listener, when set, is a listener the host already has: a Unix
	// socket, a socket inherited from systemd, or one that several guest
	// instances share. The engine serves it instead of binding Listen and
	// never closes it. Only engines whose host owns the accepts can: others
	// refuse it.
	Listener net.Listener
	// MaxConns bounds the connections the guest may have open at once
	// (0: no limit). Only engines whose host owns the accepts can: others
	// refuse a non-zero value.
	MaxConns int
	// AllowDial lists the HOST:PORT patterns (see hostsock.Policy) that a
	// guest built against the WasmEdge socket extensions may connect and
	// send to, and whose host names it may resolve; it may reach nothing
	// else. Only the wasiserve engine has the extensions: others refuse a
	// non-empty list.
	AllowDial []string
	// AllowListen lists the HOST:PORT patterns such a guest may bind and
	// listen on itself (the preopened listener needs none). Only the
	// wasiserve engine: others refuse a non-empty list.
	AllowListen []string
	// Drain, once closed, asks for a graceful stop: the guest's accepts
	// fail (EINVAL, as accept(2) on a socket that no longer listens) so
	// that it finishes the requests it has and exits, and a listener the
	// engine bound itself refuses new connections. Run still returns only
	// when the guest exits or ctx is done. Engines that cannot do this
	// ignore it (Instance.Drain reports that).
	Drain <-chan struct{}
	// onReady, set by Serve for modules that are readyReporters, is called
	// once when the guest first waits for a connection.
	onReady func()
	// told is the environment of the address contract, set by engines
	// that send the guest PROXY headers (tellAddrs); see guestEnv.
	told []string
	// Stdout and Stderr receive the guest's output; nil discards it.
	Stdout, Stderr io.Writer
	// Logger receives the engine's own messages; nil discards them.
	Logger *slog.Logger
}

// onlyEngineSockets returns an error, for engines whose listener and
// accepts live inside the engine, when cfg asks for something only a host
// that owns the sockets can do.
func (cfg Config) onlyEngineSockets(engine string) error {
	var need []string
	if cfg.Listener != nil {
		need = append(need, "a host-owned listener ("+cfg.Listener.Addr().Network()+" "+cfg.Listener.Addr().String()+")")
	}
	if cfg.MaxConns > 0 {
		need = append(need, "--max-conns")
	}
	if len(cfg.AllowDial) > 0 {
		need = append(need, "--allow-dial")
	}
	if len(cfg.AllowListen) > 0 {
		need = append(need, "--allow-listen")
	}
	if len(need) == 0 {
		return nil
	}
	return fmt.Errorf("engine %s: %s needs an engine whose host owns the sockets; use --engine %s", engine, strings.Join(need, " and "), Wasiserve)
}

// afterClose runs f in a goroutine of its own once ch is closed, unless
// stop is called first. A nil ch never closes.
func afterClose(ch <-chan struct{}, f func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		select {
		case <-ch:
			f()
		case <-done:
		}
	}()
	return func() { close(done) }
}

// errMissingImport is Load's error for a guest that imports a function the
// engine does not provide (a WasmEdge socket extension, say).
func errMissingImport(path, module, name, engine string) error {
	hint := ""
	if module == "wasi_snapshot_preview1" && strings.HasPrefix(name, "sock_") {
		hint = "; guests built with the WasmEdge socket extensions run with --engine " + Wasiserve
	}
	return fmt.Errorf("load %s: it imports %s.%s, which the %s engine does not provide%s", path, module, name, engine, hint)
}

// ListenerFD is the guest fd number at which cfg's listener is preopened.
func (cfg Config) ListenerFD() uint32 {
	return uint32(3 + len(cfg.Dirs))
}

// splitEnv splits a "KEY=VALUE" entry.
func splitEnv(kv string) (key, value string, err error) {
	key, value, ok := strings.Cut(kv, "=")
	if !ok || key == "" {
		return "", "", fmt.Errorf("env %q: want KEY=VALUE", kv)
	}
	return key, value, nil
}

func (cfg Config) logger() *slog.Logger {
	if cfg.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return cfg.Logger
}

// Engine loads guest modules. Engines are safe for concurrent use.
type Engine interface {
	// Name is the engine's name as given to New.
	Name() string
	// Load compiles the module at path (through the engine's compilation
	// cache, where it has one) so that it can be run many times.
	Load(ctx context.Context, path string) (Module, error)
	// Close releases the engine's resources.
	Close(ctx context.Context) error
}

// Module is a compiled guest.
type Module interface {
	// Run instantiates the guest and runs its _start until it exits or ctx
	// is done. It returns nil on exit code 0 and when ctx stopped it, and
	// an *ExitError when the guest exited non-zero or trapped.
	Run(ctx context.Context, cfg Config) error
	// Close releases the compiled code.
	Close(ctx context.Context) error
}

// ExitError reports a guest that exited with a non-zero code or trapped.
type ExitError struct {
	// Code is the guest's exit code; 1 for a trap.
	Code int
	// Trap is the trap message, empty for a plain exit.
	Trap string
}

func (e *ExitError) Error() string {
	if e.Trap != "" {
		return "guest trapped: " + e.Trap
	}
	return fmt.Sprintf("guest exited with code %d", e.Code)
}

// Options configure New.
type Options struct {
	// CacheDir holds compilation caches; empty means DefaultCacheDir().
	CacheDir string
	// MaxMemory caps each guest's linear memory in bytes (rounded down to
	// 64 KiB pages); 0 leaves the engine's default (4 GiB for wasm32).
	// A Go guest that needs more fails with "out of memory" and exits 2.
	MaxMemory uint64
}

// wasmPageSize is the size of a WebAssembly linear memory page.
const wasmPageSize = 64 << 10

// maxMemoryPages converts Options.MaxMemory to pages; 0 means no limit.
func (o Options) maxMemoryPages() uint32 {
	pages := o.MaxMemory / wasmPageSize
	if o.MaxMemory != 0 && pages == 0 {
		pages = 1
	}
	if pages > 65536 {
		pages = 65536
	}
	return uint32(pages)
}

// DefaultCacheDir is wasiserve's directory under the user cache dir.
func DefaultCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "wasiserve")
}

// constructor builds one kind of engine.
type constructor func(ctx context.Context, opts Options) (Engine, error)

// constructors lists every engine this build knows. Engines needing cgo
// register a stub explaining how to get them when built without it.
func constructors() map[string]constructor {
	m := map[string]constructor{
		Wazero:   newWazero,
		Wasmtime: newWasmtimeEmbedded,
	}
	m[Wasiserve] = newWasiserve
	for name, rt := range cliRuntimes() {
		m[name] = func(context.Context, Options) (Engine, error) { return newCLI(name, rt) }
	}
	return m
}

// Engine names.
const (
	Wazero   = "wazero"
	Wasmtime = "wasmtime"
)

// Names lists the engine names New accepts, sorted.
func Names() []string {
	var names []string
	for name := range constructors() {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Embedded lists the engines linked into this binary that can run.
func Embedded() []string {
	if wasmtimeAvailable {
		return withWasiserve([]string{Wasmtime, Wazero})
	}
	return withWasiserve([]string{Wazero})
}

// Default is the engine used when none is named, chosen from what the
// project measured (docs/BENCHMARKS.md): wasmtime where it is linked in
// (about 2.4x wasiserve's small-echo throughput, no idle CPU); otherwise
// wasiserve where its socket layer runs (no idle CPU, no lost echo tails,
// and 1.8x plain wazero's throughput); otherwise wazero.
func Default() string {
	embedded := Embedded()
	if !slices.Contains(embedded, Wasmtime) && slices.Contains(embedded, Wasiserve) {
		return Wasiserve
	}
	return embedded[0]
}

// ErrUnknownEngine is returned (wrapped) by New for an unknown name.
var ErrUnknownEngine = errors.New("unknown engine")

// SelectAll is the --engine value that selects every engine.
const SelectAll = "all"

// Select expands an --engine value: SelectAll is every embedded engine then
// every runtime CLI (installed or not: callers report the missing ones);
// anything else is a comma-separated list of known names.
func Select(spec string) ([]string, error) {
	if spec == SelectAll {
		names := Embedded()
		for name := range cliRuntimes() {
			names = append(names, name)
		}
		sort.Strings(names[len(Embedded()):])
		return names, nil
	}
	names := strings.Split(spec, ",")
	for _, name := range names {
		if err := Known(name); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// Known reports an error, before any work is done, when name is not an
// engine New accepts.
func Known(name string) error {
	if _, ok := constructors()[name]; !ok {
		return fmt.Errorf("engine %q: %w (have %s)", name, ErrUnknownEngine, strings.Join(Names(), ", "))
	}
	return nil
}

// New returns the named engine.
func New(ctx context.Context, name string, opts Options) (Engine, error) {
	if opts.CacheDir == "" {
		opts.CacheDir = DefaultCacheDir()
	}
	if err := Known(name); err != nil {
		return nil, err
	}
	return constructors()[name](ctx, opts)
}
