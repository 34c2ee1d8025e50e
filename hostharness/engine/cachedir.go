package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// errLink is the error for a symbolic link where a cache directory or
// file was expected.
var errLink = errors.New("a symbolic link, which is not followed")

// ErrUnsafeCacheDir is returned (wrapped) for a cache directory that
// someone other than this user could write to or swap: one that others
// can write to, that another user owns, or that is reached through a
// symbolic link. Compiled code in it runs in the host process, so it is
// refused rather than used.
var ErrUnsafeCacheDir = errors.New("cache directory is not private to this user")

// ErrNotSealed is returned (wrapped) by CacheDir.OpenSealed for a key
// that has no seal, or whose entry does not match its seal.
var ErrNotSealed = errors.New("no matching seal")

// CacheDir is a compilation cache directory, open, and checked to be
// private to this user: a directory (not a link to one) that this user
// owns and that neither its group nor others can write to. Everything in
// it is reached relative to the open directory, never by its path again,
// so that a path re-pointed after the check leads nowhere; Check repeats
// the check at each use. Engines get it as Options.Cache.
type CacheDir struct {
	dir  *os.File
	name string // the path it was opened at, for messages
	// readOnly is why nothing can be written in it; nil when it can be.
	readOnly error
}

// Name is the path at which the directory was opened.
func (c *CacheDir) Name() string { return c.name }

// ReadOnly reports why nothing can be written in the directory (a
// read-only file system, no permission, no room), or nil.
func (c *CacheDir) ReadOnly() error { return c.readOnly }

// Close closes the directory.
func (c *CacheDir) Close() error { return c.dir.Close() }

// Lock takes an exclusive lock of the directory, shared with every
// process that opened it (flock), waiting while another holds it: engines
// that write and tidy a cache hold it for each compile, so that two
// processes sharing a cache never remove what the other is writing. It
// gives up when ctx ends. unlock releases it.
func (c *CacheDir) Lock(ctx context.Context) (unlock func(), err error) {
	const retry = 20 * time.Millisecond
	for {
		locked, err := tryLock(c.dir)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", c.name, err)
		}
		if locked {
			return func() { unlockDir(c.dir) }, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lock %s: another process holds it: %w", c.name, context.Cause(ctx))
		case <-time.After(retry):
		}
	}
}

// Path is a path that leads to the open directory itself, whatever its
// name leads to now, for a library that takes a directory's path (wazy's
// cache): on Linux /proc/self/fd/N. It is valid until Close.
func (c *CacheDir) Path() string { return fdPath(c.dir) }

// checkPath checks that Path leads to the directory (that /proc is
// mounted), where there is a Path.
func (c *CacheDir) checkPath() error {
	p := c.Path()
	if p == "" {
		return nil
	}
	there, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("no path to the open directory: %w", err)
	}
	if here, err := c.dir.Stat(); err != nil || !os.SameFile(here, there) {
		return fmt.Errorf("%s does not lead to the open directory", p)
	}
	return nil
}

// FilePath is a path that leads to the open file f itself (see Path).
func FilePath(f *os.File) string { return fdPath(f) }

