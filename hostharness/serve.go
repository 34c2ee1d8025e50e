package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/listener"
	"github.com/wasiserve/wasiserve/hostharness/supervise"
	"github.com/wasiserve/wasiserve/internal/activation"
	"github.com/wasiserve/wasiserve/internal/hostsock"
	"github.com/wasiserve/wasiserve/internal/sdnotify"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// Bounds on serve's numeric flags.
const (
	maxInstances = 1024
	// minMemory is the least --max-memory a Go guest can start in.
	minMemory = 1 << 20
	// instanceFootprint is a serving echo instance's resident memory, for
	// the --instances check against the memory available.
	instanceFootprint = 12 << 20
	// maxGuestSize bounds the guest file serve reads.
	maxGuestSize = 512 << 20
)

// serveRun is a checked serve command line.
type serveRun struct {
	engine       string
	wasm         string
	listen       listener.Spec
	restart      bool
	instances    int
	drainTimeout time.Duration
	options      engine.Options
	cfg          engine.Config
	// readyFile, when set, receives the serving line once serve is ready.
	readyFile string
	// notifier tells systemd (NOTIFY_SOCKET) when serve is ready and
	// when it stops; nil without it.
	notifier *sdnotify.Notifier
	// watch reloads the guest when its file changes; metrics is the
	// --metrics address ("" for none).
	watch   bool
	metrics string
}

// guestStdoutWriter is where --guest-stdout sends the guest's stdout.
func guestStdoutWriter(env *cliEnv, value string) (io.Writer, error) {
	switch value {
	case "stderr":
		return env.stderr, nil
	case "stdout":
		return env.stdout, nil
	}
	return nil, fmt.Errorf("--guest-stdout %q: want stderr or stdout", value)
}

