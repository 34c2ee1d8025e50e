package engine

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/samyfodil/wazy"
	"github.com/samyfodil/wazy/experimental/sock"
	"github.com/samyfodil/wazy/imports/wasi_snapshot_preview1"
	"github.com/samyfodil/wazy/sys"
)

// wazeroEngine runs guests with wazero's compiler and its experimental
// socket support, which binds the listener itself (WazySock).
type wazeroEngine struct {
	name     string
	runtime  wazy.Runtime
	cache    wazy.CompilationCache
	cacheDir string
	logger   *slog.Logger
}

func newWazeroSock(ctx context.Context, opts Options) (Engine, error) {
	e, err := newWazeroEngine(ctx, WazySock, opts)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// newWazeroEngine builds a runtime of wazy, a fork of wazero whose
// compiled code checks Go's own preemption request at loop headers and
// function entries: a guest spinning without host calls still lets the
// host's garbage collector stop the world, and a cancelled run context
// stops it. (wazero's compiled code does neither unless it checks the
// context, WithCloseOnContextDone, which cost the echo guest 1.6-2.2x its
// CPU per request; wazy's checks cost less than nothing against wazero
// without them: docs/BENCHMARKS.md.)
func newWazeroEngine(ctx context.Context, name string, opts Options) (*wazeroEngine, error) {
	pages := opts.maxMemoryPages()
	cacheDir := filepath.Join(opts.CacheDir, "wazy")
	if pages != 0 && pages != wasm32MaxPages {
		// wazy compiles a memory's maximum, which the limit lowers, into
		// the guest's code, and keys its cache by the wasm alone: code
		// cached under one limit would impose it on engines without. A
		// limit of wasm32MaxPages is wazy's own: no cache of its own.
		cacheDir += fmt.Sprintf("-max-memory-%d-pages", pages)
	}
	cache, err := wazy.NewCompilationCacheWithDir(cacheDir)
	if err != nil {
		return nil, fmt.Errorf("wazy compilation cache: %w", err)
	}
	// No DWARF: wazy would keep the whole .wasm file in memory (~10 MB
	// for the echo guest) for the source lines of trap backtraces, which
	// name functions without it, as wasmtime's do.
	rtCfg := wazy.NewRuntimeConfig().
		WithCompilationCache(cache).
		WithDebugInfoEnabled(false)
	if pages != 0 {
		rtCfg = rtCfg.WithMemoryLimitPages(pages)
	}
	rt := wazy.NewRuntimeWithConfig(ctx, rtCfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("wazy: instantiate WASI: %w", err)
	}
	return &wazeroEngine{name: name, runtime: rt, cache: cache, cacheDir: cacheDir, logger: opts.logger()}, nil
}

func (e *wazeroEngine) Name() string { return e.name }

func (e *wazeroEngine) Load(ctx context.Context, path string) (Module, error) {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	before := cacheEntries(e.cacheDir)
	compiled, err := e.runtime.CompileModule(ctx, wasm)
	if err != nil && strings.Contains(err.Error(), "compilationcache:") {
		// A damaged cache entry (a truncated file, say): drop the
		// cache's files and compile afresh.
		e.logger.Warn("compilation cache damaged: clearing it and compiling afresh", "engine", e.name, "dir", e.cacheDir, "err", err)
		if clearErr := clearFiles(e.cacheDir); clearErr != nil {
			return nil, fmt.Errorf("compile %s with wazero: %w; clearing the cache: %w", path, err, clearErr)
		}
		compiled, err = e.runtime.CompileModule(ctx, wasm)
	}
	if err != nil {
		return nil, fmt.Errorf("compile %s with wazy: %w", path, err)
	}
	cached := maps.Equal(before, cacheEntries(e.cacheDir))
	// wazero would only report "module[env] not instantiated" at run time.
	for _, f := range compiled.ImportedFunctions() {
		module, name, _ := f.Import()
		if m := e.runtime.Module(module); m == nil || m.ExportedFunctionDefinitions()[name] == nil {
			compiled.Close(ctx)
			return nil, errMissingImport(path, module, name, e.name)
		}
	}
	return &wazeroModule{runtime: e.runtime, compiled: compiled, name: filepath.Base(path), cached: cached}, nil
}

// cacheEntries lists the files of wazero's compilation cache in dir with
// their modification times. wazero writes (or rewrites) an entry for each
// module it compiles, and fails the compilation when it cannot, but none
// for a module it found in the cache: the lists before and after
// CompileModule differ exactly when it compiled. Another process writing
// to the same cache meanwhile can only make a hit look like a compilation.
func cacheEntries(dir string) map[string]time.Time {
	entries := map[string]time.Time{}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				entries[path] = info.ModTime()
			}
		}
		return nil
	})
	return entries
}

