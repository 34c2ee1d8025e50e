package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wasiserve/wasiserve"
	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/listener"
	"github.com/wasiserve/wasiserve/internal/activation"
	"github.com/wasiserve/wasiserve/internal/sdnotify"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// serveFlags are serve's flags, parsed; options maps them to
// wasiserve.Options.
type serveFlags struct {
	listen, engine, cacheDir, maxMemory, guestStdout, readyFile, admin string
	// metricsAlias is --metrics, the older name of --admin.
	metricsAlias                                  string
	instances, maxConns                           int
	drainTimeout, shutdownDelay                   time.Duration
	envs, dirs, allowDial, allowListen, proxyFrom stringList
	inheritEnv, restart, watch                    bool
}

func runServe(ctx context.Context, env *cliEnv, args []string) int {
	flags := newFlagSet(env, "serve", "usage: hostharness serve [flags] [guest.wasm]\n\n"+
		"Serves a wasip1 guest on a preopened listening socket. With no guest.wasm it\n"+
		"builds the echo guest (./guest) for wasip1 first.")
	var f serveFlags
	def, _ := env.engines.Default()
	flags.StringVar(&f.listen, "listen", wasiserve.DefaultListen, "where to serve: host:port (port 0 picks a free port), unix:/path, or systemd[:NAME] for a socket\n"+
		"passed by systemd socket activation (LISTEN_FDS; the default when one was passed)")
	flags.StringVar(&f.engine, "engine", def.Name, "engine: "+strings.Join(env.engines.Names(), ", ")+"\n"+
		"(when not given, one that has what the other flags need)")
	flags.IntVar(&f.instances, "instances", 1, "guest instances sharing the listener, so that a single-threaded guest uses that many cores\n"+
		"(1 to 1024, and what the machine's memory holds)")
	flags.DurationVar(&f.drainTimeout, "drain-timeout", wasiserve.DefaultDrainTimeout, "on SIGINT or SIGTERM, how long the guest may take to finish requests in flight\n"+
		"after its listener stops, before it is stopped (0: stopped at once)")
	flags.StringVar(&f.cacheDir, "cache-dir", engine.DefaultCacheDir(), "directory for built guests and compilation caches")
	flags.Var(&f.envs, "env", "KEY=VALUE for the guest's environment (repeatable); the guest sees no other variable")
	flags.Var(&f.dirs, "dir", "host[:guest][:ro|:rw] directory to preopen for the guest (repeatable; default rw); the guest sees no other")
	flags.BoolVar(&f.inheritEnv, "inherit-env", false, "pass the host's whole environment to the guest (before --env)")
	flags.StringVar(&f.maxMemory, "max-memory", "", "cap each guest instance's linear memory, e.g. 256MiB (default: the engine's, 4GiB)")
	flags.IntVar(&f.maxConns, "max-conns", 0, "bound each guest instance's open connections; more wait in the kernel backlog (0: no limit;\n"+
		"default on engines with a host-owned listener: half the guest's memory cap at 160 KiB a connection, at most 4096)")
	flags.StringVar(&f.guestStdout, "guest-stdout", "stderr", "where the guest's stdout goes: stderr (so that serve's stdout carries only the serving line)\n"+
		"or stdout")
	flags.StringVar(&f.readyFile, "ready-file", "", "once the guest is ready, write the serving line to this file (replaced at once, removed on exit)")
	flags.BoolVar(&f.restart, "restart", false, "restart the guest when it exits or traps (with backoff, up to 1s)")
	flags.Var(&f.allowDial, "allow-dial", "HOST:PORT a guest built with the WasmEdge socket extensions may connect to (repeatable; HOST: IP, [IPv6],\n"+
		"name, *.domain or *; PORT: number or *); it may reach and resolve nothing else")
	flags.Var(&f.allowListen, "allow-listen", "HOST:PORT such a guest may bind and listen on itself (repeatable)")
	flags.Var(&f.proxyFrom, "proxy-from", "CIDR or IP of a trusted load balancer (repeatable): its connections must start with a PROXY\n"+
		"protocol v1 or v2 header, and the guest sees the client the header names; other peers are served as they are")
	flags.BoolVar(&f.watch, "watch", false, "reload the guest when its .wasm file changes, as on SIGHUP: new instances take over the listener,\n"+
		"then the old ones drain (engines with a host-owned listener)")
	flags.StringVar(&f.admin, "admin", "", "HOST:PORT of the host's admin listener (its own, never the guest's): Prometheus metrics at /metrics,\n"+
		"liveness at /livez, readiness at /readyz; no authentication, so bind loopback or a private address")
	flags.StringVar(&f.metricsAlias, "metrics", "", "the same as --admin (its older name)")
	flags.DurationVar(&f.shutdownDelay, "shutdown-delay", 0, "on SIGINT or SIGTERM, how long the guest keeps serving while /readyz answers 503, so that load\n"+
		"balancers stop sending, before the listener stops and the drain begins (a second signal ends the delay)")
	if code, ok := parseFlags(flags, args); !ok {
		return code
	}
	if flags.NArg() > 1 {
		fmt.Fprintln(env.stderr, "hostharness serve: at most one guest.wasm")
		return 2
	}
	explicit := map[string]bool{}
	flags.Visit(func(fl *flag.Flag) { explicit[fl.Name] = true })
	opts, err := f.options(env, explicit)
	guest := flags.Arg(0)
	if err == nil {
		err = opts.Validate(guest) // every check, before the guest is built
	}
	if err != nil {
		fmt.Fprintln(env.stderr, "hostharness serve:", describe(err, env.engines))
		return 2
	}
	if guest, err = wasmPath(ctx, env.logger, guest, opts.CacheDir); err == nil {
		var srv *wasiserve.Server
		if srv, err = wasiserve.New(guest, opts); err == nil {
			stopReloads := reloadOnSIGHUP(env, srv)
			if env.secondSignal != nil {
				skip := srv.SkipShutdownDelay
				env.secondSignal.Store(&skip)
			}
			err = srv.Run(ctx)
			stopReloads()
		} else {
			fmt.Fprintln(env.stderr, "hostharness serve:", describe(err, env.engines))
			return 2
		}
	}
	var intr *wasiserve.InterruptedError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &intr): // a stop asked for: not a failure
		env.logger.Info("interrupted while "+intr.During, "after", intr.After.Round(time.Millisecond), "reason", intr.Cause)
		return 0
	}
	env.logger.Error("serve failed", "err", describe(err, env.engines))
	return engine.ExitCode(err)
}

