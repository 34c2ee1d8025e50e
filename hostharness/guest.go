package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/wasiserve/wasiserve"
	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/guestbuild"
	"github.com/wasiserve/wasiserve/internal/interrupt"
)

// wasmPath returns the guest to run: the given path, or the echo guest
// built for wasip1 into the cache when none is given. A stop asked for
// during the build ends it at once (a *wasiserve.InterruptedError).
func wasmPath(ctx context.Context, logger *slog.Logger, given, cacheDir string) (string, error) {
	if given != "" {
		return given, nil
	}
	out := guestbuild.DefaultOutput(cacheDir, "echo.wasm")
	logger.Info("building guest", "package", guestbuild.Package, "target", guestbuild.WASI, "out", out)
	start := time.Now()
	_, err := interrupt.Run(ctx, "building the guest", func() (struct{}, error) {
		return struct{}{}, guestbuild.Build(ctx, guestbuild.Package, guestbuild.WASI, out)
	}, nil)
	if err != nil {
		return "", err
	}
	logger.Info("built guest", "took", time.Since(start).Round(time.Millisecond))
	return out, nil
}

// nativeGuestPath builds the echo guest for the host into the cache: the
// reference that compare, bench and soak measure wasm against.
func nativeGuestPath(ctx context.Context, logger *slog.Logger, cacheDir string) (string, error) {
	out := guestbuild.DefaultOutput(cacheDir, "echo-native")
	logger.Info("building guest", "package", guestbuild.Package, "target", guestbuild.Target{}, "out", out)
	if err := guestbuild.Build(ctx, guestbuild.Package, guestbuild.Target{}, out); err != nil {
		return "", err
	}
	return out, nil
}

// loadGuest creates the named engine of env.engines and compiles the
// guest with it, reporting progress through env.logger.
func loadGuest(ctx context.Context, env *cliEnv, engineName, path, cacheDir string) (engine.Engine, engine.Module, error) {
	return wasiserve.Load(ctx, path, wasiserve.Options{Engines: env.engines, Engine: engineName, CacheDir: cacheDir, Logger: env.logger})
}
