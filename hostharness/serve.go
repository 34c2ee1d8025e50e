package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func runServe(ctx context.Context, env *cliEnv, args []string) int {
	flags := newFlagSet(env, "serve", "usage: hostharness serve [flags] [guest.wasm]\n\n"+
		"Serves a wasip1 guest on a preopened listening socket. With no guest.wasm it\n"+
		"builds the echo guest (./guest) for wasip1 first.")
	listen := flags.String("listen", "127.0.0.1:8080", "where to serve: host:port (port 0 picks a free port), unix:/path, or systemd[:NAME] for a socket\n"+
		"passed by systemd socket activation (LISTEN_FDS; the default when one was passed)")
	engineName := flags.String("engine", engine.Default(), "engine: "+strings.Join(engine.Names(), ", ")+"\n"+
		"(when not given, "+engine.Wasiserve+" if a flag needs a host-owned listener)")
	instances := flags.Int("instances", 1, "guest instances sharing the listener, so that a single-threaded guest uses that many cores ("+engine.Wasiserve+" engine)")
	drainTimeout := flags.Duration("drain-timeout", 10*time.Second, "on SIGINT or SIGTERM, how long the guest may take to finish requests in flight\n"+
		"after its listener stops, before it is stopped")
	cacheDir := flags.String("cache-dir", engine.DefaultCacheDir(), "directory for built guests and compilation caches")
	var envs, dirs stringList
	flags.Var(&envs, "env", "KEY=VALUE for the guest's environment (repeatable); the guest sees no other variable")
	flags.Var(&dirs, "dir", "host[:guest][:ro|:rw] directory to preopen for the guest (repeatable; default rw); the guest sees no other")
	inheritEnv := flags.Bool("inherit-env", false, "pass the host's whole environment to the guest (before --env)")
	maxMemory := flags.String("max-memory", "", "cap each guest instance's linear memory, e.g. 256MiB (default: the engine's, 4GiB)")
	maxConns := flags.Int("max-conns", 0, "bound each guest instance's open connections; more wait in the kernel backlog (wasiserve engine; 0: no limit)")
	restart := flags.Bool("restart", false, "restart the guest when it exits or traps (with backoff, up to 1s)")
	var allowDial, allowListen stringList
	flags.Var(&allowDial, "allow-dial", "HOST:PORT a guest built with the WasmEdge socket extensions may connect to (repeatable; HOST: IP, [IPv6],\n"+
		"name, *.domain or *; PORT: number or *); it may reach and resolve nothing else ("+engine.Wasiserve+" engine)")
	flags.Var(&allowListen, "allow-listen", "HOST:PORT such a guest may bind and listen on itself (repeatable; "+engine.Wasiserve+" engine)")
	if code, ok := parseFlags(flags, args); !ok {
		return code
	}
	explicit := map[string]bool{}
	flags.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if flags.NArg() > 1 {
		fmt.Fprintln(env.stderr, "hostharness serve: at most one guest.wasm")
		return 2
	}
	if *instances < 1 {
		fmt.Fprintln(env.stderr, "hostharness serve: --instances must be at least 1")
		return 2
	}
	if *inheritEnv {
		envs = append(withoutActivation(os.Environ()), envs...)
	}
	memLimit, err := parseSize(*maxMemory)
	if err != nil {
		fmt.Fprintln(env.stderr, "hostharness serve: --max-memory:", err)
		return 2
	}
	cfg := engine.Config{
		Env:      envs,
		Listen:   *listen,
		MaxConns: *maxConns,
		Stdout:   env.stdout,
		Stderr:   env.stderr,
		Logger:   env.logger,
	}
	cfg.AllowDial, cfg.AllowListen = allowDial, allowListen
	for _, d := range dirs {
		m, err := engine.ParseMount(d)
		if err != nil {
			fmt.Fprintln(env.stderr, "hostharness serve:", err)
			return 2
		}
		cfg.Dirs = append(cfg.Dirs, m)
	}
	opts := serveOptions{engine: *engineName, wasm: flags.Arg(0), restart: *restart,
		instances: *instances, drainTimeout: *drainTimeout,
		engineOptions: engine.Options{CacheDir: *cacheDir, MaxMemory: memLimit}}
	if !explicit["listen"] && activated(os.Getenv) {
		cfg.Listen = systemdListen
	}
	if !explicit["engine"] && !engine.OwnsSockets(opts.engine) && needsOwnedListener(cfg, opts) {
		env.logger.Info("using the engine whose host owns the listener", "engine", engine.Wasiserve, "listen", cfg.Listen, "instances", opts.instances)
		opts.engine = engine.Wasiserve
	}
	if err := serve(ctx, env, opts, cfg); err != nil {
		env.logger.Error("serve failed", "err", err)
		return engine.ExitCode(err)
	}
	return 0
}

// serveOptions are the serve flags that are not part of engine.Config.
type serveOptions struct {
	engine        string
	wasm          string
	restart       bool
	instances     int
	drainTimeout  time.Duration
	engineOptions engine.Options
}

// serve builds or loads the guest and serves it (opts.instances times, on
// one listener) until a signal, then drains it; see group.
func serve(ctx context.Context, env *cliEnv, opts serveOptions, cfg engine.Config) error {
	if err := engine.Known(opts.engine); err != nil {
		return err
	}
	if opts.instances > 1 && !engine.OwnsSockets(opts.engine) {
		return fmt.Errorf("engine %s: --instances needs an engine whose host owns the listener; use --engine %s", opts.engine, engine.Wasiserve)
	}
	// The listener is opened before the guest is built or compiled, so
	// that a port in use fails at once.
	if engine.OwnsSockets(opts.engine) || ownedListenSpec(cfg.Listen) {
		// The host keeps the listener across restarts: connections queue
		// meanwhile instead of being refused.
		ln, err := openListener(cfg.Listen, os.Getenv)
		if err != nil {
			return err
		}
		defer ln.Close()
		cfg.Listener = ln
	}
	path, err := wasmPath(ctx, env.logger, opts.wasm, opts.engineOptions.CacheDir)
	if err != nil {
		return err
	}
	eng, mod, err := loadGuestWith(ctx, env.logger, opts.engine, path, opts.engineOptions)
	if err != nil {
		return err
	}
	defer eng.Close(context.WithoutCancel(ctx))
	defer mod.Close(context.WithoutCancel(ctx))
	g := &group{env: env, mod: mod, cfg: cfg, opts: opts, path: path}
	return g.run(ctx)
}

// parseSize parses a byte count such as 1048576, 512KiB, 64MiB or 1GiB
// (K, M, G and KB, MB, GB are read as powers of 1024 too); "" is 0.
func parseSize(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		factor uint64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
	}
	factor, number := uint64(1), s
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			factor, number = u.factor, n
			break
		}
	}
	n, err := strconv.ParseUint(strings.TrimSpace(number), 10, 64)
	if err != nil || n == 0 || n > (1<<32)/factor {
		return 0, fmt.Errorf("%q: want a size from 64KiB to 4GiB such as 256MiB", s)
	}
	return n * factor, nil
}
