package wazy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
			return newRuntime(ctx, SockName, opts, true, func(ctx context.Context, rt wazy.Runtime) error {
				_, err := wasi_snapshot_preview1.Instantiate(ctx, rt)
				return err
			})
		},
	}
}

// runtime runs guests with wazy's compiler; by itself (wazy-sock) with
// its experimental socket support, which binds the listener itself.
type runtime struct {
	name string
	// runtime compiles through the file cache in dir, when there is one.
	runtime wazy.Runtime
	cache   wazy.CompilationCache
	// dir is the engine's directory of the cache (see Options.Cache);
	// nil when there is none, and runtime compiles in memory.
	dir *engine.CacheDir
	// build makes a runtime with the engine's settings and host modules.
	build func(context.Context, wazy.CompilationCache) (wazy.Runtime, error)
	// inMemory is a runtime without a file cache, made at its first need:
	// for guests that a read-only or full cache cannot hold.
	memOnce    sync.Once
	memory     wazy.Runtime
	memCache   wazy.CompilationCache
	memErr     error
	unwritable engine.WarnOnce
	keepCode   bool // Options.KeepCode
	logger     *slog.Logger
}

// newRuntime builds a runtime of wazy, a fork of wazero whose
// compiled code checks Go's own preemption request at loop headers and
// function entries: a guest spinning without host calls still lets the
// host's garbage collector stop the world, and a cancelled run context
// stops it. (wazero's compiled code does neither unless it checks the
// context, WithCloseOnContextDone, which cost the echo guest 1.6-2.2x its
// CPU per request; wazy's checks cost less than nothing against wazero
// without them: docs/BENCHMARKS.md.) hostModules instantiates the WASI
// module the guests import.
//
// Its tables are capped by opts' budget (engine.Budget); its linear
// memory by the budget too when memoryInCode (wazy-sock), else by the
// caller's allocator (linmem, for wazy), which leaves the compiled code,
// and its cache, the same whatever the budget.
func newRuntime(ctx context.Context, name string, opts engine.Options, memoryInCode bool, hostModules func(context.Context, wazy.Runtime) error) (*runtime, error) {
	budget := opts.Budget()
	var pages uint32
	if memoryInCode {
		pages = budget.MemoryPages
	}
	e := &runtime{name: name, logger: opts.Log(), keepCode: opts.KeepCode}
	e.build = func(ctx context.Context, cache wazy.CompilationCache) (wazy.Runtime, error) {
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
		if err := hostModules(ctx, rt); err != nil {
			rt.Close(ctx)
			return nil, fmt.Errorf("%s: instantiate WASI: %w", name, err)
		}
		return rt, nil
	}
	cache, err := e.openCache(opts, pages)
	if err != nil {
		return nil, err
	}
	if e.runtime, err = e.build(ctx, cache); err != nil {
		cache.Close(ctx)
		if e.dir != nil {
			e.dir.Close()
		}
		return nil, err
	}
	e.cache = cache
	return e, nil
}

// openCache opens the engine's directory in opts.Cache and wazy's
// compilation cache in it: read-only where the cache cannot be written.
// Without a cache, or where wazy's cannot be opened in it (a read-only
// cache that has none), it is an in-memory one.
func (e *runtime) openCache(opts engine.Options, pages uint32) (wazy.CompilationCache, error) {
	if opts.Cache == nil {
		return wazy.NewCompilationCache(), nil
	}
	name := "wazy"
	if pages != 0 && pages != engine.Wasm32MaxPages {
		// wazy compiles a memory's maximum, which the limit lowers, into
		// the guest's code, and keys its cache by the wasm alone: code
		// cached under one limit would impose it on engines without. A
		// limit of engine.Wasm32MaxPages is wazy's own: no cache of its own.
		name += fmt.Sprintf("-max-memory-%d-pages", pages)
	}
	dir, err := opts.Cache.Sub(name)
	if errors.Is(err, engine.ErrUnsafeCacheDir) {
		return nil, err
	}
	readOnly := opts.Cache.ReadOnly() != nil
	if err != nil {
		if !readOnly {
			e.logger.Warn("wazy compilation cache cannot be used: compiling in memory", "engine", e.name, "err", err)
		}
		return wazy.NewCompilationCache(), nil
	}
	var cache wazy.CompilationCache
	switch {
	case dir.Path() == "":
		err = errors.New("no path leads to the open cache directory on this system")
	case readOnly:
		cache, err = wazy.NewCompilationCacheWithDirReadOnly(dir.Path())
	default:
		cache, err = wazy.NewCompilationCacheWithDir(dir.Path())
	}
	if err != nil {
		if !readOnly {
			e.logger.Warn("wazy compilation cache cannot be used: compiling in memory", "engine", e.name, "dir", dir.Name(), "err", err)
		}
		dir.Close()
		return wazy.NewCompilationCache(), nil
	}
	e.dir = dir
	return cache, nil
}

