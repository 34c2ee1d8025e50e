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
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/wasiserve/wasiserve/internal/hostsock"
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
	// Listener is the listener the guest serves, bound by the caller
	// (package listener): a TCP or Unix socket, or one inherited from
	// systemd, which several instances may share. Engines whose host owns
	// the listener (Capabilities.HostListener) serve it and never close
	// it. The others bind their socket themselves: they take over its TCP
	// address, closing it first (see takeOverAddr).
	Listener net.Listener
	// MaxConns bounds the connections the guest may have open at once
	// (0: no limit). Only engines whose host owns the accepts can: others
	// refuse a non-zero value.
	MaxConns int
	// AllowDial lists the HOST:PORT patterns (see hostsock.Policy) that a
	// guest built against the WasmEdge socket extensions may connect and
	// send to, and whose host names it may resolve; it may reach nothing
	// else. Only engines with SocketExtensions have them: others refuse a
	// non-empty list.
	AllowDial []string
	// AllowListen lists the HOST:PORT patterns such a guest may bind and
	// listen on itself (the preopened listener needs none). Only the
	// Only engines with SocketExtensions: others refuse a non-empty list.
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
	// onStats, set by Serve, is given the source of the run's socket
	// counters by engines whose host owns the sockets.
	onStats func(statsSource)
	// told is the environment of the address contract, set by engines
	// that send the guest PROXY headers (tellAddrs); see guestEnv.
	told []string
	// Stdout and Stderr receive the guest's output; nil discards it.
	Stdout, Stderr io.Writer
	// Logger receives the engine's own messages; nil discards them.
	Logger *slog.Logger
}

// Capability is one thing an engine can do beyond running a guest.
type Capability string

// The capabilities an engine may have.
const (
	// HostListener: the host owns the listener and every accepted
	// connection. The engine serves a listener it is lent (a Unix socket,
	// a socket from systemd, one listener shared by several instances and
	// kept across restarts, so that clients queue instead of being
	// refused), and guests may use it blocking or non-blocking.
	HostListener Capability = "a host-owned listener"
	// Drain: Run acts on Config.Drain (a graceful stop).
	Drain Capability = "graceful drain"
	// ReadyReport: Run tells when the guest first waits for a connection.
	ReadyReport Capability = "readiness at the first accept"
	// ConnLimit: Run honours Config.MaxConns.
	ConnLimit Capability = "a connection limit"
	// SocketExtensions: the WasmEdge socket extensions, under
	// Config.AllowDial and Config.AllowListen.
	SocketExtensions Capability = "the WasmEdge socket extensions"
	// ReadOnlyDirs: Mount.ReadOnly, confined against symlinks.
	ReadOnlyDirs Capability = "read-only directories"
)

// Capabilities is the set of an engine's capabilities.
type Capabilities []Capability

// Has reports whether c includes capability.
func (c Capabilities) Has(capability Capability) bool { return slices.Contains(c, capability) }

// hostSocketCapabilities are those of the engines whose host owns the
// sockets (package hostsock).
var hostSocketCapabilities = Capabilities{HostListener, Drain, ReadyReport, ConnLimit, SocketExtensions, ReadOnlyDirs}

// UnsupportedError reports a Config that needs a capability the engine
// lacks.
type UnsupportedError struct {
	Engine string
	Need   Capability
	// Engines lists the engines of this build that have it.
	Engines []string
}

func (e *UnsupportedError) Error() string {
	msg := fmt.Sprintf("engine %s does not support %s", e.Engine, e.Need)
	if len(e.Engines) > 0 {
		msg += "; use --engine " + strings.Join(e.Engines, " or --engine ")
	}
	return msg
}

// Needs lists the capabilities cfg needs of an engine.
func (cfg Config) Needs() Capabilities {
	var need Capabilities
	if cfg.Listener != nil && cfg.Listener.Addr().Network() != "tcp" {
		need = append(need, HostListener)
	}
	if cfg.MaxConns > 0 {
		need = append(need, ConnLimit)
	}
	if len(cfg.AllowDial) > 0 || len(cfg.AllowListen) > 0 {
		need = append(need, SocketExtensions)
	}
	for _, d := range cfg.Dirs {
		if d.ReadOnly {
			need = append(need, ReadOnlyDirs)
			break
		}
	}
	return need
}