// options maps the flags to wasiserve.Options: each value parsed once,
// here; the checks are the library's (Options.Validate).
func (f *serveFlags) options(env *cliEnv, explicit map[string]bool) (wasiserve.Options, error) {
	opts := wasiserve.Options{Engines: env.engines, Instances: f.instances, Restart: f.restart, CacheDir: f.cacheDir,
		MaxConns: f.maxConns, AllowDial: f.allowDial, AllowListen: f.allowListen, ReadyFile: f.readyFile,
		NotifySocket: os.Getenv(sdnotify.EnvVar), Watch: f.watch, AdminAddr: f.admin,
		Stderr: env.stderr, Logger: env.logger, DrainTimeout: f.drainTimeout, ShutdownDelay: f.shutdownDelay,
		OnReady: func(r wasiserve.Ready) { io.WriteString(env.stdout, r.String()+"\n") }}
	if explicit["engine"] {
		opts.Engine = f.engine
	}
	// serve's 0 is "none" where the library's is "the default".
	if f.drainTimeout == 0 {
		opts.DrainTimeout = wasiserve.NoDrain
	}
	if f.maxConns == 0 && explicit["max-conns"] {
		opts.MaxConns = wasiserve.NoConnLimit
	}
	if explicit["metrics"] {
		if explicit["admin"] && f.admin != f.metricsAlias {
			return opts, fmt.Errorf("--metrics is another name of --admin: give one of them")
		}
		opts.AdminAddr = f.metricsAlias
	}
	listenText := f.listen
	if !explicit["listen"] && activation.ForThisProcess(os.Getenv) {
		listenText = "systemd"
	}
	var err error
	if opts.Listen, err = listener.Parse(listenText); err != nil {
		return opts, err
	}
	if opts.ProxyFrom, err = parseProxyFrom(f.proxyFrom); err != nil {
		return opts, err
	}
	if opts.MaxMemory, err = parseSize(f.maxMemory); err != nil {
		return opts, fmt.Errorf("--max-memory: %w", err)
	}
	for _, d := range f.dirs {
		m, err := engine.ParseMount(d)
		if err != nil {
			return opts, fmt.Errorf("--dir: %w", err)
		}
		opts.Dirs = append(opts.Dirs, m)
	}
	opts.Env = f.envs
	if f.inheritEnv {
		inherited := slices.DeleteFunc(activation.Without(os.Environ()), func(kv string) bool {
			return strings.HasPrefix(kv, sdnotify.EnvVar+"=") // serve's, not the guest's
		})
		opts.Env = append(inherited, f.envs...)
	}
	switch f.guestStdout {
	case "stderr":
		opts.Stdout = env.stderr
	case "stdout":
		opts.Stdout = env.stdout
	default:
		return opts, fmt.Errorf("--guest-stdout %q: want stderr or stdout", f.guestStdout)
	}
	return opts, nil
}

