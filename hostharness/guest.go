package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/internal/guestbuild"
)

// wasmPath returns the guest to run: the given path, or the echo guest
// built for wasip1 into the cache when none is given.
func wasmPath(ctx context.Context, logger *slog.Logger, given, cacheDir string) (string, error) {
	if given != "" {
		if _, err := os.Stat(given); err != nil {
			return "", fmt.Errorf("guest %s: %w", given, err)
		}
		return given, nil
	}
	out := guestbuild.DefaultOutput(cacheDir, "echo.wasm")
	logger.Info("building guest", "package", guestbuild.Package, "target", guestbuild.WASI, "out", out)
	start := time.Now()
	if err := guestbuild.Build(ctx, guestbuild.Package, guestbuild.WASI, out); err != nil {
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

// loadGuest creates the named engine and compiles the guest with it,
// reporting progress through logger.
func loadGuest(ctx context.Context, logger *slog.Logger, engineName, path, cacheDir string) (engine.Engine, engine.Module, error) {
	return loadGuestWith(ctx, logger, engineName, path, engine.Options{CacheDir: cacheDir})
}

// loadGuestWith is loadGuest with all engine options.
func loadGuestWith(ctx context.Context, logger *slog.Logger, engineName, path string, opts engine.Options) (engine.Engine, engine.Module, error) {
	if opts.Logger == nil {
		opts.Logger = logger
	}
	eng, err := engine.New(ctx, engineName, opts)
	if err != nil {
		return nil, nil, err
	}
	size := int64(0)
	if st, err := os.Stat(path); err == nil {
		size = st.Size()
	}
	logger.Info("compiling guest", "engine", engineName, "wasm", path, "size", fmt.Sprintf("%.1f MB", float64(size)/1e6))
	start := time.Now()
	mod, err := eng.Load(ctx, path)
	if err != nil {
		eng.Close(ctx)
		return nil, nil, err
	}
	logger.Info("compiled guest", "engine", engineName, "took", time.Since(start).Round(time.Millisecond))
	return eng, mod, nil
}
