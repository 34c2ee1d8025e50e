//go:build !serveonly

package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/internal/compare"
	"github.com/wasiserve/wasiserve/hostharness/listener"
)

func runCompare(ctx context.Context, env *cliEnv, args []string) int {
	flags := newFlagSet(env, "compare", "usage: hostharness compare [flags] [guest.wasm]\n\n"+
		"Sends the request corpus to the echo guest built natively (the reference)\n"+
		"and to the wasm guest under each engine, and reports every difference.\n"+
		"With no guest.wasm it builds the echo guest (./guest) for wasip1 first.\n"+
		"Exit status 1 when any case differs.")
	engineSpec := flags.String("engine", "all", "all (embedded engines and installed CLIs) or a comma-separated list of: "+strings.Join(env.engines.Names(), ", "))
	jsonPath := flags.String("json", "", "also write the report as JSON to this file")
	run := flags.String("run", "", "only the cases whose name matches this regular expression")
	skipLong := flags.Bool("skip-long", false, "leave out the long cases (the 256 MiB stream)")
	allowKnown := flags.Bool("allow-known", false, "report the corpus's known differences (engine bugs, listed with their reasons) as SKIP(known) instead of failures")
	cacheDir := flags.String("cache-dir", engine.DefaultCacheDir(), "directory for built guests and compilation caches")
	if code, ok := parseFlags(flags, args); !ok {
		return code
	}
	if flags.NArg() > 1 {
		fmt.Fprintln(env.stderr, "hostharness compare: at most one guest.wasm")
		return 2
	}
	names, err := env.engines.Select(*engineSpec)
	if err != nil {
		fmt.Fprintln(env.stderr, "hostharness compare:", err)
		return 2
	}
	corpus, err := selectCases(*run)
	if err != nil {
		fmt.Fprintln(env.stderr, "hostharness compare:", err)
		return 2
	}
	rep, err := compareRun(ctx, env, names, flags.Arg(0), *cacheDir, corpus, compare.Options{SkipLong: *skipLong, AllowKnown: *allowKnown, Logger: env.logger})
	if err != nil {
		env.logger.Error("compare failed", "err", err)
		return 1
	}
	if err := rep.WriteTable(env.stdout); err != nil {
		env.logger.Error("write report", "err", err)
		return 1
	}
	if *jsonPath != "" {
		if err := rep.WriteJSONFile(*jsonPath); err != nil {
			env.logger.Error("write report", "err", err)
			return 1
		}
	}
	if !rep.OK() {
		return 1
	}
	if rep.Passed == 0 {
		fmt.Fprintln(env.stderr, "hostharness compare: no case was compared (every target or case skipped)")
		return 1
	}
	return 0
}

// selectCases returns the corpus with only the cases whose names match
// pattern.
func selectCases(pattern string) (*compare.Corpus, error) {
	corpus, err := compare.DefaultCorpus()
	if err != nil {
		return nil, err
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("-run: %w", err)
	}
	corpus.Cases = slices.DeleteFunc(corpus.Cases, func(c compare.Case) bool { return !re.MatchString(c.Name) })
	if len(corpus.Cases) == 0 {
		return nil, fmt.Errorf("-run %q matches no case", pattern)
	}
	return corpus, nil
}

// compareRun starts the native reference and the wasm guest on each named
// engine, runs the corpus and stops them all.
func compareRun(ctx context.Context, env *cliEnv, names []string, wasm, cacheDir string, corpus *compare.Corpus, opts compare.Options) (*compare.Report, error) {
	logger := env.logger
	path, err := wasmPath(ctx, logger, wasm, cacheDir)
	if err != nil {
		return nil, err
	}
	nativeBin, err := nativeGuestPath(ctx, logger, cacheDir)
	if err != nil {
		return nil, err
	}
	native, err := compare.StartNative(ctx, nativeBin, nil)
	if err != nil {
		return nil, err
	}
	defer native.Stop()
	logger.Info("reference serving", "addr", native.Addr)

	var targets []compare.Target
	for _, name := range names {
		target := compare.Target{Name: name}
		inst, stop, err := serveForCompare(ctx, env, name, path, cacheDir)
		if err != nil {
			logger.Warn("target not available", "engine", name, "err", err)
			target.Skip = "not available: " + err.Error()
		} else {
			defer stop()
			target.Addr = inst.Addr
			logger.Info("target serving", "engine", name, "addr", inst.Addr)
		}
		targets = append(targets, target)
	}
	start := time.Now()
	rep := compare.Run(ctx, corpus, compare.Target{Name: "native", Addr: native.Addr}, targets, opts)
	logger.Info("compared", "cases", len(corpus.Cases), "targets", len(targets), "took", time.Since(start).Round(time.Millisecond))
	return rep, nil
}

// serveForCompare loads the guest on the named engine and serves it on a
// free loopback port; stop shuts everything down.
func serveForCompare(ctx context.Context, env *cliEnv, name, path, cacheDir string) (*engine.Instance, func(), error) {
	eng, mod, err := loadGuest(ctx, env, name, path, cacheDir)
	if err != nil {
		return nil, nil, err
	}
	bg := context.WithoutCancel(ctx)
	ln, err := listener.Spec{Kind: listener.TCP, Addr: "127.0.0.1:0"}.Open(os.Getenv)
	if err != nil {
		mod.Close(bg)
		eng.Close(bg)
		return nil, nil, err
	}
	inst, err := engine.Serve(ctx, mod, engine.Config{Listener: ln, Stderr: os.Stderr, Logger: env.logger})
	if err != nil {
		ln.Close()
		mod.Close(bg)
		eng.Close(bg)
		return nil, nil, fmt.Errorf("serve %s on %s: %w", path, name, err)
	}
	return inst, func() {
		inst.Stop()
		ln.Close()
		mod.Close(bg)
		eng.Close(bg)
	}, nil
}