func runServe(ctx context.Context, env *cliEnv, args []string) int {
	flags := newFlagSet(env, "serve", "usage: hostharness serve [flags] [guest.wasm]\n\n"+
		"Serves a wasip1 guest on a preopened listening socket. With no guest.wasm it\n"+
		"builds the echo guest (./guest) for wasip1 first.")
	listen := flags.String("listen", "127.0.0.1:8080", "where to serve: host:port (port 0 picks a free port), unix:/path, or systemd[:NAME] for a socket\n"+
		"passed by systemd socket activation (LISTEN_FDS; the default when one was passed)")
	engineName := flags.String("engine", engine.Default(), "engine: "+strings.Join(engine.Names(), ", ")+"\n"+
		"(when not given, one that has what the other flags need)")
	instances := flags.Int("instances", 1, "guest instances sharing the listener, so that a single-threaded guest uses that many cores")
	drainTimeout := flags.Duration("drain-timeout", 10*time.Second, "on SIGINT or SIGTERM, how long the guest may take to finish requests in flight\n"+
		"after its listener stops, before it is stopped")
	cacheDir := flags.String("cache-dir", engine.DefaultCacheDir(), "directory for built guests and compilation caches")
	var envs, dirs stringList
	flags.Var(&envs, "env", "KEY=VALUE for the guest's environment (repeatable); the guest sees no other variable")
	flags.Var(&dirs, "dir", "host[:guest][:ro|:rw] directory to preopen for the guest (repeatable; default rw); the guest sees no other")
	inheritEnv := flags.Bool("inherit-env", false, "pass the host's whole environment to the guest (before --env)")
	maxMemory := flags.String("max-memory", "", "cap each guest instance's linear memory, e.g. 256MiB (default: the engine's, 4GiB)")
	maxConns := flags.Int("max-conns", 0, "bound each guest instance's open connections; more wait in the kernel backlog (0: no limit;\n"+
		"default on engines with a host-owned listener: half the guest's memory cap at 160 KiB a connection, at most 4096)")
	guestStdout := flags.String("guest-stdout", "stderr", "where the guest's stdout goes: stderr (so that serve's stdout carries only the serving line)\n"+
		"or stdout")
	readyFile := flags.String("ready-file", "", "once the guest is ready, write the serving line to this file (replaced at once, removed on exit)")
	restart := flags.Bool("restart", false, "restart the guest when it exits or traps (with backoff, up to 1s)")
	var allowDial, allowListen stringList
	flags.Var(&allowDial, "allow-dial", "HOST:PORT a guest built with the WasmEdge socket extensions may connect to (repeatable; HOST: IP, [IPv6],\n"+
		"name, *.domain or *; PORT: number or *); it may reach and resolve nothing else")
	flags.Var(&allowListen, "allow-listen", "HOST:PORT such a guest may bind and listen on itself (repeatable)")
	watch := flags.Bool("watch", false, "reload the guest when its .wasm file changes, as on SIGHUP: new instances take over the listener,\n"+
		"then the old ones drain (engines with a host-owned listener)")
	metricsAddr := flags.String("metrics", "", "HOST:PORT to serve Prometheus metrics on, at /metrics (a listener of its own, never the guest's)")
	if code, ok := parseFlags(flags, args); !ok {
		return code
	}
	explicit := map[string]bool{}
	flags.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if flags.NArg() > 1 {
		fmt.Fprintln(env.stderr, "hostharness serve: at most one guest.wasm")
		return 2
	}
	if *inheritEnv {
		inherited := slices.DeleteFunc(activation.Without(os.Environ()), func(kv string) bool {
			return strings.HasPrefix(kv, sdnotify.EnvVar+"=") // serve's, not the guest's
		})
		envs = append(inherited, envs...)
	}
	listenText := *listen
	if !explicit["listen"] && activation.ForThisProcess(os.Getenv) {
		listenText = "systemd"
	}
	r := serveRun{engine: *engineName, wasm: flags.Arg(0), restart: *restart, instances: *instances, drainTimeout: *drainTimeout, readyFile: *readyFile,
		watch: *watch, metrics: *metricsAddr,
		cfg: engine.Config{Env: envs, MaxConns: *maxConns, AllowDial: allowDial, AllowListen: allowListen,
			Stderr: env.stderr, Logger: env.logger}}
	err := r.check(listenText, *maxMemory, *cacheDir, dirs)
	if err == nil {
		r.cfg.Stdout, err = guestStdoutWriter(env, *guestStdout)
	}
	if err == nil {
		r.notifier, err = sdnotify.FromEnv(os.Getenv)
	}
	if err != nil {
		fmt.Fprintln(env.stderr, "hostharness serve:", err)
		return 2
	}
	if err := r.pickEngine(env, explicit["engine"]); err != nil {
		fmt.Fprintln(env.stderr, "hostharness serve:", err)
		return 2
	}
	if !explicit["max-conns"] && engine.CapabilitiesOf(r.engine).Has(engine.ConnLimit) {
		r.cfg.MaxConns = defaultMaxConns(r.options.MaxMemory, r.instances, openFileLimit())
		env.logger.Info("connections per guest instance limited by default", "max-conns", r.cfg.MaxConns)
	}
	if err := serve(ctx, env, r); err != nil {
		var intr *interruptedError
		if errors.As(err, &intr) { // a stop asked for: not a failure
			env.logger.Info("interrupted while "+intr.during, "after", intr.after.Round(time.Millisecond), "reason", intr.cause)
			return 0
		}
		env.logger.Error("serve failed", "err", err)
		return engine.ExitCode(err)
	}
	return 0
}

// check validates every flag, before anything slow starts, and fills r.
func (r *serveRun) check(listenText, maxMemory, cacheDir string, dirs []string) error {
	var err error
	if r.listen, err = listener.Parse(listenText); err != nil {
		return err
	}
	if r.instances < 1 || r.instances > maxInstances {
		return fmt.Errorf("--instances %d: want 1 to %d", r.instances, maxInstances)
	}
	if avail := memAvailable(); avail > 0 && uint64(r.instances)*instanceFootprint > avail {
		return fmt.Errorf("--instances %d: each instance takes about %d MiB and this machine has %d MiB available",
			r.instances, instanceFootprint>>20, avail>>20)
	}
	if err := checkMetricsAddr(r.metrics); err != nil {
		return err
	}
	if r.watch && r.wasm == "" {
		return errors.New("--watch needs a guest.wasm to watch")
	}
	if r.drainTimeout < 0 {
		return fmt.Errorf("--drain-timeout %s: want a duration of 0 or more", r.drainTimeout)
	}
	if r.cfg.MaxConns < 0 {
		return fmt.Errorf("--max-conns %d: want 0 (no limit) or more", r.cfg.MaxConns)
	}
	memLimit, err := parseSize(maxMemory)
	if err != nil {
		return fmt.Errorf("--max-memory: %w", err)
	}
	if err := engine.Known(r.engine); err != nil {
		return err
	}
	for _, kv := range r.cfg.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("--env %q: want KEY=VALUE", kv)
		}
	}
	if err := (hostsock.Policy{Dial: r.cfg.AllowDial, Listen: r.cfg.AllowListen}).Check(); err != nil {
		return err
	}
	guestPaths := map[string]bool{}
	for _, d := range dirs {
		m, err := engine.ParseMount(d)
		if err != nil {
			return err
		}
		if guestPaths[m.Guest] {
			return fmt.Errorf("--dir %s: guest path %s is mounted twice", d, m.Guest)
		}
		guestPaths[m.Guest] = true
		if st, err := os.Stat(m.Host); err != nil {
			return fmt.Errorf("--dir %s: %w", d, err)
		} else if !st.IsDir() {
			return fmt.Errorf("--dir %s: %s is not a directory", d, m.Host)
		}
		r.cfg.Dirs = append(r.cfg.Dirs, m)
	}
	if r.readyFile != "" {
		if st, err := os.Stat(filepath.Dir(r.readyFile)); err != nil {
			return fmt.Errorf("--ready-file: %w", err)
		} else if !st.IsDir() {
			return fmt.Errorf("--ready-file %s: %s is not a directory", r.readyFile, filepath.Dir(r.readyFile))
		}
	}
	if r.wasm != "" {
		st, err := os.Stat(r.wasm)
		switch {
		case err != nil:
			return fmt.Errorf("guest %w", err)
		case !st.Mode().IsRegular():
			return fmt.Errorf("guest %s: not a regular file", r.wasm)
		case st.Size() > maxGuestSize:
			return fmt.Errorf("guest %s: %d MiB, more than the %d MiB a guest may be", r.wasm, st.Size()>>20, maxGuestSize>>20)
		}
	}
	if err := engine.CheckCacheDir(cacheDir); err != nil {
		return err
	}
	r.options = engine.Options{CacheDir: cacheDir, MaxMemory: memLimit}
	return nil
}

