package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/guestbuild"
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
	_, err := untilDone(ctx, "building the guest", func() (struct{}, error) {
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

// loadGuest creates the named engine and compiles the guest with it,
// reporting progress through logger.
func loadGuest(ctx context.Context, logger *slog.Logger, engineName, path, cacheDir string) (engine.Engine, engine.Module, error) {
	return loadGuestWith(ctx, logger, engineName, path, engine.Options{CacheDir: cacheDir})
}

// loadGuestWith is loadGuest with all engine options. When ctx is done
// first it returns an *interruptedError at once, leaving the compilation
// (which engines may not be able to cancel) to finish on its own.
func loadGuestWith(ctx context.Context, logger *slog.Logger, engineName, path string, opts engine.Options) (engine.Engine, engine.Module, error) {
	if opts.Logger == nil {
		opts.Logger = logger
	}
	size := int64(0)
	if st, err := os.Stat(path); err == nil {
		size = st.Size()
	}
	logger.Info("loading guest", "engine", engineName, "wasm", path, "size", fmt.Sprintf("%.1f MB", float64(size)/1e6))
	start := time.Now()
	l, err := untilDone(ctx, "loading the guest", func() (loaded, error) {
		eng, err := engine.New(ctx, engineName, opts)
		if err != nil {
			return loaded{}, err
		}
		mod, err := eng.Load(ctx, path)
		if err != nil {
			eng.Close(context.WithoutCancel(ctx))
			return loaded{}, err
		}
		return loaded{eng, mod}, nil
	}, loaded.close)
	if err != nil {
		return nil, nil, err
	}
	msg := "compiled guest"
	if engine.Cached(l.mod) {
		msg = "loaded compiled guest (cache)"
	}
	logger.Info(msg, "engine", engineName, "took", time.Since(start).Round(time.Millisecond))
	return l.eng, l.mod, nil
}

// loaded is an engine and the guest it compiled.
type loaded struct {
	eng engine.Engine
	mod engine.Module
}

// close releases what an abandoned load made, if it succeeded.
func (l loaded) close() {
	if l.mod != nil {
		l.mod.Close(context.Background())
		l.eng.Close(context.Background())
	}
}

// interruptedError reports a stop asked for (ctx done) before serve was
// ready, naming what was under way.
type interruptedError struct {
	during string
	after  time.Duration
	cause  error
}

func (e *interruptedError) Error() string {
	return fmt.Sprintf("interrupted while %s (after %s: %v)", e.during, e.after.Round(time.Millisecond), e.cause)
}

// untilDone runs f in a goroutine of its own and returns its result, or,
// when ctx is done first, an *interruptedError saying that it was
// interrupted while doing what during names. f then runs on, abandoned
// (the process exits soon), and release (when not nil) gets its result
// if it had no error.
func untilDone[T any](ctx context.Context, during string, f func() (T, error), release func(T)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		if r.err != nil && ctx.Err() != nil { // cancelled by ctx, e.g. a killed go build
			return r.v, &interruptedError{during, time.Since(start), context.Cause(ctx)}
		}
		return r.v, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.err == nil && release != nil {
				release(r.v)
			}
		}()
		var zero T
		return zero, &interruptedError{during, time.Since(start), context.Cause(ctx)}
	}
}
