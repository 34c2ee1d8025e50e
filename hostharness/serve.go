package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/wasiserve/wasiserve/hostharness/engine"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func runServe(ctx context.Context, env *cliEnv, args []string) int {
	flags := flag.NewFlagSet("serve", flag.ContinueOnError)
	flags.SetOutput(env.stderr)
	flags.Usage = func() {
		fmt.Fprintln(env.stderr, "usage: hostharness serve [flags] [guest.wasm]\n\n"+
			"Serves a wasip1 guest on a preopened listening socket. With no guest.wasm it\n"+
			"builds the echo guest (./guest) for wasip1 first.\n\nflags:")
		flags.PrintDefaults()
	}
	listen := flags.String("listen", "127.0.0.1:8080", "host:port to serve on; port 0 picks a free port")
	engineName := flags.String("engine", engine.Default(), "engine: "+strings.Join(engine.Names(), ", "))
	cacheDir := flags.String("cache-dir", engine.DefaultCacheDir(), "directory for built guests and compilation caches")
	var envs, dirs stringList
	flags.Var(&envs, "env", "KEY=VALUE for the guest's environment (repeatable)")
	flags.Var(&dirs, "dir", "host[:guest] directory to preopen for the guest (repeatable)")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if flags.NArg() > 1 {
		fmt.Fprintln(env.stderr, "hostharness serve: at most one guest.wasm")
		return 2
	}
	cfg := engine.Config{
		Env:    envs,
		Listen: *listen,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		Logger: env.logger,
	}
	for _, d := range dirs {
		m, err := engine.ParseMount(d)
		if err != nil {
			fmt.Fprintln(env.stderr, "hostharness serve:", err)
			return 2
		}
		cfg.Dirs = append(cfg.Dirs, m)
	}
	if err := serve(ctx, env, *engineName, flags.Arg(0), *cacheDir, cfg); err != nil {
		env.logger.Error("serve failed", "err", err)
		return engine.ExitCode(err)
	}
	return 0
}

// serve builds or loads the guest, serves it, and waits for a signal or
// the guest's exit.
func serve(ctx context.Context, env *cliEnv, engineName, wasm, cacheDir string, cfg engine.Config) error {
	if err := engine.Known(engineName); err != nil {
		return err
	}
	path, err := wasmPath(ctx, env.logger, wasm, cacheDir)
	if err != nil {
		return err
	}
	eng, mod, err := loadGuest(ctx, env.logger, engineName, path, cacheDir)
	if err != nil {
		return err
	}
	defer eng.Close(context.WithoutCancel(ctx))
	defer mod.Close(context.WithoutCancel(ctx))

	inst, err := engine.Serve(ctx, mod, cfg)
	if err != nil {
		return fmt.Errorf("serve %s: %w", path, err)
	}
	fmt.Fprintf(env.stdout, "serving %s at http://%s (engine %s)\n", path, inst.Addr, engineName)
	select {
	case <-ctx.Done():
		env.logger.Info("stopping guest", "reason", context.Cause(ctx))
		err := inst.Stop()
		env.logger.Info("guest stopped")
		return err
	case <-inst.Done():
		err := inst.Wait()
		if err == nil {
			env.logger.Info("guest exited", "code", 0)
			return nil
		}
		var exit *engine.ExitError
		if errors.As(err, &exit) {
			env.logger.Error("guest exited", "code", exit.Code, "trap", exit.Trap)
		}
		return err
	}
}
