//go:build cgo

package wasmtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	wt "github.com/bytecodealliance/wasmtime-go/v42"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/engine/internal/enginekit"
	"github.com/wasiserve/wasiserve/internal/hostsock"
)

// available reports whether the engine runs here: where the host socket
// layer does.
func available() error { return hostsock.Supported() }

// wasmtimeEngine runs guests on wasmtime 42 (wasmtime-go v42) with the
// project's host socket layer: wasmtime's own WASI preview 1 serves
// stdio, files and clock_res_get, hostsock serves every fd of the guest's
// Table (the listener, accepted connections, sockets the guest opens)
// through host functions that shadow wasmtime's (see wasmtimeFuncs), and
// clock_time_get is served in C (clock.c), with no call into Go.
//
// One wasmtime engine serves every module and run: Load maps a module's
// compiled code in once, and each Run instantiates it in a store of its
// own. Epoch interruption is per engine, so a run's cancellation
// increments the epoch of every run; each store's epoch deadline callback
// (ws_epoch_deadline in hostcall.c) stops only the run that was
// cancelled and lets the others go on. Compiled code is kept on disk,
// serialised: loading a cached guest costs a hash of the wasm and an
// mmap, not a recompilation.
type wasmtimeEngine struct {
	// modules holds serialised modules, by hash of their wasm, sealed;
	// nil when there is no cache, and modules are compiled in memory.
	modules *engine.CacheDir
	// placeholder is the empty directory preopened at the listener's fd
	// number, so that wasmtime never gives that number to a file.
	placeholder string
	// dirs are the cache directories the engine holds open.
	dirs []*engine.CacheDir
	// unwritable warns once that compiled code cannot be cached.
	unwritable engine.WarnOnce
	keepCode   bool // Options.KeepCode
	logger     *slog.Logger
	budget     engine.Budget // each run's, enforced by its store's limits
	funcs      []wasmtimeFunc
	eng        *wt.Engine
	// forward is the forwarding module (see forwardModuleWAT).
	forward *wt.Module
	// users are the engine's open modules: eng and forward are closed
	// once the engine is closed and the last of them is.
	users shared
}

// wasmtimeCodeVersion names the compiler and settings whose output the
// cache holds; wasmtime also checks its version and settings when
// deserialising.
const wasmtimeCodeVersion = "wasmtime-42.0.0-epoch"

func newEngine(_ context.Context, opts engine.Options) (_ engine.Engine, err error) {
	e := &wasmtimeEngine{logger: opts.Log(), keepCode: opts.KeepCode}
	if err := e.openCache(opts); err != nil {
		return nil, fmt.Errorf("wasmtime cache: %w", err)
	}
	e.budget, e.eng = opts.Budget(), newWasmtime()
	e.users.release = e.release
	defer func() {
		if err != nil {
			e.release()
		}
	}()
	if err := checkWasmtimeLayout(e.eng); err != nil {
		return nil, fmt.Errorf("engine %s: %w", Name, err)
	}
	if e.funcs, err = wasmtimeFuncs(e.eng); err != nil {
		return nil, fmt.Errorf("engine %s: %w", Name, err)
	}
	wasm, err := wt.Wat2Wasm(forwardModuleWAT(e.funcs))
	if err != nil {
		return nil, fmt.Errorf("engine %s: forwarding module: %w", Name, err)
	}
	if e.forward, _, _, err = e.compile(wasm); err != nil {
		return nil, fmt.Errorf("engine %s: forwarding module: %w", Name, err)
	}
	return e, nil
}

func (e *wasmtimeEngine) Name() string { return Name }

// newWasmtime returns a wasmtime engine with epoch interruption, to stop a
// guest. All engines share one configuration, so code serialised by one
// deserialises in another.
func newWasmtime() *wt.Engine {
	return wt.NewEngineWithConfig(wasmtimeConfig())
}

// wasmtimeConfig is the configuration of every engine: epoch
// interruption, to stop a guest.
func wasmtimeConfig() *wt.Config {
	cfg := wt.NewConfig()
	cfg.SetEpochInterruption(true)
	return cfg
}