// OpenCacheDir opens dir as a CacheDir, creating it (mode 0700, and its
// parents) when it does not exist. dir itself must not be a symbolic link;
// its parents may be. An ErrUnsafeCacheDir says why it is refused; other
// errors that it cannot be opened at all. A directory that cannot be
// written is opened read-only (see ReadOnly).
func OpenCacheDir(dir string) (*CacheDir, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("cache directory %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) && !isReadOnly(err) {
		return nil, fmt.Errorf("cache directory %s: %w", dir, err)
	}
	f, err := openDir(dir)
	if errors.Is(err, errLink) {
		return nil, fmt.Errorf("%w: %s is %v; use the directory it points to, if it is yours (--cache-dir)", ErrUnsafeCacheDir, dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("cache directory %s: %w", dir, err)
	}
	c := &CacheDir{dir: f, name: dir}
	// The directory itself: what else is in it (built guests, say) is not
	// the engines', whose directories Sub checks with their entries.
	if err := privateFile(f, true); err != nil {
		f.Close()
		return nil, c.unsafe("", err)
	}
	if err := c.checkPath(); err != nil {
		f.Close()
		return nil, fmt.Errorf("cache directory %s: %w", dir, err)
	}
	c.readOnly = c.probe()
	return c, nil
}

// Check checks again that the directory is private to this user, and that
// nothing in it, nor in its directories, is a link, someone else's, or
// writable by others: what an engine calls on its directory (see Sub)
// before each load.
func (c *CacheDir) Check() error {
	if err := privateFile(c.dir, true); err != nil {
		return c.unsafe("", err)
	}
	return c.walk(func(string, bool) {})
}

// walk checks every entry of c, and of its directories one level down,
// as Check does, and calls visit with each one's path relative to c.
func (c *CacheDir) walk(visit func(rel string, isDir bool)) error {
	var walk func(d *os.File, rel string, depth int) error
	walk = func(d *os.File, rel string, depth int) error {
		names, err := readDirNames(d)
		if err != nil {
			return fmt.Errorf("cache directory %s: %w", filepath.Join(c.name, rel), err)
		}
		for _, name := range names {
			path := filepath.Join(rel, name)
			isDir, err := privateEntry(d, name)
			if errors.Is(err, fs.ErrNotExist) {
				continue // gone since it was listed: another process's temporary file, renamed
			}
			if err != nil {
				return c.unsafe(path, err)
			}
			visit(path, isDir)
			if !isDir || depth == 0 {
				continue
			}
			sub, err := openDirAt(d, name)
			if err != nil {
				return c.unsafe(path, err)
			}
			err = walk(sub, path, depth-1)
			sub.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}
	return walk(c.dir, "", 1)
}

func (c *CacheDir) unsafe(rel string, err error) error {
	return fmt.Errorf("%w: %s: %v; use a cache directory of your own (--cache-dir)", ErrUnsafeCacheDir, filepath.Join(c.name, rel), err)
}

// Sub opens the directory name in c, creating it (mode 0700) when c can
// be written, as a CacheDir of its own, checked as OpenCacheDir checks.
func (c *CacheDir) Sub(name string) (*CacheDir, error) {
	if c.readOnly == nil {
		if err := mkdirAt(c.dir, name); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("cache directory %s: %w", filepath.Join(c.name, name), err)
		}
	}
	f, err := openDirAt(c.dir, name)
	if errors.Is(err, errLink) {
		return nil, c.unsafe(name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("cache directory %s: %w", filepath.Join(c.name, name), err)
	}
	sub := &CacheDir{dir: f, name: filepath.Join(c.name, name), readOnly: c.readOnly}
	if err := sub.Check(); err != nil {
		f.Close()
		return nil, err
	}
	return sub, nil
}

// Dup returns a CacheDir of the same directory on a descriptor of its
// own, which outlives c's Close.
func (c *CacheDir) Dup() (*CacheDir, error) {
	f, err := openDirAt(c.dir, ".")
	if err != nil {
		return nil, fmt.Errorf("cache directory %s: %w", c.name, err)
	}
	return &CacheDir{dir: f, name: c.name, readOnly: c.readOnly}, nil
}

// probeSize is how much the probe of a new CacheDir writes: a disk that
// is full fails there, before anything is compiled.
const probeSize = 64 << 10

// probe reports why a file cannot be written in the directory, or nil.
func (c *CacheDir) probe() error {
	f, name, err := c.createTemp(".probe")
	if err != nil {
		return err
	}
	defer removeAt(c.dir, name)
	_, err = f.Write(make([]byte, probeSize))
	return errors.Join(err, f.Close())
}

// Open opens the regular file name in c (a path relative to it, through
// its directories) without following a link at its end, and checks that
// this user owns it and that no one else can write to it.
func (c *CacheDir) Open(name string) (*os.File, error) {
	f, err := openFileAt(c.dir, name)
	if err != nil {
		return nil, err
	}
	if err := privateFile(f, false); err != nil {
		f.Close()
		return nil, c.unsafe(name, err)
	}
	return f, nil
}

// WriteFile writes data to the file name in c through a temporary file
// and a rename, so that a reader never sees part of it.
func (c *CacheDir) WriteFile(name string, data []byte) error {
	f, tmp, err := c.createTemp(name)
	if err != nil {
		return fmt.Errorf("cache %s: %w", filepath.Join(c.name, name), err)
	}
	_, err = f.Write(data)
	if err = errors.Join(err, f.Close()); err == nil {
		err = renameAt(c.dir, tmp, name)
	}
	if err != nil {
		removeAt(c.dir, tmp)
		return fmt.Errorf("cache %s: %w", filepath.Join(c.name, name), err)
	}
	return nil
}

// Remove removes the file name from c; one that is not there is no error.
func (c *CacheDir) Remove(name string) error {
	if err := removeAt(c.dir, name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cache %s: %w", filepath.Join(c.name, name), err)
	}
	return nil
}

// Seals bind a cache entry to what it was compiled from: KEY.seal (key
// names the input, such as a hash of the wasm) holds the SHA-256 of the
// entry's contents, in hex, a space and the entry's path relative to c.
// An entry that a seal does not match (truncated, damaged, or another
// module's code copied in) is not loaded, so that an engine never maps
// code it did not write for that input.
const sealSuffix = ".seal"

// maxSealSize bounds the read of a seal.
const maxSealSize = 4096

// Seal records that entry, a file in c, holds the code compiled for key.
func (c *CacheDir) Seal(key, entry string) error {
	f, err := c.Open(entry)
	if err != nil {
		return fmt.Errorf("seal %s: %w", entry, err)
	}
	defer f.Close()
	sum, err := hashFile(f)
	if err != nil {
		return fmt.Errorf("seal %s: %w", entry, err)
	}
	return c.writeSeal(key, sum, entry)
}

// SealWith writes data to entry and seals it for key.
func (c *CacheDir) SealWith(key, entry string, data []byte) error {
	if err := c.WriteFile(entry, data); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	return c.writeSeal(key, hex.EncodeToString(sum[:]), entry)
}

// writeSeal writes the seal for key: the digest sum of entry.
func (c *CacheDir) writeSeal(key, sum, entry string) error {
	return c.WriteFile(key+sealSuffix, []byte(sum+" "+filepath.ToSlash(entry)+"\n"))
}

// OpenSealed opens the entry sealed for key, when its contents match the
// seal, positioned at its start, and returns its path relative to c. A
// missing seal, or an entry that does not match it, is an ErrNotSealed.
func (c *CacheDir) OpenSealed(key string) (*os.File, string, error) {
	sum, entry, err := c.readSeal(key)
	if err != nil {
		return nil, "", err
	}
	f, err := c.Open(entry)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, entry, fmt.Errorf("%s: %w: the entry %s is gone", key, ErrNotSealed, entry)
	}
	if err != nil {
		return nil, entry, err
	}
	got, err := hashFile(f)
	if err == nil && got != sum {
		err = fmt.Errorf("%s: %w: the entry %s does not match it", key, ErrNotSealed, entry)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, entry, err
	}
	return f, entry, nil
}

// Unseal removes the seal for key and the entry it names.
func (c *CacheDir) Unseal(key string) error {
	_, entry, err := c.readSeal(key)
	if err == nil {
		err = c.Remove(entry)
	}
	return errors.Join(err, c.Remove(key+sealSuffix))
}

// readSeal returns the digest and entry of the seal for key.
func (c *CacheDir) readSeal(key string) (sum, entry string, err error) {
	f, err := c.Open(key + sealSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", fmt.Errorf("%s: %w", key, ErrNotSealed)
	}
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSealSize))
	if err != nil {
		return "", "", err
	}
	sum, entry, ok := strings.Cut(strings.TrimSuffix(string(data), "\n"), " ")
	if !ok || len(sum) != 2*sha256.Size || !fs.ValidPath(entry) || strings.HasSuffix(entry, sealSuffix) {
		return "", "", fmt.Errorf("%s: %w: the seal is damaged", key, ErrNotSealed)
	}
	return sum, filepath.FromSlash(entry), nil
}

