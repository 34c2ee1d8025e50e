// Package engine is the interface between wasiserve's host and the
// WebAssembly engines that run its guests: an Engine compiles a wasip1
// guest into a Module, and a Module runs instances of it on a listening
// socket that the host preopens for it (Config). Serve starts one instance
// and waits until it is ready.
//
// Each engine declares itself with a Kind (its name, Capabilities, rank
// for the default choice and constructor) in a package of its own:
// package wazy (the pure-Go engine and its reference peer wazy-sock),
// package wasmtime (wasmtime 42 through cgo) and package cliengine
// (installed runtime CLIs). Package builtin lists them in one Set; an
// embedder that wants fewer names only those it links.
package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Engine loads guest modules. Engines are safe for concurrent use.
type Engine interface {
	// Name is the engine's name, its Kind's.
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
	// Capabilities are the engine's: what a Config may ask of Run.
	Capabilities() Capabilities
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

// Mount preopens a host directory for the guest.
type Mount struct {
	// Host is the directory on the host.
	Host string
	// Guest is the path the guest sees it at.
	Guest string
	// ReadOnly mounts the directory read-only, confined to Host even
	// against symlinks that point outside it. Engines that cannot do that
	// refuse the mount (they lack ReadOnlyDirs).
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
	}
	if len(parts) > 2 || m.Host == "" || m.Guest == "" {
		return Mount{}, fmt.Errorf("mount %q: want host[:guest][:ro|:rw]", s)
	}
	return m, nil
}

// String is the mount as ParseMount reads it.
func (m Mount) String() string {
	s := m.Host
	if m.Guest != m.Host {
		s += ":" + m.Guest
	}
	if m.ReadOnly {
		s += ":ro"
	}
	return s
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
	// the listener (HostListener) serve it and never close it. The others
	// bind their socket themselves: they take over its TCP address,
	// closing it first.
	Listener net.Listener
	// MaxConns bounds the connections the guest may have open at once
	// (0: no limit). Only engines with ConnLimit can.
	MaxConns int
	// AllowDial lists the HOST:PORT patterns that a guest built against
	// the WasmEdge socket extensions may connect and send to, and whose
	// host names it may resolve; it may reach nothing else. Only engines
	// with SocketExtensions have them.
	AllowDial []string
	// AllowListen lists the HOST:PORT patterns such a guest may bind and
	// listen on itself (the preopened listener needs none). Only engines
	// with SocketExtensions have them.
	AllowListen []string
	// ProxyFrom are the prefixes of the listener's trusted peers (load
	// balancers), whose connections must start with a PROXY protocol
	// header, version 1 or 2, that names the client they relay: the guest
	// sees that client's address. A TCP listener only; only engines with
	// ProxyProtocol take them (see hostsock.ProxyFrom).
	ProxyFrom []netip.Prefix
	// Drain, once closed, asks for a graceful stop: the guest's accepts
	// fail (EINVAL, as accept(2) on a socket that no longer listens) so
	// that it finishes the requests it has and exits. Run still returns
	// only when the guest exits or ctx is done. Engines without the Drain
	// capability ignore it.
	Drain <-chan struct{}
	// OnReady, when set, is called once, when the guest first waits for a
	// connection, by engines with ReadyReport. Serve sets it.
	OnReady func()
	// OnStats, when set, is given a function that reads the run's
	// counters, by engines whose host owns the sockets, once the run has
	// its sockets. Serve sets it.
	OnStats func(read func() Stats)
	// Stdout and Stderr receive the guest's output; nil discards it.
	Stdout, Stderr io.Writer
	// Logger receives the engine's own messages; nil discards them.
	Logger *slog.Logger
}

// Check reports the first entry of cfg that no engine could use (see
// CheckEnv and CheckMounts).
func (cfg Config) Check() error {
	if err := CheckEnv(cfg.Env); err != nil {
		return fmt.Errorf("env %w", err)
	}
	if err := CheckMounts(cfg.Dirs); err != nil {
		return fmt.Errorf("dir %w", err)
	}
	return nil
}

// CheckEnv reports an entry of env that is not KEY=VALUE.
func CheckEnv(env []string) error {
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("%q: want KEY=VALUE", kv)
		}
	}
	return nil
}

// CheckMounts reports two mounts at one guest path.
func CheckMounts(dirs []Mount) error {
	guestPaths := map[string]bool{}
	for _, d := range dirs {
		if guestPaths[d.Guest] {
			return fmt.Errorf("%s: guest path %s is mounted twice", d, d.Guest)
		}
		guestPaths[d.Guest] = true
	}
	return nil
}

// ListenerFD is the guest fd number at which cfg's listener is preopened.
func (cfg Config) ListenerFD() uint32 {
	return uint32(3 + len(cfg.Dirs))
}

// Log is cfg.Logger, or a logger that discards.
func (cfg Config) Log() *slog.Logger {
	if cfg.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return cfg.Logger
}

// Options configure an engine (Kind.New).
type Options struct {
	// CacheDir holds compilation caches; empty means DefaultCacheDir().
	CacheDir string
	// MaxMemory caps each guest's linear memory in bytes (rounded down to
	// 64 KiB pages); 0 leaves the engine's default (4 GiB for wasm32).
	// A Go guest that needs more fails with "out of memory" and exits 2.
	MaxMemory uint64
	// Logger receives warnings about the cache (see Set.New); nil
	// discards them.
	Logger *slog.Logger
}

// WasmPageSize is the size of a WebAssembly linear memory page.
const WasmPageSize = 64 << 10

// Wasm32MaxPages is the most pages a 32-bit memory can have (4 GiB): the
// engines' own limit, and the largest a cap can be.
const Wasm32MaxPages = 65536

// MaxMemoryPages converts MaxMemory to pages, at most Wasm32MaxPages; 0
// means no limit.
func (o Options) MaxMemoryPages() uint32 {
	pages := o.MaxMemory / WasmPageSize
	if o.MaxMemory != 0 && pages == 0 {
		pages = 1
	}
	return uint32(min(pages, Wasm32MaxPages))
}

// Log is o.Logger, or a logger that discards.
func (o Options) Log() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
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