func (e *wazeroEngine) Close(ctx context.Context) error {
	err := e.runtime.Close(ctx)
	return errors.Join(err, e.cache.Close(ctx))
}

type wazeroModule struct {
	runtime  wazy.Runtime
	compiled wazy.CompiledModule
	name     string
	cached   bool // Load compiled nothing
}

// Cached reports whether Load found the code in the cache (see Cached).
func (m *wazeroModule) Cached() bool { return m.cached }

func (m *wazeroModule) Run(ctx context.Context, cfg Config) error {
	addr, err := takeOverAddr(WazySock, cfg)
	if err != nil {
		return err
	}
	host, portText, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portText)
	if strings.Contains(host, ":") {
		// wazero joins host and port without brackets.
		host = "[" + host + "]"
	}
	modCfg, closeFS, err := m.moduleConfig(cfg, nil)
	if err != nil {
		return err
	}
	defer closeFS()
	// wazero places listeners after the preopened directories.
	return m.instantiate(sock.WithConfig(ctx, sock.NewConfig().WithTCPListener(host, port)), modCfg)
}

// moduleConfig is the guest's configuration under cfg: arguments, only
// cfg.Env, stdio, real clocks and randomness, and cfg.Dirs, whose FSConfig
// wrapFS (when not nil) may extend. The returned function releases the
// mounts once the guest has stopped.
func (m *wazeroModule) moduleConfig(cfg Config, wrapFS func(wazy.FSConfig) wazy.FSConfig) (wazy.ModuleConfig, func(), error) {
	fs, closeFS, err := wazeroFSConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	if wrapFS != nil {
		fs = wrapFS(fs)
	}
	modCfg := wazy.NewModuleConfig().
		WithName(""). // anonymous: one compiled module can run many times at once
		WithArgs(append([]string{m.name}, cfg.Args...)...).
		WithStdout(writerOrDiscard(cfg.Stdout)).
		WithStderr(writerOrDiscard(cfg.Stderr)).
		WithFSConfig(fs).
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
		WithRandSource(rand.Reader)
	for _, kv := range cfg.guestEnv() {
		k, v, err := splitEnv(kv)
		if err != nil {
			closeFS()
			return nil, nil, err
		}
		modCfg = modCfg.WithEnv(k, v)
	}
	return modCfg, closeFS, nil
}

// instantiate runs the guest's _start to its end under ctx.
func (m *wazeroModule) instantiate(ctx context.Context, modCfg wazy.ModuleConfig) error {
	mod, err := m.runtime.InstantiateModule(ctx, m.compiled, modCfg)
	if mod != nil {
		mod.Close(context.WithoutCancel(ctx))
	}
	return wazeroExit(ctx, err)
}

// wazeroFSConfig mounts cfg.Dirs. Read-only mounts go through os.Root, which
// confines every lookup to the directory; wazero's own read-write mounts
// follow symlinks out of it (wazero issue 2321), which is logged.
func wazeroFSConfig(cfg Config) (wazy.FSConfig, func(), error) {
	fs := wazy.NewFSConfig()
	var roots []*os.Root
	closeAll := func() {
		for _, r := range roots {
			r.Close()
		}
	}
	guestPaths := map[string]bool{}
	for _, d := range cfg.Dirs {
		if guestPaths[d.Guest] {
			closeAll()
			return nil, nil, fmt.Errorf("dir %s:%s: guest path %s is mounted twice", d.Host, d.Guest, d.Guest)
		}
		guestPaths[d.Guest] = true
		if !d.ReadOnly {
			cfg.logger().Warn("wazero read-write mounts are not confined against symlinks: the guest can reach host files outside the directory; add :ro or use another engine for untrusted guests", "dir", d.Host)
			fs = fs.WithDirMount(d.Host, d.Guest)
			continue
		}
		root, err := os.OpenRoot(d.Host)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("dir %s: %w", d.Host, err)
		}
		roots = append(roots, root)
		fs = fs.WithFSMount(root.FS(), d.Guest)
	}
	return fs, closeAll, nil
}

// wazeroExit maps wazero's result of running _start to Run's contract.
func wazeroExit(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch {
		case exit.ExitCode() == 0:
			return nil
		case ctx.Err() != nil:
			return nil // stopped by the host
		default:
			return &ExitError{Code: int(exit.ExitCode())}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	var netErr *net.OpError
	if errors.As(err, &netErr) {
		return fmt.Errorf("wazy: preopen listener: %w", err) // e.g. the port is taken
	}
	return trapError(err.Error())
}

func (m *wazeroModule) Close(ctx context.Context) error { return m.compiled.Close(ctx) }

func (m *wazeroModule) Engine() string { return WazySock }

func writerOrDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
