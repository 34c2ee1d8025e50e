package wasiserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/listener"
	"github.com/wasiserve/wasiserve/hostharness/supervise"
	"github.com/wasiserve/wasiserve/internal/atomicfile"
	"github.com/wasiserve/wasiserve/internal/interrupt"
)

// Ready says what a server serves, where, once every instance is ready.
type Ready struct {
	// Guest is the guest's path.
	Guest string
	// URL is where clients reach it: http://HOST:PORT as bound, or
	// unix:PATH.
	URL string
	// Engine is the engine's name.
	Engine string
}

// String is the serving line: "serving GUEST at URL (engine ENGINE)".
func (r Ready) String() string {
	return fmt.Sprintf("serving %s at %s (engine %s)", r.Guest, r.URL, r.Engine)
}

// InterruptedError reports a stop asked for while the guest was still
// being loaded (or built, by a caller): Serve returns it at once, leaving
// the compilation to end by itself.
type InterruptedError = interrupt.Error

// Stats are a server's counters: per instance, reloads and drain.
type Stats = supervise.Stats

// Server serves one guest: New checks the options, Run serves.
type Server struct {
	guest string
	opts  Options
	r     resolved
	log   *slog.Logger
	// reloads are the reloads asked for (Reload); one pending at most.
	reloads chan struct{}
	ran     atomic.Bool

	mu    sync.Mutex
	group *supervise.Group // while Run serves
	rl    *reloader        // while Run serves

	// served is set once every instance was first ready; stopping once
	// Run's ctx is done (the shutdown delay, then the drain).
	served, stopping atomic.Bool
	// delaying is set during the shutdown delay; skipDelay, closed by
	// SkipShutdownDelay, ends it.
	delaying  atomic.Bool
	skipDelay chan struct{}
	skipOnce  sync.Once
}

// New returns a server of the guest at path under opts, once every option
// is checked (Validate). Nothing is bound or loaded yet.
func New(path string, opts Options) (*Server, error) {
	if path == "" {
		return nil, optionErr("Guest", "", "no guest: give the path of a wasip1 module")
	}
	r, err := opts.resolve(path)
	if err != nil {
		return nil, err
	}
	opts.MaxMemory = r.maxMemory // the default, worked out once
	s := &Server{guest: path, opts: opts, r: r, log: opts.Logger, reloads: make(chan struct{}, 1),
		skipDelay: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if opts.Engine == "" {
		if def, _ := opts.Engines.Default(); def.Name != r.kind.Name {
			n, _ := def.Capabilities.Missing(opts.needs(r.listen))
			s.log.Info("using an engine that has what the options need", "engine", r.kind.Name, "needs", n.Capability)
		}
	}
	return s, nil
}

// Serve serves the guest at path under opts until ctx is done, then
// drains it (New, then Server.Run).
func Serve(ctx context.Context, path string, opts Options) error {
	s, err := New(path, opts)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// Engine is the name of the engine the server runs the guest on.
func (s *Server) Engine() string { return s.r.kind.Name }

// Reload asks the serving server to load the guest again from its path
// and hand the listener over to new instances (see supervise.Group.Reload);
// it returns at once. A reload asked for while one is pending is the same
// reload; one asked for before the guest serves waits until it does.
func (s *Server) Reload() {
	select {
	case s.reloads <- struct{}{}:
	default:
	}
}

// Stats returns the server's counters; before Run serves, it has none.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	g := s.group
	s.mu.Unlock()
	if g == nil {
		return Stats{}
	}
	return g.Stats()
}

// Run binds the listener (unless Options.Listener is set), loads the
// guest and serves it until ctx is done, then drains it. It returns nil
// after a drain, an *InterruptedError when ctx ended the load, and the
// guests' errors when they could not run (an *engine.ExitError for a
// guest that exited or trapped without Restart). Run runs once.
func (s *Server) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("wasiserve: Run called again")
	}
	if s.opts.ReadyFile != "" {
		os.Remove(s.opts.ReadyFile) // one an earlier run left behind must not say ready
		defer os.Remove(s.opts.ReadyFile)
	}
	// The listener is bound before the guest is compiled, so that a port
	// in use fails at once; the host keeps it across restarts, so that
	// connections queue meanwhile instead of being refused.
	ln := s.opts.Listener
	if ln == nil {
		var err error
		if ln, err = s.r.listen.Open(os.Getenv); err != nil {
			return err
		}
		defer ln.Close()
	}
	defer context.AfterFunc(ctx, func() { s.notify("stopping", s.r.notifier.Stopping) })()
	adminLn, err := listenAdmin(s.opts.AdminAddr)
	if err != nil {
		return err
	}
	if adminLn != nil {
		defer adminLn.Close()
		// It answers from now on: /readyz says "starting" while the guest
		// compiles.
		defer s.serveAdmin(adminLn)()
	}
	eng, mod, err := load(ctx, s.log, s.r.kind, s.guest, s.opts)
	if err != nil {
		return err
	}
	defer eng.Close(context.WithoutCancel(ctx))
	cfg := s.opts.engineConfig()
	cfg.Listener, cfg.Logger = ln, s.log
	if s.opts.MaxConns == 0 && s.r.kind.Capabilities.Has(engine.ConnLimit) {
		cfg.MaxConns = DefaultMaxConns(s.opts.MaxMemory, max(s.opts.Instances, 1), openFileLimit())
		s.log.Info("connections per guest instance limited by default", "max-conns", cfg.MaxConns)
	}
	s.log.Info("memory budget per guest instance", "max-memory", fmt.Sprintf("%d MiB", s.opts.MaxMemory>>20))
	ready := Ready{Guest: s.guest, URL: listener.Served(ln), Engine: s.r.kind.Name}
	g := &supervise.Group{Module: mod, Config: cfg, Instances: s.opts.Instances, Restart: s.opts.Restart,
		DrainTimeout: s.opts.drainTimeout(), Logger: s.log, Ready: func() { s.ready(ready) }}
	if s.r.notifier != nil {
		g.Notifier = reloadNotifier{s}
	}
	rl := newReloader(ctx, s.log, eng, g, s.guest, mod)
	s.mu.Lock()
	s.group, s.rl = g, rl
	s.mu.Unlock()
	defer func() { rl.current().Close(context.WithoutCancel(ctx)) }()
	stopReloads, err := s.startReloads(ctx, rl)
	if err != nil {
		return err
	}
	groupCtx, release := s.afterShutdownDelay(ctx)
	err = g.Run(groupCtx)
	release()
	stopReloads()
	if err != nil {
		return fmt.Errorf("serve %s: %w", s.guest, err)
	}
	return nil
}