// openCache opens the engine's directories in opts.Cache: the modules
// and the placeholder. Where there is no cache, or they cannot be made in
// it (a read-only cache without them), modules are compiled in memory and
// the placeholder is the cache (or the temporary directory): the guest
// never reaches it, as every call on its fd number goes to the Table.
func (e *wasmtimeEngine) openCache(opts engine.Options) error {
	e.placeholder = os.TempDir()
	if opts.Cache == nil {
		return nil
	}
	// The cache itself until there is a placeholder of its own, on a
	// descriptor of the engine's: its modules may run after opts.Cache is
	// closed with the engine.
	if root, err := opts.Cache.Dup(); err == nil {
		e.dirs = append(e.dirs, root)
		e.placeholder = root.Path()
	}
	dir, err := opts.Cache.Sub("wasmtime42")
	if errors.Is(err, engine.ErrUnsafeCacheDir) {
		return err
	}
	if err != nil {
		warnUnusable(opts, err)
		return nil
	}
	defer dir.Close()
	for _, sub := range []struct {
		name string
		set  func(*engine.CacheDir)
	}{
		{"modules", func(d *engine.CacheDir) { e.modules = d }},
		{"listener-placeholder", func(d *engine.CacheDir) { e.placeholder = d.Path() }},
	} {
		d, err := dir.Sub(sub.name)
		if errors.Is(err, engine.ErrUnsafeCacheDir) {
			e.closeCache()
			return err
		}
		if err != nil {
			warnUnusable(opts, err)
			continue
		}
		e.dirs = append(e.dirs, d)
		sub.set(d)
	}
	return nil
}

// warnUnusable logs that a directory of the cache cannot be used, unless
// the cache is read-only, which Kind.Open has said.
func warnUnusable(opts engine.Options, err error) {
	if opts.Cache.ReadOnly() == nil {
		opts.Log().Warn("wasmtime cache cannot be used: compiling in memory", "err", err)
	}
}

// closeCache closes the engine's cache directories.
func (e *wasmtimeEngine) closeCache() {
	for _, d := range e.dirs {
		d.Close()
	}
	e.dirs = nil
}

// compile returns wasm's module, deserialised from its code in the cache
// when the code there matches its seal, compiled (and cached, where the
// cache can be written) otherwise, and whether the code came from the
// cache; code is the path of the cached code, "" for a module compiled
// in memory. A cached module keeps its code file mapped until it is
// closed.
func (e *wasmtimeEngine) compile(wasm []byte) (mod *wt.Module, code string, cached bool, err error) {
	sum := sha256.Sum256(append([]byte(wasmtimeCodeVersion), wasm...))
	name := hex.EncodeToString(sum[:]) + ".cwasm"
	if e.modules != nil {
		if err := e.modules.Check(); err != nil {
			return nil, "", false, err
		}
		if mod, err := e.deserialize(name); err == nil {
			return mod, filepath.Join(e.modules.Name(), name), true, nil
		}
	}
	serialised, mod, err := e.compileCode(wasm)
	if err != nil {
		return nil, "", false, err
	}
	if e.modules == nil || e.modules.ReadOnly() != nil {
		if e.keepCode {
			mod.Close()
			return nil, "", false, errors.New("the compiled code could not be kept: the wasmtime cache cannot be used")
		}
		return mod, "", false, nil
	}
	if err := e.modules.SealWith(name, name, serialised); err != nil {
		if e.keepCode {
			mod.Close()
			return nil, "", false, fmt.Errorf("the compiled code could not be kept: %w", err)
		}
		e.unwritable.Warn(e.logger, "compiled code cannot be written to the cache: serving it from memory", "engine", Name, "err", err)
		return mod, "", false, nil
	}
	// The code is mapped from the cache, as a cached module's is, rather
	// than kept in the anonymous memory it was compiled to.
	cachedMod, err := e.deserialize(name)
	if err != nil {
		return mod, "", false, nil
	}
	mod.Close()
	return cachedMod, filepath.Join(e.modules.Name(), name), false, nil
}

// deserialize loads the module whose code is the cache entry name, when
// its seal matches it: through the open file, so that what is mapped is
// the file checked. An entry that does not match (or that wasmtime
// refuses: another build's) is removed, to be compiled again.
func (e *wasmtimeEngine) deserialize(name string) (*wt.Module, error) {
	f, _, err := e.modules.OpenSealed(name)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			e.dropEntry(name)
		}
		return nil, err
	}
	defer f.Close()
	var mod *wt.Module
	if path := engine.FilePath(f); path != "" {
		mod, err = wt.NewModuleDeserializeFile(e.eng, path)
	} else {
		var code []byte
		if code, err = io.ReadAll(f); err == nil {
			mod, err = wt.NewModuleDeserialize(e.eng, code)
		}
	}
	if err != nil {
		e.dropEntry(name)
		return nil, err
	}
	return mod, nil
}

