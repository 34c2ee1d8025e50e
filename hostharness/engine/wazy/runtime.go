package wazy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
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

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/engine/internal/enginekit"
)

// SockName is the name of the engine on wazy's own sockets.
const SockName = "wazy-sock"

// sockCapabilities are wazy-sock's: it binds its socket itself.
var sockCapabilities = engine.Capabilities{engine.ReadOnlyDirs}

// SockKind declares wazy-sock, the reference peer: ranked last of the
// embedded engines.
func SockKind() engine.Kind {
	return engine.Kind{
		Name:         SockName,
		Capabilities: sockCapabilities,
		Rank:         10,
		New: func(ctx context.Context, opts engine.Options) (engine.Engine, error) {
			return newRuntime(ctx, SockName, opts, true)
		},
	}
}

// runtime runs guests with wazy's compiler; by itself (wazy-sock) with
// its experimental socket support, which binds the listener itself.
type runtime struct {
	name     string
	runtime  wazy.Runtime
	cache    wazy.CompilationCache
	cacheDir string
	logger   *slog.Logger
}

// newRuntime builds a runtime of wazy, a fork of wazero whose
// compiled code checks Go's own preemption request at loop headers and
// function entries: a guest spinning without host calls still lets the
// host's garbage collector stop the world, and a cancelled run context
// stops it. (wazero's compiled code does neither unless it checks the
// context, WithCloseOnContextDone, which cost the echo guest 1.6-2.2x its
// CPU per request; wazy's checks cost less than nothing against wazero
// without them: docs/BENCHMARKS.md.)
//
// Its tables are capped by opts' budget (engine.Budget); its linear
// memory by the budget too when memoryInCode (wazy-sock), else by the
// caller's allocator (linmem, for wazy), which leaves the compiled code,
// and its cache, the same whatever the budget.
func newRuntime(ctx context.Context, name string, opts engine.Options, memoryInCode bool) (*runtime, error) {
	budget := opts.Budget()
	var pages uint32
	if memoryInCode {
		pages = budget.MemoryPages
	}
	cacheDir := filepath.Join(opts.CacheDir, "wazy")
	if pages != 0 && pages != engine.Wasm32MaxPages {
		// wazy compiles a memory's maximum, which the limit lowers, into
		// the guest's code, and keys its cache by the wasm alone: code
		// cached under one limit would impose it on engines without. A
		// limit of engine.Wasm32MaxPages is wazy's own: no cache of its own.
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
		WithDebugInfoEnabled(false).
		// wazy caps each table, and the sum of their declared sizes;
		// engine.CheckDeclared at Load caps their number.
		WithTableLimitElements(budget.TableElements)
	if pages != 0 {
		rtCfg = rtCfg.WithMemoryLimitPages(pages)
	}
	rt := wazy.NewRuntimeWithConfig(ctx, rtCfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("wazy: instantiate WASI: %w", err)
	}
	return &runtime{name: name, runtime: rt, cache: cache, cacheDir: cacheDir, logger: opts.Log()}, nil
}

func (e *runtime) Name() string { return e.name }

// Load compiles the guest for wazy-sock.
func (e *runtime) Load(ctx context.Context, path string) (engine.Module, error) {
	return e.load(ctx, path)
}

// load compiles the guest at path, through the cache.
func (e *runtime) load(ctx context.Context, path string) (*module, error) {
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
		if clearErr := engine.ClearFiles(e.cacheDir); clearErr != nil {
			return nil, fmt.Errorf("compile %s with wazy: %w; clearing the cache: %w", path, err, clearErr)
		}
		compiled, err = e.runtime.CompileModule(ctx, wasm)
	}
	if err != nil {
		return nil, fmt.Errorf("compile %s with wazy: %w", path, err)
	}
	cached := maps.Equal(before, cacheEntries(e.cacheDir))
	if err := engine.CheckDeclared(path, wasm); err != nil {
		compiled.Close(ctx)
		return nil, err
	}
	// wazy would only report "module[env] not instantiated" at run time.
	for _, f := range compiled.ImportedFunctions() {
		module, name, _ := f.Import()
		if m := e.runtime.Module(module); m == nil || m.ExportedFunctionDefinitions()[name] == nil {
			compiled.Close(ctx)
			return nil, &engine.MissingImportError{Path: path, Module: module, Name: name, Engine: e.name}
		}
	}
	return &module{runtime: e.runtime, compiled: compiled, name: filepath.Base(path), cached: cached}, nil
}

