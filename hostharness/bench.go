//go:build !serveonly

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/internal/bench"
)

func runBench(ctx context.Context, env *cliEnv, args []string) int {
	flags := newFlagSet(env, "bench", "usage: hostharness bench [flags]\n\n"+
		"Measures the echo guest natively (GOMAXPROCS=1, the reference, and unrestricted)\n"+
		"and as wasm under each engine, each in its own process, with closed-loop load\n"+
		"from this process on 127.0.0.1. Prints a Markdown table and writes report.md,\n"+
		"report.json and chart.svg under --out. Linux only (reads /proc).")
	engines := flags.String("engine", "all", "engines for the wasm targets: all (embedded ones and installed CLIs) or a comma-separated list of "+strings.Join(env.engines.Names(), ", "))
	duration := flags.Duration("duration", 10*time.Second, "load duration of each mix, and of the wrk cross-check")
	conns := flags.Int("conns", 16, "concurrent connections of the load")
	idleWindow := flags.Duration("idle-window", 0, "window of the idle CPU measurement (default: a quarter of --duration, 1s to 10s)")
	idleConns := flags.Int("idle-conns", 100, "idle keep-alive connections open during the idle CPU measurement")
	jsonPath := flags.String("json", "", "write the JSON report to this file too (always written to --out/report.json)")
	outDir := flags.String("out", filepath.Join("out", "bench"), "directory for report.md, report.json and chart.svg")
	cacheDir := flags.String("cache-dir", engine.DefaultCacheDir(), "directory for the built guests")
	noWrk := flags.Bool("no-wrk", false, "skip the wrk cross-check even where wrk is installed")
	instances := flags.Int("instances", 1, "also measure each engine whose host owns the listener ("+strings.Join(env.engines.With(engine.HostListener), ", ")+") with serve --instances N, when N > 1")
	var harnesses stringList
	flags.Var(&harnesses, "harness", "ENGINE=PATH: also measure ENGINE as served by the hostharness executable at PATH (repeatable); for engines that cannot be linked into this binary, such as an older release's")
	if code, ok := parseFlags(flags, args); !ok {
		return code
	}
	others, err := parseHarnesses(harnesses)
	if err != nil {
		fmt.Fprintln(env.stderr, "hostharness bench:", err)
		return 2
	}
	if flags.NArg() > 0 || *duration <= 0 || *conns <= 0 || *idleWindow < 0 || *idleConns < 0 || *instances < 1 {
		fmt.Fprintln(env.stderr, "hostharness bench: takes no arguments; --duration and --conns must be positive, --idle-window and --idle-conns not negative")
		return 2
	}
	names, err := benchEngines(ctx, *engines, env)
	if err != nil {
		fmt.Fprintln(env.stderr, "hostharness bench:", err)
		return 2
	}
	if *idleWindow == 0 {
		*idleWindow = bench.DefaultIdleWindow(*duration)
	}
	cfg := bench.Config{
		Duration:   *duration,
		Conns:      *conns,
		IdleWindow: *idleWindow,
		IdleConns:  *idleConns,
		Command:    strings.Join(append([]string{"hostharness", "bench"}, args...), " "),
		Logger:     env.logger,
	}
	switch wrk, err := exec.LookPath("wrk"); {
	case *noWrk:
		cfg.WrkNote = "wrk cross-check skipped (--no-wrk)."
	case err != nil:
		cfg.WrkNote = "wrk cross-check skipped: wrk is not installed (apt-get install wrk)."
		env.logger.Warn(cfg.WrkNote)
	default:
		cfg.Wrk = wrk
	}
	if err := runBenchTargets(ctx, env, cfg, names, others, *instances, *cacheDir, *outDir, *jsonPath); err != nil {
		env.logger.Error("bench failed", "err", err)
		return 1
	}
	return 0
}

