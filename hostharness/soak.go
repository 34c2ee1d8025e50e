//go:build !serveonly

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/internal/bench"
)

// nativeEngine is the --engine value of soak that runs the guest natively.
const nativeEngine = "native"

func runSoak(ctx context.Context, env *cliEnv, args []string) int {
	flags := newFlagSet(env, "soak", "usage: hostharness soak [flags]\n\n"+
		"Serves the echo guest (in its own process) and runs mixed echo load against it on\n"+
		"127.0.0.1 with random client aborts. Every completed echo is hash-checked; the\n"+
		"server's RSS and open descriptors are sampled and must stay flat. Prints a summary;\n"+
		"exit status 1 on any corrupted or truncated echo, failed request, or growth.")
	engineName := flags.String("engine", defaultEngine(env), "engine to serve the guest with, or "+nativeEngine+": "+strings.Join(env.engines.Names(), ", "))
	duration := flags.Duration("duration", 30*time.Second, "how long the load runs")
	conns := flags.Int("conns", 8, "concurrent client loops")
	abortRate := flags.Float64("abort-rate", 0.05, "fraction of requests aborted on purpose (while sending or reading)")
	sampleEvery := flags.Duration("sample-every", 0, "RSS and descriptor sampling interval (default: duration/30, 1s to 20s)")
	seed := flags.Uint64("seed", 1, "seed of the bodies and aborts")
	jsonPath := flags.String("json", "", "also write the report as JSON to this file")
	cacheDir := flags.String("cache-dir", engine.DefaultCacheDir(), "directory for built guests and compilation caches")
	instances := flags.Int("instances", 1, "serve the guest with serve --instances N (engines with a host-owned listener)")
	if code, ok := parseFlags(flags, args); !ok {
		return code
	}
	if flags.NArg() > 0 || *duration <= 0 || *conns <= 0 || *abortRate < 0 || *abortRate > 1 || *instances < 1 {
		fmt.Fprintln(env.stderr, "hostharness soak: takes no arguments; --duration and --conns must be positive, --abort-rate within 0..1")
		return 2
	}
	if *sampleEvery <= 0 {
		*sampleEvery = min(max(*duration/30, time.Second), 20*time.Second)
	}
	var serveArgs []string
	if *instances > 1 {
		serveArgs = []string{"--instances", fmt.Sprint(*instances)}
	}
	target, err := soakTarget(ctx, env, *engineName, *cacheDir, serveArgs...)
	if err != nil {
		env.logger.Error("soak failed", "err", err)
		return 1
	}
	report, err := bench.Soak(ctx, bench.SoakConfig{
		Target: target, CacheDir: *cacheDir, Duration: *duration, Conns: *conns,
		AbortRate: *abortRate, SampleEvery: *sampleEvery, Seed: *seed, Logger: env.logger,
	})
	if err != nil {
		env.logger.Error("soak failed", "err", err)
		return 1
	}
	fmt.Fprint(env.stdout, report.Summary())
	if *jsonPath != "" {
		data, _ := json.MarshalIndent(report, "", "  ")
		if err := os.WriteFile(*jsonPath, append(data, '\n'), 0o644); err != nil {
			env.logger.Error("write JSON report", "err", err)
			return 1
		}
	}
	if len(report.Problems) > 0 {
		return 1
	}
	return 0
}

// soakTarget builds the guest the soak serves: natively, or as wasm served
// by this executable's serve command under the named engine.
func soakTarget(ctx context.Context, env *cliEnv, engineName, cacheDir string, serveArgs ...string) (bench.Target, error) {
	if engineName == nativeEngine {
		native, err := nativeGuestPath(ctx, env.logger, cacheDir)
		if err != nil {
			return bench.Target{}, err
		}
		return bench.NativeTarget(nativeEngine, native, 0), nil
	}
	if _, err := env.engines.Lookup(engineName); err != nil {
		return bench.Target{}, err
	}
	harness, err := os.Executable()
	if err != nil {
		return bench.Target{}, fmt.Errorf("find the hostharness executable: %w", err)
	}
	wasm, err := wasmPath(ctx, env.logger, "", cacheDir)
	if err != nil {
		return bench.Target{}, err
	}
	return bench.HarnessTarget(harness, engineName, wasm, serveArgs...), nil
}