// Check returns an *UnsupportedError for the first capability in need
// that the named engine lacks.
func Check(engine string, have Capabilities, need ...Capability) error {
	for _, c := range need {
		if !have.Has(c) {
			return &UnsupportedError{Engine: engine, Need: c, Engines: With(c)}
		}
	}
	return nil
}

// With lists the embedded engines that have capability c.
func With(c Capability) []string {
	var names []string
	for _, name := range Embedded() {
		if CapabilitiesOf(name).Has(c) {
			names = append(names, name)
		}
	}
	return names
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
		hint = "; guests built with the WasmEdge socket extensions run with --engine " + strings.Join(With(SocketExtensions), " or --engine ")
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
	// Engine is the name of the engine that loaded it.
	Engine() string
	// Run instantiates the guest and runs its _start until it exits or ctx
	// is done. It returns nil on exit code 0 and when ctx stopped it, and
	// an *ExitError when the guest exited non-zero or trapped.
	Run(ctx context.Context, cfg Config) error
	// Close releases the compiled code.
	Close(ctx context.Context) error
}

// Cached reports whether Load took mod's compiled code from the
// compilation cache (on disk, or in memory from an earlier Load) rather
// than compiling it. Modules of engines that can tell have a method
// Cached() bool; for the others it is false.
func Cached(mod Module) bool {
	c, ok := mod.(interface{ Cached() bool })
	return ok && c.Cached()
}

// ExitError reports a guest that exited with a non-zero code or trapped.
type ExitError struct {
	// Code is the guest's exit code; 1 for a trap.
	Code int
	// Trap is the trap message, empty for a plain exit; at most
	// MaxTrapBytes (see trapError).
	Trap string
}

// Bounds of a trap message. A deep recursion's backtrace has a line per
// frame (16,370 on wasmtime), and a guest chooses its function names.
const (
	// MaxTrapBytes bounds ExitError.Trap.
	MaxTrapBytes = 4096
	// trapHeadFrames and trapTailFrames are the backtrace frames kept
	// from the start and the end of a longer run of them.
	trapHeadFrames = 8
	trapTailFrames = 4
	// maxTrapLine bounds one line of the message.
	maxTrapLine = 240
)

// backtraceFrame matches one frame line of a backtrace ("  12: 0x32 - f").
var backtraceFrame = regexp.MustCompile(`^\s*\d+: `)

// trapError is the ExitError of a trap with message msg, bounded for
// every engine: each run of backtrace frames longer than trapHeadFrames +
// trapTailFrames keeps its first and last frames and counts the others,
// long lines are cut, and the whole at MaxTrapBytes.
func trapError(msg string) *ExitError {
	var out []string
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	for i := 0; i < len(lines); {
		j := i
		for j < len(lines) && backtraceFrame.MatchString(lines[j]) {
			j++
		}
		if j == i { // not a frame
			out = append(out, cutLine(lines[i]))
			i++
			continue
		}
		frames := lines[i:j]
		if n := len(frames) - trapHeadFrames - trapTailFrames; n > 1 {
			frames = slices.Concat(frames[:trapHeadFrames:trapHeadFrames],
				[]string{fmt.Sprintf("    ... %d frames elided ...", n)}, frames[len(frames)-trapTailFrames:])
		}
		for _, f := range frames {
			out = append(out, cutLine(f))
		}
		i = j
	}
	trap := strings.Join(out, "\n")
	if len(trap) > MaxTrapBytes {
		const cut = "\n... (cut)"
		trap = strings.ToValidUTF8(trap[:MaxTrapBytes-len(cut)], "") + cut
	}
	return &ExitError{Code: 1, Trap: trap}
}

// cutLine bounds one line of a trap message at maxTrapLine bytes.
func cutLine(line string) string {
	if len(line) <= maxTrapLine {
		return line
	}
	return strings.ToValidUTF8(line[:maxTrapLine], "") + "..."
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
	// Logger receives warnings about the cache (see New); nil discards
	// them.
	Logger *slog.Logger
}

// wasmPageSize is the size of a WebAssembly linear memory page.
const wasmPageSize = 64 << 10

// wasm32MaxPages is the most pages a 32-bit memory can have (4 GiB): the
// engines' own limit, and the largest a cap can be.
const wasm32MaxPages = 65536

// maxMemoryPages converts Options.MaxMemory to pages; 0 means no limit.
func (o Options) maxMemoryPages() uint32 {
	pages := o.MaxMemory / wasmPageSize
	if o.MaxMemory != 0 && pages == 0 {
		pages = 1
	}
	if pages > wasm32MaxPages {
		pages = wasm32MaxPages
	}
	return uint32(pages)
}