// afterShutdownDelay returns a context that ends ShutdownDelay after ctx
// does, with ctx's cause: from ctx's end the server is stopping (/readyz
// answers 503) while the guest still serves. There is no delay when ctx
// ends before the guest is ready, and SkipShutdownDelay ends one early.
// release ends the wait when the group stopped by itself.
func (s *Server) afterShutdownDelay(ctx context.Context) (_ context.Context, release func()) {
	groupCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		s.stopping.Store(true)
		if d := s.opts.ShutdownDelay; d > 0 && s.served.Load() {
			s.delaying.Store(true)
			s.log.Info("shutdown delay: not ready, still serving", "reason", context.Cause(ctx), "delay", d)
			timer := time.NewTimer(d)
			select {
			case <-timer.C:
			case <-s.skipDelay:
				s.log.Info("shutdown delay cut short")
			case <-groupCtx.Done():
			}
			timer.Stop()
			s.delaying.Store(false)
		}
		cancel(context.Cause(ctx))
	})
	return groupCtx, func() {
		stop()
		cancel(errors.New("the guest stopped"))
	}
}

// SkipShutdownDelay ends the shutdown delay (Options.ShutdownDelay) at
// once, if it is in progress or still to come, so that the drain begins;
// it reports whether a delay was in progress. serve calls it on a second
// SIGINT or SIGTERM.
func (s *Server) SkipShutdownDelay() bool {
	delaying := s.delaying.Load()
	s.skipOnce.Do(func() { close(s.skipDelay) })
	return delaying
}

// ready announces that every instance is ready: the ready file first, so
// that it is there once OnReady's caller says ready, then OnReady and the
// service manager.
func (s *Server) ready(r Ready) {
	s.served.Store(true)
	if s.opts.ReadyFile != "" {
		if err := atomicfile.Write(s.opts.ReadyFile, []byte(r.String()+"\n")); err != nil {
			s.log.Error("cannot write the ready file", "err", err)
		}
	}
	if s.opts.OnReady != nil {
		s.opts.OnReady(r)
	}
	s.notify("ready", s.r.notifier.Ready)
	releaseStartupMemory()
}