// reloadOnSIGHUP asks srv for a reload at each SIGHUP until stop is
// called.
func reloadOnSIGHUP(env *cliEnv, srv *wasiserve.Server) (stop func()) {
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-env.sighup:
				env.logger.Info("SIGHUP: reload requested")
				srv.Reload()
			}
		}
	}()
	return func() { close(done) }
}

// flagOf names the serve flag that sets each option of wasiserve.Options.
var flagOf = map[string]string{
	"Listen": "--listen", "Listener": "--listen", "Engine": "--engine", "Engines": "--engine",
	"Instances": "--instances", "DrainTimeout": "--drain-timeout", "CacheDir": "--cache-dir",
	"MaxMemory": "--max-memory", "MaxConns": "--max-conns", "Env": "--env", "Dirs": "--dir",
	"AllowDial": "--allow-dial", "AllowListen": "--allow-listen", "ReadyFile": "--ready-file",
	"NotifySocket": sdnotify.EnvVar, "Watch": "--watch", "AdminAddr": "--admin", "ShutdownDelay": "--shutdown-delay", "Guest": "guest",
	"ProxyFrom": "--proxy-from",
}

// describe is err told in serve's terms: flags instead of the options
// they set, and --engine choices.
func describe(err error, engines engine.Set) string {
	var opt *wasiserve.OptionError
	var unsupported *engine.UnsupportedError
	var missing *engine.MissingImportError
	switch {
	case errors.As(err, &unsupported):
		msg := fmt.Sprintf("%s needs %s, which engine %s does not support", flagName(unsupported.Need.Setting),
			unsupported.Need.Capability, unsupported.Engine)
		if alt := unsupported.Engines; len(alt) > 0 {
			msg += "; use --engine " + strings.Join(alt, " or --engine ")
		}
		return msg
	case errors.As(err, &opt):
		if opt.Value == "" {
			return fmt.Sprintf("%s: %v", flagName(opt.Option), opt.Err)
		}
		return fmt.Sprintf("%s %s: %v", flagName(opt.Option), opt.Value, opt.Err)
	case errors.As(err, &missing) && missing.SocketExtension():
		return fmt.Sprintf("load %s: it imports %s.%s, which the %s engine does not provide; guests built with the WasmEdge socket extensions run with --engine %s",
			missing.Path, missing.Module, missing.Name, missing.Engine, strings.Join(engines.With(engine.SocketExtensions), " or --engine "))
	}
	return err.Error()
}

// flagName is the flag of option, or option itself.
func flagName(option string) string {
	if f, ok := flagOf[option]; ok {
		return f
	}
	return option
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
	if err != nil || n == 0 || n > math.MaxUint64/factor {
		return 0, fmt.Errorf("%q: want a size such as 256MiB", s)
	}
	return n * factor, nil
}
