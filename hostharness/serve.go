package main

import (
	"context"
	"errors"
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
	listen := flags.String("listen", "127.0.0.1:8080", "host:port to serve on; port 0 picks a free port")
	engineName := flags.String("engine", engine.Default(), "engine: "+strings.Join(engine.Names(), ", "))
	cacheDir := flags.String("cache-dir", engine.DefaultCacheDir(), "directory for built guests and compilation caches")
	var envs, dirs stringList
	flags.Var(&envs, "env", "KEY=VALUE for the guest's environment (repeatable); the guest sees no other variable")
	flags.Var(&dirs, "dir", "host[:guest][:ro|:rw] directory to preopen for the guest (repeatable; default rw); the guest sees no other")
	inheritEnv := flags.Bool("inherit-env", false, "pass the host's whole environment to the guest (before --env)")
	maxMemory := flags.String("max-memory", "", "cap the guest's linear memory, e.g. 256MiB (default: the engine's, 4GiB)")
	maxConns := flags.Int("max-conns", 0, "bound the guest's open connections; more wait in the kernel backlog (wasiserve engine; 0: no limit)")
	restart := flags.Bool("restart", false, "restart the guest when it exits or traps (with backoff, up to 1s)")
	if code, ok := parseFlags(flags, args); !ok {
		return code
	}
	if flags.NArg() > 1 {
		fmt.Fprintln(env.stderr, "hostharness serve: at most one guest.wasm")
		return 2
	}
	if *inheritEnv {
		envs = append(os.Environ(), envs...)
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
		Stdout:   os.Stdout,
		Stderr:   os.Stderr,
		Logger:   env.logger,
	}
	for _, d := range dirs {
		m, err := engine.ParseMount(d)
		if err != nil {
			fmt.Fprintln(env.stderr, "hostharness serve:", err)
			return 2
		}
		cfg.Dirs = append(cfg.Dirs, m)
	}
	opts := serveOptions{engine: *engineName, wasm: flags.Arg(0), restart: *restart,
		engineOptions: engine.Options{CacheDir: *cacheDir, MaxMemory: memLimit}}
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
	engineOptions engine.Options
}

// restartBackoff bounds the pause between restarts of a failing guest.
const (
	minRestartBackoff = 50 * time.Millisecond
	maxRestartBackoff = time.Second
)

// serve builds or loads the guest, serves it, and waits for a signal or
// the guest's exit; with opts.restart it serves the guest again after an
// exit, on the same address.
func serve(ctx context.Context, env *cliEnv, opts serveOptions, cfg engine.Config) error {
	if err := engine.Known(opts.engine); err != nil {
		return err
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

	backoff := minRestartBackoff
	announced := false
	for restarts := 0; ; restarts++ {
		started := time.Now()
		inst, err := engine.Serve(ctx, mod, cfg)
		var exit *engine.ExitError
		if err != nil && !errors.As(err, &exit) {
			return fmt.Errorf("serve %s: %w", path, err) // a host-side failure: restarting cannot help
		}
		if err == nil {
			if !announced {
				fmt.Fprintf(env.stdout, "serving %s at http://%s (engine %s)\n", path, inst.Addr, opts.engine)
				cfg.Listen = inst.Addr // restarts keep the address, even one picked for port 0
				announced = true
			}
			select {
			case <-ctx.Done():
				env.logger.Info("stopping guest", "reason", context.Cause(ctx))
				err := inst.Stop()
				env.logger.Info("guest stopped")
				return err
			case <-inst.Done():
			}
			err = inst.Wait()
		}
		switch {
		case err == nil:
			env.logger.Info("guest exited", "code", 0)
		case errors.As(err, &exit):
			env.logger.Error("guest exited", "code", exit.Code, "trap", exit.Trap)
		}
		if !opts.restart || ctx.Err() != nil {
			return err
		}
		if time.Since(started) > 10*maxRestartBackoff {
			backoff = minRestartBackoff // it ran for a while: not a crash loop
		}
		env.logger.Warn("restarting guest", "restarts", restarts+1, "after", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxRestartBackoff)
	}
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