func (e *runtime) Name() string { return e.name }

// Load compiles the guest for wazy-sock.
func (e *runtime) Load(ctx context.Context, path string) (engine.Module, error) {
	return e.load(ctx, path)
}

// load compiles the guest at path, through the cache.
func (e *runtime) load(ctx context.Context, path string) (*module, error) {
	wasm, err := engine.ReadModule(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	rt, compiled, cached, err := e.compile(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("compile %s with wazy: %w", path, err)
	}
	if err := engine.CheckDeclared(path, wasm); err != nil {
		compiled.Close(ctx)
		return nil, err
	}
	// wazy would only report "module[env] not instantiated" at run time.
	for _, f := range compiled.ImportedFunctions() {
		module, name, _ := f.Import()
		if m := rt.Module(module); m == nil || m.ExportedFunctionDefinitions()[name] == nil {
			compiled.Close(ctx)
			return nil, &engine.MissingImportError{Path: path, Module: module, Name: name, Engine: e.name}
		}
	}
	return &module{runtime: rt, compiled: compiled, name: filepath.Base(path), cached: cached}, nil
}

// compile compiles wasm, through the cache when there is one, and returns
// the runtime the module belongs to and whether its code came from the
// cache. Only an entry sealed for wasm (see engine.CacheDir.Seal) is
// left for wazy to load: entries that no seal names (copied in, or left
// by a crash) are removed first, and one that does not match its seal is
// removed with it, so that wazy never maps code it did not compile for
// this wasm. A guest that a read-only cache does not hold, or whose code
// cannot be written (a full disk), is compiled in memory.
func (e *runtime) compile(ctx context.Context, wasm []byte) (wazy.Runtime, wazy.CompiledModule, bool, error) {
	if e.dir == nil {
		if e.keepCode {
			return nil, nil, false, errors.New("the compiled code could not be kept: the wazy cache cannot be used")
		}
		compiled, err := e.runtime.CompileModule(ctx, wasm)
		return e.runtime, compiled, false, err
	}
	// Another process compiling into the same cache would otherwise see
	// this one's entry, unsealed while it is written, as one to drop.
	unlock, err := e.dir.Lock(ctx)
	if err != nil {
		return nil, nil, false, err
	}
	defer unlock()
	if err := e.dir.Check(); err != nil {
		return nil, nil, false, err
	}
	sum := sha256.Sum256(wasm)
	key := hex.EncodeToString(sum[:])
	sealed := e.sealed(key)
	readOnly := e.dir.ReadOnly() != nil
	if !sealed {
		if readOnly {
			return e.compileInMemory(ctx, wasm)
		}
		e.dropUnsealed()
	}
	before := cacheEntries(e.dir.Path())
	compiled, err := e.runtime.CompileModule(ctx, wasm)
	switch {
	case err == nil:
	case readOnly && (errors.Is(err, wazy.ErrCompilationCacheMiss) || errors.Is(err, wazy.ErrCompilationCacheStale) || errors.Is(err, wazy.ErrCompilationCacheCorrupt)):
		return e.compileInMemory(ctx, wasm)
	case engine.IsWriteFailure(err) && e.keepCode:
		return nil, nil, false, fmt.Errorf("the compiled code could not be kept in %s: %w", e.dir.Name(), err)
	case engine.IsWriteFailure(err):
		e.unwritable.Warn(e.logger, "compiled code cannot be written to the cache: compiling in memory", "engine", e.name, "dir", e.dir.Name(), "err", err)
		return e.compileInMemory(ctx, wasm)
	case strings.Contains(err.Error(), "compilationcache:") && !readOnly:
		// An entry wazy cannot read though it matches its seal (one
		// an older build wrote, say): drop it and compile afresh.
		e.logger.Warn("compilation cache entry damaged: compiling afresh", "engine", e.name, "dir", e.dir.Name(), "err", err)
		e.dir.Unseal(key)
		e.dropUnsealed()
		compiled, err = e.runtime.CompileModule(ctx, wasm)
	}
	if err != nil {
		return nil, nil, false, err
	}
	added := changedEntries(e.dir.Path(), before)
	if !readOnly && (!sealed || len(added) > 0) {
		if len(added) != 1 {
			err = fmt.Errorf("wazy wrote %d cache entries for one module, want 1", len(added))
		} else {
			err = e.dir.Seal(key, added[0])
		}
		if err != nil && e.keepCode {
			compiled.Close(ctx)
			return nil, nil, false, fmt.Errorf("the compiled code could not be kept in %s: %w", e.dir.Name(), err)
		}
		if err != nil {
			e.unwritable.Warn(e.logger, "compiled code cannot be sealed in the cache: the next start compiles again", "engine", e.name, "dir", e.dir.Name(), "err", err)
		}
	}
	return e.runtime, compiled, len(added) == 0, nil
}

// sealed reports whether the cache holds an entry that matches its seal
// for key; a seal that does not match is removed, with its entry.
func (e *runtime) sealed(key string) bool {
	f, _, err := e.dir.OpenSealed(key)
	if err == nil {
		f.Close()
		return true
	}
	if e.dir.ReadOnly() == nil {
		e.dir.Unseal(key)
	}
	return false
}

// dropUnsealed removes the entries of the cache that no seal names.
func (e *runtime) dropUnsealed() {
	sealed, err := e.dir.SealedEntries()
	if err != nil {
		return
	}
	files, _ := e.dir.Files()
	for _, f := range files {
		if !sealed[f] {
			e.dir.Remove(f)
		}
	}
}

// compileInMemory compiles wasm with the engine's runtime without a file
// cache.
func (e *runtime) compileInMemory(ctx context.Context, wasm []byte) (wazy.Runtime, wazy.CompiledModule, bool, error) {
	e.memOnce.Do(func() {
		e.memCache = wazy.NewCompilationCache()
		if e.memory, e.memErr = e.build(ctx, e.memCache); e.memErr != nil {
			e.memCache.Close(ctx)
		}
	})
	if e.memErr != nil {
		return nil, nil, false, e.memErr
	}
	compiled, err := e.memory.CompileModule(ctx, wasm)
	return e.memory, compiled, false, err
}

// cacheEntries lists the files of wazy's compilation cache in dir with
// their modification times. wazy writes (or rewrites) an entry for each
// module it compiles, and fails the compilation when it cannot, but none
// for a module it found in the cache: the lists before and after
// CompileModule differ exactly when it compiled. Another process writing
// to the same cache meanwhile can only make a hit look like a compilation.
func cacheEntries(dir string) map[string]time.Time {
	entries := map[string]time.Time{}
	// The trailing separator follows dir where it is a link to the
	// directory (engine.CacheDir.Path), which WalkDir would not.
	filepath.WalkDir(dir+string(filepath.Separator), func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasSuffix(path, ".seal") {
			if info, err := d.Info(); err == nil {
				entries[path] = info.ModTime()
			}
		}
		return nil
	})
	return entries
}

// changedEntries lists the entries in dir, by path relative to it, that
// are new or rewritten since before (cacheEntries).
func changedEntries(dir string, before map[string]time.Time) []string {
	var changed []string
	for path, mtime := range cacheEntries(dir) {
		if old, ok := before[path]; !ok || !old.Equal(mtime) {
			if rel, err := filepath.Rel(dir+string(filepath.Separator), path); err == nil {
				changed = append(changed, rel)
			}
		}
	}
	return changed
}

func (e *runtime) Close(ctx context.Context) error {
	err := errors.Join(e.runtime.Close(ctx), e.cache.Close(ctx))
	if e.memory != nil {
		err = errors.Join(err, e.memory.Close(ctx), e.memCache.Close(ctx))
	}
	if e.dir != nil {
		err = errors.Join(err, e.dir.Close())
	}
	return err
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
