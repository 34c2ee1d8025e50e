package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrUnsafeCacheDir is returned (wrapped) for a cache directory that
// someone other than this user could write to. Compiled code in it runs
// in the host process, so it is refused rather than used.
var ErrUnsafeCacheDir = errors.New("cache directory is not private to this user")

// CheckCacheDir creates dir (mode 0700, with its parents) when it does not
// exist, and checks that only this user can write to it: it must be a
// directory owned by this user and not writable by its group or others,
// else an ErrUnsafeCacheDir. Call it before anything slow starts; New
// calls it too.
func CheckCacheDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		// Not creatable (a read-only file system, say): New works
		// without the cache; nothing planted can be loaded from it.
		if _, statErr := os.Stat(dir); statErr != nil {
			return nil
		}
	}
	info, err := os.Stat(dir) // a symlink is judged by what it points to
	if err != nil {
		return nil
	}
	if !info.IsDir() {
		return fmt.Errorf("cache directory %s: not a directory", dir)
	}
	if err := privateDir(dir, info); err != nil {
		return fmt.Errorf("cache directory %s: %w: %v; use a cache directory of your own", dir, ErrUnsafeCacheDir, err)
	}
	return nil
}

// cacheUsable reports why the cache at dir cannot be used: it could not
// be created, or a file cannot be written in it.
func cacheUsable(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(make([]byte, 64<<10)) // a full disk fails here
	return errors.Join(err, f.Close())
}

// withCache checks opts.CacheDir and, when the cache cannot be used
// (read-only, full, not creatable), logs a warning and puts the engine's
// caches in a private temporary directory instead, removed by the
// returned function when the engine closes: the guest is compiled and
// served anyway, only not kept for the next start. Where no temporary
// directory can be made either (a read-only root), a cache directory that
// exists is used read-only, for the code compiled into it beforehand.
func withCache(opts *Options) (cleanup func() error, err error) {
	if err := CheckCacheDir(opts.CacheDir); err != nil {
		return nil, err
	}
	if reason := cacheUsable(opts.CacheDir); reason != nil {
		tmp, err := os.MkdirTemp("", "wasiserve-cache-*")
		if err != nil {
			if info, statErr := os.Stat(opts.CacheDir); statErr == nil && info.IsDir() {
				// A read-only root file system (docker run --read-only)
				// with compiled code in the image: read what is there.
				opts.Log().Warn("compilation cache is read-only and no temporary directory can be made: using it as it is (code compiled there loads; other guests cannot be compiled)",
					"dir", opts.CacheDir, "err", reason)
				return nil, nil
			}
			return nil, fmt.Errorf("cache directory %s cannot be used (%v), nor a temporary one: %w", opts.CacheDir, reason, err)
		}
		opts.Log().Warn("compilation cache cannot be used: compiling without it", "dir", opts.CacheDir, "err", reason)
		opts.CacheDir = tmp
		return func() error { return os.RemoveAll(tmp) }, nil
	}
	return nil, nil
}

// ClearFiles removes every file under dir, keeping its directories: how
// an engine drops a damaged cache before compiling afresh.
func ClearFiles(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Remove(path)
	})
}

// cachedEngine removes a temporary cache directory when the engine closes.
type cachedEngine struct {
	Engine
	cleanup func() error
}

func (e cachedEngine) Close(ctx context.Context) error {
	return errors.Join(e.Engine.Close(ctx), e.cleanup())
}