// connMemory is what one connection held mid-request costs a Go guest's
// linear memory (measured on the echo guest: README, --max-conns).
const connMemory = 160 << 10

// maxDefaultConns bounds the default --max-conns, below the host's share
// of descriptors per instance.
const maxDefaultConns = 4096

// defaultMaxConns is --max-conns when it is not given, on engines that
// honour it: connections may take half the guest's memory cap (4 GiB
// without --max-memory) at connMemory each, at most maxDefaultConns, so
// that slow clients hold the guest back in the kernel's backlog instead
// of running it out of memory; and all instances together at most half
// the process's descriptor limit nofile (0: unknown), so that they cannot
// exhaust it between them.
func defaultMaxConns(maxMemory uint64, instances int, nofile uint64) int {
	if maxMemory == 0 {
		maxMemory = 4 << 30
	}
	n := min(maxMemory/2/connMemory, maxDefaultConns)
	if nofile > 0 {
		n = min(n, nofile/2/uint64(max(instances, 1)))
	}
	return int(max(1, n))
}

// needs lists what the flags need of an engine, each with the flag that
// needs it.
func (r *serveRun) needs() []need {
	var out []need
	if r.listen.HostOnly() {
		out = append(out, need{engine.HostListener, "--listen " + r.listen.String()})
	}
	if r.instances > 1 {
		out = append(out, need{engine.HostListener, "--instances"})
	}
	if r.cfg.MaxConns > 0 {
		out = append(out, need{engine.ConnLimit, "--max-conns"})
	}
	if len(r.cfg.AllowDial) > 0 {
		out = append(out, need{engine.SocketExtensions, "--allow-dial"})
	}
	if len(r.cfg.AllowListen) > 0 {
		out = append(out, need{engine.SocketExtensions, "--allow-listen"})
	}
	for _, d := range r.cfg.Dirs {
		if d.ReadOnly {
			out = append(out, need{engine.ReadOnlyDirs, "--dir " + d.Host + ":ro"})
			break
		}
	}
	return out
}

// need is a capability a flag needs.
type need struct {
	capability engine.Capability
	flag       string
}

// pickEngine checks that the engine has what the flags need: when the
// engine was not named, it switches to the first embedded engine that
// does; otherwise it names the flag and the engines that would do.
func (r *serveRun) pickEngine(env *cliEnv, named bool) error {
	needs := r.needs()
	missing := func(name string) *need {
		for i, n := range needs {
			if !engine.CapabilitiesOf(name).Has(n.capability) {
				return &needs[i]
			}
		}
		return nil
	}
	n := missing(r.engine)
	if n == nil {
		return nil
	}
	if !named {
		for _, name := range engine.Embedded() {
			if missing(name) == nil {
				env.logger.Info("using an engine that has what the flags need", "engine", name, "needs", n.capability)
				r.engine = name
				return nil
			}
		}
	}
	var alt []string
	for _, name := range engine.Embedded() {
		if missing(name) == nil {
			alt = append(alt, "--engine "+name)
		}
	}
	msg := fmt.Sprintf("%s needs %s, which engine %s does not support", n.flag, n.capability, r.engine)
	if len(alt) > 0 {
		msg += "; use " + strings.Join(alt, " or ")
	}
	return errors.New(msg)
}

