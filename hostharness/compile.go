package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/wasiserve/wasiserve/hostharness/engine"
)

// runCompile compiles a guest through an engine's compilation cache and
// exits, so that a later serve with the same --cache-dir starts without
// compiling: the container images run it while they are built.
func runCompile(ctx context.Context, env *cliEnv, args []string) int {
	flags := newFlagSet(env, "compile", "usage: hostharness compile [flags] guest.wasm\n\n"+
		"Compiles guest.wasm into the engine's compilation cache in --cache-dir and exits;\n"+
		"serve with the same engine and --cache-dir then loads it without compiling.")
	engineName := flags.String("engine", engine.Default(), "engine: "+strings.Join(engine.Names(), ", "))
	cacheDir := flags.String("cache-dir", engine.DefaultCacheDir(), "directory for compilation caches")
	if code, ok := parseFlags(flags, args); !ok {
		return code
	}
	if flags.NArg() != 1 {
		fmt.Fprintln(env.stderr, "hostharness compile: want exactly one guest.wasm")
		return 2
	}
	if err := engine.Known(*engineName); err != nil {
		fmt.Fprintln(env.stderr, "hostharness compile:", err)
		return 2
	}
	path, err := wasmPath(ctx, env.logger, flags.Arg(0), *cacheDir)
	if err != nil {
		fmt.Fprintln(env.stderr, "hostharness compile:", err)
		return 1
	}
	eng, mod, err := loadGuest(ctx, env.logger, *engineName, path, *cacheDir)
	if err != nil {
		fmt.Fprintln(env.stderr, "hostharness compile:", err)
		return 1
	}
	if err := errors.Join(mod.Close(ctx), eng.Close(ctx)); err != nil {
		fmt.Fprintln(env.stderr, "hostharness compile:", err)
		return 1
	}
	return 0
}