// SealedEntries lists the entries that c's seals name, valid or not.
func (c *CacheDir) SealedEntries() (map[string]bool, error) {
	names, err := readDirNames(c.dir)
	if err != nil {
		return nil, err
	}
	entries := map[string]bool{}
	for _, name := range names {
		if key, ok := strings.CutSuffix(name, sealSuffix); ok {
			if _, entry, err := c.readSeal(key); err == nil {
				entries[entry] = true
			}
		}
	}
	return entries, nil
}

// Files lists the regular files in c and in its directories (one level
// down), by path relative to c, seals aside.
func (c *CacheDir) Files() ([]string, error) {
	var files []string
	err := c.walk(func(rel string, isDir bool) {
		if !isDir && !strings.HasSuffix(rel, sealSuffix) {
			files = append(files, rel)
		}
	})
	return files, err
}

// IsWriteFailure reports whether err is a failure to write a file: a
// read-only file system, no permission, no room or no quota left.
func IsWriteFailure(err error) bool { return isReadOnly(err) || isNoRoom(err) }

// hashFile is the SHA-256 of f's contents from where it is, in hex.
func hashFile(f *os.File) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CheckCacheDir opens dir as Kind.Open would (creating it if need be) and
// reports an ErrUnsafeCacheDir if it would be refused; a directory that
// cannot be opened at all is no error, as Kind.Open compiles in memory
// then. Call it before anything slow starts; Kind.Open checks again.
func CheckCacheDir(dir string) error {
	c, err := OpenCacheDir(dir)
	if err == nil {
		return c.Close()
	}
	if errors.Is(err, ErrUnsafeCacheDir) && dir != tempCacheDir() {
		return err
	}
	return nil
}

