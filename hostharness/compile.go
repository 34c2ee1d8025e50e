package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/wasiserve/wasiserve"
	"github.com/wasiserve/wasiserve/hostharness/engine"
)

// runCompile compiles a guest through an engine's compilation cache and
// exits, so that a later serve with the same --cache-dir starts without
// compiling: the container images run it while they are built.
func runCompile(ctx context.Context, env *cliEnv, args []string) int {
	flags := newFlagSet(env, "compile", "usage: hostharness compile [flags] guest.wasm\n\n"+
		"Compiles guest.wasm into the engine's compilation cache in --cache-dir and exits;\n"+
		"serve with the same engine and --cache-dir then loads it without compiling.")
	def, _ := env.engines.Default()
	engineName := flags.String("engine", def.Name, "engine: "+strings.Join(env.engines.Names(), ", "))
	cacheDir := flags.String("cache-dir", engine.DefaultCacheDir(), "directory for compilation caches")
	if code, ok := parseFlags(flags, args); !ok {
		return code
	}
	if flags.NArg() != 1 {
		fmt.Fprintln(env.stderr, "hostharness compile: want exactly one guest.wasm")
		return 2
	}
	opts := wasiserve.Options{Engines: env.engines, Engine: *engineName, CacheDir: *cacheDir, Logger: env.logger}
	if _, err := env.engines.Lookup(*engineName); err != nil {
		fmt.Fprintln(env.stderr, "hostharness compile:", err)
		return 2
	}
	if err := wasiserve.Compile(ctx, flags.Arg(0), opts); err != nil {
		fmt.Fprintln(env.stderr, "hostharness compile:", describe(err, env.engines))
		return 1
	}
	return 0
}