// benchEngines resolves the --engine flag: "all" is every embedded engine
// and every CLI engine whose runtime is installed.
func benchEngines(ctx context.Context, flagValue string, env *cliEnv) ([]string, error) {
	names, err := env.engines.Select(flagValue)
	if err != nil {
		return nil, err
	}
	available := names[:0]
	for _, name := range names {
		eng, err := env.engines.New(ctx, name, engine.Options{})
		if err != nil {
			if flagValue != engine.SelectAll {
				return nil, err
			}
			env.logger.Info("engine skipped", "engine", name, "reason", err)
			continue
		}
		eng.Close(ctx)
		available = append(available, name)
	}
	return available, nil
}

// otherHarness is a --harness value: an engine served by another
// hostharness executable.
type otherHarness struct {
	engine, path string
}

// parseHarnesses parses the --harness values (ENGINE=PATH), checking that
// each PATH is an executable file.
func parseHarnesses(values []string) ([]otherHarness, error) {
	var out []otherHarness
	for _, v := range values {
		name, path, ok := strings.Cut(v, "=")
		if !ok || name == "" || path == "" {
			return nil, fmt.Errorf("--harness %q: want ENGINE=PATH", v)
		}
		info, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("--harness %s: %w", v, err)
		}
		if !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			return nil, fmt.Errorf("--harness %s: %s is not an executable file", v, path)
		}
		out = append(out, otherHarness{engine: name, path: path})
	}
	return out, nil
}

// runBenchTargets builds the native and wasm guests, runs the bench on
// them and writes the reports.
func runBenchTargets(ctx context.Context, env *cliEnv, cfg bench.Config, engines []string, others []otherHarness, instances int, cacheDir, outDir, jsonPath string) error {
	harness, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the hostharness executable: %w", err)
	}
	wasm, err := wasmPath(ctx, env.logger, "", cacheDir)
	if err != nil {
		return err
	}
	native, err := nativeGuestPath(ctx, env.logger, cacheDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("bench output: %w", err)
	}
	if cfg.WorkDir, err = os.MkdirTemp("", "wasiserve-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(cfg.WorkDir)

	cfg.Targets = []bench.Target{
		bench.NativeTarget("native GOMAXPROCS=1", native, 1),
		bench.NativeTarget("native", native, 0),
	}
	for _, name := range engines {
		cfg.Targets = append(cfg.Targets, bench.HarnessTarget(harness, name, wasm))
		if k, _ := env.engines.Lookup(name); k.Capabilities.Has(engine.HostListener) && instances > 1 {
			cfg.Targets = append(cfg.Targets, bench.HarnessTarget(harness, name, wasm, "--instances", fmt.Sprint(instances)))
		}
	}
	for _, o := range others {
		t := bench.HarnessTarget(o.path, o.engine, wasm)
		t.Name += " (" + o.path + ")" // apart from this executable's target of the same engine
		cfg.Targets = append(cfg.Targets, t)
	}
	report, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	return writeBenchReport(env, report, outDir, jsonPath)
}

// writeBenchReport prints the Markdown tables and writes them, the JSON
// report and the chart under outDir.
func writeBenchReport(env *cliEnv, report *bench.Report, outDir, jsonPath string) error {
	if err := report.WriteMarkdown(env.stdout); err != nil {
		return err
	}
	md, err := os.Create(filepath.Join(outDir, "report.md"))
	if err != nil {
		return fmt.Errorf("bench output: %w", err)
	}
	if err := errors.Join(report.WriteMarkdown(md), md.Close()); err != nil {
		return fmt.Errorf("bench output: %w", err)
	}
	for _, p := range []string{filepath.Join(outDir, "report.json"), jsonPath} {
		if p == "" {
			continue
		}
		if err := report.WriteJSON(p); err != nil {
			return err
		}
	}
	if abs, err := filepath.Abs(outDir); err == nil {
		outDir = abs
	}
	fmt.Fprintln(env.stdout)
	chart := filepath.Join(outDir, "chart.svg")
	if err := report.WriteChart(chart); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "chart: %s\n", chart)
	fmt.Fprintf(env.stdout, "report: %s\n", filepath.Join(outDir, "report.json"))
	return nil
}