// DefaultCacheDir is wasiserve's directory under the user's cache
// directory ($XDG_CACHE_HOME, else $HOME/.cache). With neither set it is
// wasiserve-UID in the temporary directory, never a path shared by every
// user; CheckCacheDir refuses it if someone else made it or can write to
// it.
func DefaultCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(os.TempDir(), fmt.Sprintf("wasiserve-%d", os.Getuid()))
	}
	return filepath.Join(dir, "wasiserve")
}

// constructor builds one kind of engine.
type constructor func(ctx context.Context, opts Options) (Engine, error)

// kind is one engine this build knows.
type kind struct {
	new          constructor
	capabilities Capabilities
}

// kinds lists every engine this build knows. Engines needing cgo
// register a stub explaining how to get them when built without it.
func kinds() map[string]kind {
	m := map[string]kind{
		WazySock:     {newWazeroSock, Capabilities{ReadOnlyDirs}},
		wasmtimeName: {newWasmtimeEmbedded, wasmtimeCapabilities},
	}
	if hostsock.Supported() == nil {
		m[Wazy] = kind{newWazero, hostSocketCapabilities}
	}
	for name, rt := range cliRuntimes() {
		m[name] = kind{func(context.Context, Options) (Engine, error) { return newCLI(name, rt) }, nil}
	}
	return m
}

// CapabilitiesOf returns the named engine's capabilities, so that a
// caller can check what a run needs before any engine is built.
func CapabilitiesOf(name string) Capabilities { return kinds()[name].capabilities }

// Engine names.
const (
	// Wazy is the pure-Go engine: wazy (a fork of wazero, with wazero's
	// API, whose compiled code yields to Go's scheduler) with the
	// project's host socket layer (package hostsock): the host owns the
	// listener and every connection, and an idle guest blocks in the
	// kernel.
	Wazy = "wazy"
	// WazySock is wazy with its own experimental/sock listener, as in
	// wazero, kept as a reference peer for compare and bench: the runtime
	// binds the socket, and its poll_oneoff keeps a core busy while the
	// guest is idle.
	WazySock = "wazy-sock"
	// Wasmtime is wasmtime embedded through cgo.
	Wasmtime = "wasmtime"
)

// renamed maps engine names of earlier releases to today's.
var renamed = map[string]string{"wasiserve": Wazy, "wazero": Wazy}

// Names lists the engine names New accepts, sorted.
func Names() []string {
	var names []string
	for name := range kinds() {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Embedded lists the engines linked into this binary that can run, the
// project's own (whose host owns the sockets) first.
func Embedded() []string {
	var names []string
	if wasmtimeAvailable {
		names = append(names, wasmtimeName)
	}
	if hostsock.Supported() == nil {
		names = append(names, Wazy)
	}
	return append(names, WazySock)
}

// Default is the engine used when none is named, chosen from what the
// project measured (docs/BENCHMARKS.md): wasmtime where it is linked in
// (about 2.4x wazero's small-echo throughput, no idle CPU); otherwise
// wazero with the project's socket layer where it runs (no idle CPU, no
// lost echo tails); otherwise wazero's own sockets.
func Default() string {
	return Embedded()[0]
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
	if now, ok := renamed[name]; ok {
		return fmt.Errorf("engine %q: %w: it is now called %q", name, ErrUnknownEngine, now)
	}
	if _, ok := kinds()[name]; !ok {
		return fmt.Errorf("engine %q: %w (have %s)", name, ErrUnknownEngine, strings.Join(Names(), ", "))
	}
	return nil
}

// New returns the named engine. Its cache directory must be private to
// this user (CheckCacheDir); one that cannot be used (read-only, full) is
// logged and replaced by a temporary one, so the guest is compiled
// anyway.
func New(ctx context.Context, name string, opts Options) (Engine, error) {
	if opts.CacheDir == "" {
		opts.CacheDir = DefaultCacheDir()
	}
	if err := Known(name); err != nil {
		return nil, err
	}
	cleanup, err := withCache(&opts)
	if err != nil {
		return nil, err
	}
	eng, err := kinds()[name].new(ctx, opts)
	switch {
	case cleanup == nil:
		return eng, err
	case err != nil:
		return nil, errors.Join(err, cleanup())
	}
	return cachedEngine{eng, cleanup}, nil
}