// notify sends a state to the service manager, logging a failure: an
// unanswered socket is only a warning.
func (s *Server) notify(state string, send func() error) {
	if err := send(); err != nil {
		s.log.Warn("cannot tell the service manager", "state", state, "err", err)
	}
}

// reloadNotifier tells the service manager about a server's reloads.
type reloadNotifier struct{ s *Server }

func (n reloadNotifier) Reloading() { n.s.notify("reloading", n.s.r.notifier.Reloading) }
func (n reloadNotifier) Ready()     { n.s.notify("ready", n.s.r.notifier.Ready) }

var _ supervise.Notifier = reloadNotifier{}

// releaseStartupMemory returns to the system the garbage of reading,
// decoding, compiling and instantiating the guest, once it serves: the
// collector would otherwise keep it until the heap grew to twice that
// start-up size, as resident memory the host never uses again.
func releaseStartupMemory() { debug.FreeOSMemory() }

// Load compiles the guest at path with the engine that opts name (or the
// default of opts.Engines), through the compilation cache in
// opts.CacheDir, logging progress to opts.Logger. When ctx is done first
// it returns an *InterruptedError at once, leaving the compilation (which
// engines may not be able to cancel) to finish by itself. Close the
// module, then the engine.
func Load(ctx context.Context, path string, opts Options) (engine.Engine, engine.Module, error) {
	if len(opts.Engines) == 0 {
		return nil, nil, optionErr("Engines", "", "no engine: list at least one (builtin.Engines() has all)")
	}
	k, err := opts.pickEngine()
	if err != nil {
		return nil, nil, err
	}
	if err := checkGuest(path); err != nil {
		return nil, nil, err
	}
	opts.MaxMemory = opts.memoryBudget(availableMemory())
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return load(ctx, log, k, path, opts)
}

// load creates an engine of kind k and compiles the guest with it (see
// Load).
func load(ctx context.Context, log *slog.Logger, k engine.Kind, path string, opts Options) (engine.Engine, engine.Module, error) {
	size := int64(0)
	if st, err := os.Stat(path); err == nil {
		size = st.Size()
	}
	log.Info("loading guest", "engine", k.Name, "wasm", path, "size", fmt.Sprintf("%.1f MB", float64(size)/1e6))
	start := time.Now()
	type loaded struct {
		eng engine.Engine
		mod engine.Module
	}
	l, err := interrupt.Run(ctx, "loading the guest", func() (loaded, error) {
		eng, err := k.Open(ctx, engine.Options{CacheDir: opts.cacheDir(), MaxMemory: opts.MaxMemory, Logger: log, KeepCode: opts.keepCode})
		if err != nil {
			return loaded{}, err
		}
		mod, err := eng.Load(ctx, path)
		if err != nil {
			eng.Close(context.WithoutCancel(ctx))
			var missing *engine.MissingImportError
			if errors.As(err, &missing) && missing.SocketExtension() {
				missing.Engines = opts.Engines.With(engine.SocketExtensions)
			}
			return loaded{}, err
		}
		return loaded{eng, mod}, nil
	}, func(l loaded) {
		l.mod.Close(context.Background())
		l.eng.Close(context.Background())
	})
	if err != nil {
		return nil, nil, err
	}
	msg := "compiled guest"
	if engine.Cached(l.mod) {
		msg = "loaded compiled guest (cache)"
	}
	log.Info(msg, "engine", k.Name, "took", time.Since(start).Round(time.Millisecond))
	return l.eng, l.mod, nil
}

// Compile compiles the guest at path into the compilation cache of the
// engine that opts name, so that a later Serve with the same engine,
// CacheDir and MaxMemory starts without compiling.
// Compile fails, rather than compile in memory, where the code cannot be
// kept: at once for a cache that cannot be opened or written, after
// compiling for one that fills up.
func Compile(ctx context.Context, path string, opts Options) error {
	opts.keepCode = true
	eng, mod, err := Load(ctx, path, opts)
	if err != nil {
		return err
	}
	return errors.Join(mod.Close(ctx), eng.Close(ctx))
}