// cacheEntries lists the files of wazy's compilation cache in dir with
// their modification times. wazy writes (or rewrites) an entry for each
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

func (e *runtime) Close(ctx context.Context) error {
	err := e.runtime.Close(ctx)
	return errors.Join(err, e.cache.Close(ctx))
}

type module struct {
	runtime  wazy.Runtime
	compiled wazy.CompiledModule
	name     string
	cached   bool // Load compiled nothing
}

// Cached reports whether Load found the code in the cache (see Cached).
func (m *module) Cached() bool { return m.cached }

// Run runs the guest on wazy's own listener (wazy-sock).
func (m *module) Run(ctx context.Context, cfg engine.Config) error {
	if err := cfg.Check(); err != nil {
		return err
	}
	addr, err := engine.TakeOverAddr(SockName, cfg)
	if err != nil {
		return err
	}
	host, portText, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portText)
	if strings.Contains(host, ":") {
		// wazy joins host and port without brackets.
		host = "[" + host + "]"
	}
	modCfg, closeFS, err := m.moduleConfig(cfg, nil, nil)
	if err != nil {
		return err
	}
	defer closeFS()
	// wazy places listeners after the preopened directories.
	return m.instantiate(sock.WithConfig(ctx, sock.NewConfig().WithTCPListener(host, port)), modCfg)
}

// moduleConfig is the guest's configuration under cfg: arguments, only
// cfg.Env and told (see enginekit.GuestEnv), stdio, real clocks and
// randomness, and cfg.Dirs, whose FSConfig wrapFS (when not nil) may
// extend. The returned function releases the mounts once the guest has
// stopped.
func (m *module) moduleConfig(cfg engine.Config, told []string, wrapFS func(wazy.FSConfig) wazy.FSConfig) (wazy.ModuleConfig, func(), error) {
	fs, closeFS, err := fsConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	if wrapFS != nil {
		fs = wrapFS(fs)
	}
	modCfg := wazy.NewModuleConfig().
		WithName(""). // anonymous: one compiled module can run many times at once
		WithArgs(append([]string{m.name}, cfg.Args...)...).
		WithStdout(enginekit.WriterOrDiscard(cfg.Stdout)).
		WithStderr(enginekit.WriterOrDiscard(cfg.Stderr)).
		WithFSConfig(fs).
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
		WithRandSource(rand.Reader)
	for _, kv := range enginekit.GuestEnv(cfg, told) {
		modCfg = modCfg.WithEnv(enginekit.SplitEnv(kv))
	}
	return modCfg, closeFS, nil
}

// instantiate runs the guest's _start to its end under ctx.
func (m *module) instantiate(ctx context.Context, modCfg wazy.ModuleConfig) error {
	mod, err := m.runtime.InstantiateModule(ctx, m.compiled, modCfg)
	if mod != nil {
		mod.Close(context.WithoutCancel(ctx))
	}
	return exitOf(ctx, err)
}

// fsConfig mounts cfg.Dirs. Read-only mounts go through os.Root, which
// confines every lookup to the directory; wazy's own read-write mounts
// follow symlinks out of it (wazero issue 2321), which is logged.
func fsConfig(cfg engine.Config) (wazy.FSConfig, func(), error) {
	fs := wazy.NewFSConfig()
	var roots []*os.Root
	closeAll := func() {
		for _, r := range roots {
			r.Close()
		}
	}
	for _, d := range cfg.Dirs {
		if !d.ReadOnly {
			cfg.Log().Warn("wazy read-write mounts are not confined against symlinks: the guest can reach host files outside the directory; add :ro or use another engine for untrusted guests", "dir", d.Host)
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

// exitOf maps wazy's result of running _start to Run's contract.
func exitOf(ctx context.Context, err error) error {
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
			return &engine.ExitError{Code: int(exit.ExitCode())}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	var netErr *net.OpError
	if errors.As(err, &netErr) {
		return fmt.Errorf("wazy: preopen listener: %w", err) // e.g. the port is taken
	}
	return engine.TrapError(err.Error())
}

func (m *module) Close(ctx context.Context) error { return m.compiled.Close(ctx) }

func (m *module) Engine() string { return SockName }

func (m *module) Capabilities() engine.Capabilities { return sockCapabilities }