// serve binds the listener, builds or loads the guest and serves it
// (r.instances times, on one listener) until a signal, then drains it.
func serve(ctx context.Context, env *cliEnv, r serveRun) error {
	if r.readyFile != "" {
		os.Remove(r.readyFile) // one an earlier run left behind must not say ready
		defer os.Remove(r.readyFile)
	}
	// The listener is bound before the guest is built or compiled, so
	// that a port in use fails at once; the host keeps it across restarts,
	// so that connections queue meanwhile instead of being refused.
	ln, err := r.listen.Open(os.Getenv)
	if err != nil {
		return err
	}
	defer ln.Close()
	r.cfg.Listener = ln
	notify := func(state string, send func() error) {
		if err := send(); err != nil {
			env.logger.Warn("cannot tell the service manager", "state", state, "err", err)
		}
	}
	defer context.AfterFunc(ctx, func() { notify("stopping", r.notifier.Stopping) })()
	metricsLn, err := listenMetrics(r.metrics)
	if err != nil {
		return err
	}
	if metricsLn != nil {
		defer metricsLn.Close()
	}
	path, err := wasmPath(ctx, env.logger, r.wasm, r.options.CacheDir)
	if err != nil {
		return err
	}
	eng, mod, err := loadGuestWith(ctx, env.logger, r.engine, path, r.options)
	if err != nil {
		return err
	}
	defer eng.Close(context.WithoutCancel(ctx))
	g := &supervise.Group{Module: mod, Config: r.cfg, Instances: r.instances, Restart: r.restart,
		DrainTimeout: r.drainTimeout, Logger: env.logger,
		Ready: func() {
			line := fmt.Sprintf("serving %s at %s (engine %s)\n", path, listener.Served(ln), r.engine)
			if r.readyFile != "" { // first, so that it is there once stdout says ready
				if err := writeFileAtomic(r.readyFile, line); err != nil {
					env.logger.Error("cannot write the ready file", "err", err)
				}
			}
			io.WriteString(env.stdout, line)
			notify("ready", r.notifier.Ready)
			releaseStartupMemory()
		}}
	g.Notifier = notifierFor(notify, r.notifier)
	rl := newReloader(env.logger, eng, g, path, mod)
	defer func() { rl.current().Close(context.WithoutCancel(ctx)) }()
	stopExtras, err := startReloadsAndMetrics(ctx, env, r, rl, metricsLn)
	if err != nil {
		return err
	}
	err = g.Run(ctx)
	stopExtras()
	if err != nil {
		return fmt.Errorf("serve %s: %w", path, err)
	}
	return nil
}

// releaseStartupMemory returns to the system the garbage of reading,
// decoding, compiling and instantiating the guest, once it serves: the
// collector would otherwise keep it until the heap grew to twice that
// start-up size, as resident memory the host never uses again.
func releaseStartupMemory() { debug.FreeOSMemory() }

// writeFileAtomic writes data to path through a temporary file in its
// directory and a rename, so that a reader never sees part of it.
func writeFileAtomic(path, data string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	_, err = tmp.WriteString(data)
	if err = errors.Join(err, tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// memAvailable is the memory the kernel says is available, in bytes, or
// 0 where it cannot tell.
func memAvailable() uint64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
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
	if err != nil || n == 0 || n > (1<<32)/factor || n*factor < minMemory {
		return 0, fmt.Errorf("%q: want a size from 1MiB to 4GiB such as 256MiB", s)
	}
	return n * factor, nil
}

// groupNotifier tells the service manager about reloads, logging a failed
// message as notify does.
type groupNotifier struct {
	notify   func(state string, send func() error)
	notifier *sdnotify.Notifier
}

func (n groupNotifier) Reloading() { n.notify("reloading", n.notifier.Reloading) }
func (n groupNotifier) Ready()     { n.notify("ready", n.notifier.Ready) }

// notifierFor is the reload notifier of a group served under notifier
// (nil without systemd).
func notifierFor(notify func(string, func() error), notifier *sdnotify.Notifier) supervise.Notifier {
	if notifier == nil {
		return nil
	}
	return groupNotifier{notify, notifier}
}