// openCache opens opts.CacheDir for Kind.Open, as opts.Cache. A cache
// directory that is refused (ErrUnsafeCacheDir) fails, except the
// predictable one in the temporary directory used when there is no HOME,
// which others can plant: a fresh private directory replaces it, removed
// by the returned cleanup. One that cannot be opened at all, or not
// written, is logged once: the engine then compiles in memory what it
// cannot load from it.
func openCache(opts *Options) (cleanup func() error, err error) {
	c, err := OpenCacheDir(opts.CacheDir)
	cleanup = func() error { return nil }
	switch {
	case err == nil:
	case errors.Is(err, ErrUnsafeCacheDir) && opts.CacheDir == tempCacheDir() && !opts.KeepCode:
		tmp, tmpErr := os.MkdirTemp("", "wasiserve-cache-*")
		if tmpErr == nil {
			c, tmpErr = OpenCacheDir(tmp)
		}
		if tmpErr != nil {
			opts.Log().Warn("compilation cache refused, and no private one can be made: compiling in memory", "err", err, "temp", tmpErr)
			return cleanup, nil
		}
		opts.Log().Warn("compilation cache refused: using a fresh private one for this run", "err", err, "dir", tmp)
		cleanup = func() error { return os.RemoveAll(tmp) }
	case errors.Is(err, ErrUnsafeCacheDir):
		return nil, err
	case opts.KeepCode:
		return nil, fmt.Errorf("the compiled code could not be kept: %w", err)
	default:
		opts.Log().Warn("compilation cache cannot be opened: compiling in memory, nothing is kept for the next start", "dir", opts.CacheDir, "err", err)
		return cleanup, nil
	}
	first := cleanup
	if reason := c.ReadOnly(); reason != nil && opts.KeepCode {
		c.Close()
		return nil, fmt.Errorf("the compiled code could not be kept: cache directory %s cannot be written: %w", c.Name(), errors.Join(reason, first()))
	} else if reason != nil {
		opts.Log().Warn("compilation cache cannot be written: guests compiled into it beforehand load from it, others are compiled in memory at each start", "dir", c.Name(), "err", reason)
	}
	opts.Cache = c
	return func() error { return errors.Join(c.Close(), first()) }, nil
}

// WarnOnce logs its first warning only: an engine's one line about a
// cache it cannot write to.
type WarnOnce struct{ once sync.Once }

// Warn logs msg with args to logger, the first time only.
func (w *WarnOnce) Warn(logger *slog.Logger, msg string, args ...any) {
	w.once.Do(func() { logger.Warn(msg, args...) })
}

// cachedEngine closes what Kind.Open opened for the engine's cache when
// the engine closes.
type cachedEngine struct {
	Engine
	cleanup func() error
}

func (e cachedEngine) Close(ctx context.Context) error {
	return errors.Join(e.Engine.Close(ctx), e.cleanup())
}