// dropEntry removes a cache entry that cannot be loaded, and its seal,
// where the cache can be written.
func (e *wasmtimeEngine) dropEntry(name string) {
	if e.modules.ReadOnly() == nil {
		e.modules.Unseal(name)
		e.modules.Remove(name)
	}
}

// compileCode compiles wasm and returns its module and its serialised
// code. Cranelift's working memory, freed by then, is handed back to the
// system (releaseFreeMemory): a large guest's compilation leaves hundreds
// of MiB in the C allocator's free lists otherwise, and its largest
// blocks at the top of arenas that the allocator does not trim unless its
// thresholds are fixed first (fixMallocThresholds).
func (e *wasmtimeEngine) compileCode(wasm []byte) ([]byte, *wt.Module, error) {
	fixMallocThresholds()
	defer releaseFreeMemory()
	mod, err := wt.NewModule(e.eng, wasm)
	if err != nil {
		return nil, nil, fmt.Errorf("compile: %w", err)
	}
	serialised, err := mod.Serialize()
	if err != nil {
		mod.Close()
		return nil, nil, fmt.Errorf("serialise: %w", err)
	}
	return serialised, mod, nil
}

func (e *wasmtimeEngine) Load(ctx context.Context, path string) (_ engine.Module, err error) {
	if !e.users.acquire() {
		return nil, fmt.Errorf("load %s: the %s engine is closed", path, Name)
	}
	defer func() {
		if err != nil {
			e.users.done()
		}
	}()
	wasm, err := engine.ReadModule(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	mod, code, cached, err := e.compile(wasm)
	if err != nil {
		return nil, fmt.Errorf("%s with wasmtime: %w", path, err)
	}
	if err := engine.CheckDeclared(path, wasm); err != nil {
		mod.Close()
		return nil, err
	}
	if err := e.checkImports(mod, path); err != nil {
		mod.Close()
		return nil, err
	}
	exports := map[string]bool{}
	for _, exp := range mod.Exports() {
		exports[exp.Name()] = true
	}
	m := &wasmtimeModule{engine: e, mod: mod, code: code, name: filepath.Base(path), cached: cached, proxy: enginekit.ExportsProxy(exports)}
	m.runs.release = m.release
	return m, nil
}

// checkImports reports an import that neither wasmtime's WASI nor the
// engine's host functions define at Load, as the wazy engine does,
// rather than at every Run.
func (e *wasmtimeEngine) checkImports(mod *wt.Module, path string) error {
	linker := wt.NewLinker(e.eng)
	defer linker.Close()
	if err := linker.DefineWasi(); err != nil {
		return fmt.Errorf("load %s: wasmtime WASI: %w", path, err)
	}
	store := wt.NewStore(e.eng)
	defer store.Close()
	ours := make(map[string]bool, len(e.funcs))
	for _, f := range e.funcs {
		ours[f.Name] = true
	}
	for _, imp := range mod.Imports() {
		name := ""
		if n := imp.Name(); n != nil {
			name = *n
		}
		if imp.Module() == wasiModule && ours[name] {
			continue
		}
		if linker.Get(store, imp.Module(), name) == nil {
			return &engine.MissingImportError{Path: path, Module: imp.Module(), Name: name, Engine: Name}
		}
	}
	return nil
}

// Close closes the engine: Load fails from now on, and the wasmtime
// engine is released once the modules it loaded are closed too.
func (e *wasmtimeEngine) Close(context.Context) error {
	e.users.close()
	return nil
}

// release releases the wasmtime engine and the forwarding module.
func (e *wasmtimeEngine) release() {
	if e.forward != nil {
		e.forward.Close()
	}
	e.eng.Close()
	e.closeCache()
}

// placeholderGuestPath is the guest path of the placeholder preopen at the
// listener's fd number. The guest never sees it: fd_prestat_get answers
// EBADF there, which ends the guest's scan of preopens.
const placeholderGuestPath = "/.wasiserve-listener"

// wasiModule is the module name of WASI preview 1's imports.
const wasiModule = "wasi_snapshot_preview1"

type wasmtimeModule struct {
	engine *wasmtimeEngine
	mod    *wt.Module
	code   string // path of the serialised module, which mod maps; "" in memory
	name   string
	cached bool // Load deserialised code, compiled nothing
	// proxy: the guest reads PROXY headers (it exports
	// wasisock.ProxyExport), so the host tells it its addresses.
	proxy bool
	// runs are the module's active runs: mod is closed once the module
	// is closed and the last of them has ended.
	runs shared
}

// Cached reports whether Load found the code in the cache (see Cached).
func (m *wasmtimeModule) Cached() bool { return m.cached }

// Close closes the module: Run fails from now on, and the module's code
// is released once its active runs end.
func (m *wasmtimeModule) Close(context.Context) error {
	m.runs.close()
	return nil
}

// release releases the module's code, and its hold on the engine.
func (m *wasmtimeModule) release() {
	m.mod.Close()
	m.engine.users.done()
}

func (m *wasmtimeModule) Engine() string { return Name }

func (m *wasmtimeModule) Capabilities() engine.Capabilities { return capabilities }

// Run serves cfg.Listener, giving it to the guest at cfg.ListenerFD(),
// after the preopened directories. A guest that reads PROXY headers gets
// one at the start of each connection, with its addresses (TellAddrs).
func (m *wasmtimeModule) Run(ctx context.Context, cfg engine.Config) error {
	if err := cfg.Check(); err != nil {
		return err
	}
	if !m.runs.acquire() {
		return fmt.Errorf("%s: run %s: the module is closed", Name, m.name)
	}
	defer m.runs.done()
	table, closeTable, err := enginekit.HostTable(ctx, Name, cfg)
	if err != nil {
		return err
	}
	defer closeTable()
	told := enginekit.TellAddrs(m.proxy, table, cfg.Listener)
	run, err := m.newRun(ctx, cfg, told, table)
	if errors.Is(err, errEndedInStart) {
		return nil
	}
	if err != nil {
		return err
	}
	defer run.close()
	return run.start()
}

// wasiConfig builds the guest's WASI context: args, env (with told, see
// enginekit.GuestEnv), the directories, the listener's placeholder after
// them, and stdio.
func (m *wasmtimeModule) wasiConfig(cfg engine.Config, told []string, out outputs) (*wt.WasiConfig, error) {
	wasi := wt.NewWasiConfig()
	wasi.SetArgv(append([]string{m.name}, cfg.Args...))
	var keys, values []string
	for _, kv := range enginekit.GuestEnv(cfg, told) {
		k, v := enginekit.SplitEnv(kv)
		keys, values = append(keys, k), append(values, v)
	}
	wasi.SetEnv(keys, values)
	for _, d := range cfg.Dirs {
		dirPerms, filePerms := wt.DIR_READ|wt.DIR_WRITE, wt.FILE_READ|wt.FILE_WRITE
		if d.ReadOnly {
			dirPerms, filePerms = wt.DIR_READ, wt.FILE_READ
		}
		if err := wasi.PreopenDir(d.Host, d.Guest, dirPerms, filePerms); err != nil {
			wasi.Close()
			return nil, fmt.Errorf("%s: preopen dir %s: %w", Name, d.Host, err)
		}
	}
	// No permissions: the guest never reaches it anyway, as every call on
	// its fd number goes to the Table, and fd_prestat_get answers EBADF
	// there, ending the guest's scan of preopens.
	if err := wasi.PreopenDir(m.engine.placeholder, placeholderGuestPath, 0, 0); err != nil {
		wasi.Close()
		return nil, fmt.Errorf("%s: reserve the listener's fd: %w", Name, err)
	}
	out.attach(wasi)
	return wasi, nil
}

// wasmtimeExit maps the result of calling _start to Run's contract.
func wasmtimeExit(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if code, ok := exitStatus(err); ok {
		if code == 0 {
			return nil
		}
		return &engine.ExitError{Code: int(code)}
	}
	if ctx.Err() != nil {
		return nil // stopped by the host
	}
	msg := err.Error()
	var trap *wt.Trap
	if errors.As(err, &trap) {
		msg = trap.Message()
	}
	return engine.TrapError(msg)
}

// exitStatus is the exit code of a guest's proc_exit that err carries, if
// it does.
func exitStatus(err error) (int32, bool) {
	var wErr *wt.Error
	if !errors.As(err, &wErr) {
		return 0, false
	}
	return wErr.ExitStatus()
}

// shared counts the users of something its owner may close while they
// still use it: release runs once it is closed and its last user is done.
type shared struct {
	mu      sync.Mutex
	users   int
	closed  bool
	release func()
}

// acquire adds a user, unless it is closed.
func (s *shared) acquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.users++
	return true
}

// done removes a user that acquire added.
func (s *shared) done() {
	s.mu.Lock()
	s.users--
	last := s.closed && s.users == 0
	s.mu.Unlock()
	if last {
		s.release()
	}
}

// close closes it; closing it again does nothing.
func (s *shared) close() {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	last := !already && s.users == 0
	s.mu.Unlock()
	if last {
		s.release()
	}
}
