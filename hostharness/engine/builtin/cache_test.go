package builtin_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/enginetest"
	"github.com/wasiserve/wasiserve/internal/syncbuf"
)

// TestBrokenCache: a truncated, read-only or impossible cache directory
// does not stop any engine from compiling and running the guest.
func TestBrokenCache(t *testing.T) {
	wasm := enginetest.Testdata("exit7.wasm")
	for _, name := range engines.EmbeddedNames() {
		t.Run(name, func(t *testing.T) {
			for _, tc := range []struct {
				name  string
				setup func(t *testing.T) string // returns the cache dir
			}{
				{"truncated", func(t *testing.T) string {
					dir := filepath.Join(t.TempDir(), "cache")
					runGuest(t, name, dir, wasm, nil) // fills the cache
					n := 0
					filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
						if err == nil && !d.IsDir() {
							// A truncated copy in its place (as a crash or a full
							// disk of an earlier start leaves it): truncating in
							// place would pull the pages from under wasmtime's
							// mapping of the file in this process.
							if data, err := os.ReadFile(path); err == nil {
								tmp := path + ".truncated"
								os.WriteFile(tmp, data[:len(data)/2], 0o600)
								os.Rename(tmp, path)
								n++
							}
						}
						return nil
					})
					if n == 0 {
						t.Fatalf("%s cached nothing in %s", name, dir)
					}
					return dir
				}},
				{"not a directory", func(t *testing.T) string {
					file := filepath.Join(t.TempDir(), "file")
					os.WriteFile(file, nil, 0o600)
					return filepath.Join(file, "cache")
				}},
				{"read-only", readOnlyDir},
			} {
				t.Run(tc.name, func(t *testing.T) {
					dir := tc.setup(t)
					var logs syncbuf.Buffer
					runGuest(t, name, dir, wasm, slog.New(slog.NewTextHandler(&logs, nil)))
					t.Logf("logs: %s", strings.TrimSpace(logs.String()))
				})
			}
		})
	}
}

// runGuest loads wasm with a fresh engine caching in dir and runs it; it
// must exit 7.
func runGuest(t *testing.T, name, dir, wasm string, logger *slog.Logger) {
	t.Helper()
	if code, err := guestExit(t, name, dir, wasm, logger); err != nil || code != 7 {
		t.Fatalf("guest exited %d (%v), want 7", code, err)
	}
}

// guestExit loads wasm with a fresh engine caching in dir, runs it and
// returns its exit code, or the error of New or Load.
func guestExit(t *testing.T, name, dir, wasm string, logger *slog.Logger) (int, error) {
	t.Helper()
	ctx := context.Background()
	eng, err := engines.New(ctx, name, engine.Options{CacheDir: dir, Logger: logger})
	if err != nil {
		return 0, fmt.Errorf("New with cache %s: %w", dir, err)
	}
	defer eng.Close(ctx)
	return loadAndRun(t, eng, wasm)
}

// loadAndRun loads wasm with eng, runs it and returns its exit code, or
// the error of Load.
func loadAndRun(t *testing.T, eng engine.Engine, wasm string) (int, error) {
	t.Helper()
	loadErr, runErr := loadAndServe(t, eng, wasm)
	if loadErr != nil {
		return 0, fmt.Errorf("Load: %w", loadErr)
	}
	return engine.ExitCode(runErr), nil
}

// loadsCached loads wasm with a fresh engine caching in dir and reports
// whether its code came from the cache rather than a compile.
func loadsCached(t *testing.T, name, dir, wasm string) bool {
	t.Helper()
	ctx := context.Background()
	eng, err := engines.New(ctx, name, engine.Options{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	mod, err := eng.Load(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Close(ctx)
	return engine.Cached(mod)
}

// readOnlyDir returns an empty directory that cannot be written: mode
// 0500, or for root (whom modes do not stop) a read-only tmpfs mount.
func readOnlyDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() != 0 {
		os.Chmod(dir, 0o500)
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		return dir
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,mode=0700,size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("root cannot be kept from writing a directory here without a read-only mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// codeFiles lists the compiled code under dir (seals aside) with its
// contents, by path relative to dir.
func codeFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasSuffix(path, ".seal") {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(dir, path)
			files[rel] = data
		}
		return nil
	})
	return files
}

// addedCode is the code file that running wasm with engine name adds to
// the cache in dir (or rewrites), by path relative to dir.
func addedCode(t *testing.T, name, dir, wasm string, want int) string {
	t.Helper()
	// An engine's own code (wasmtime's forwarding module) first.
	eng, err := engines.New(context.Background(), name, engine.Options{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	eng.Close(context.Background())
	before := codeFiles(t, dir)
	if code, err := guestExit(t, name, dir, wasm, nil); err != nil || code != want {
		t.Fatalf("%s: exit %d (%v), want %d", wasm, code, err, want)
	}
	var added []string
	for rel, data := range codeFiles(t, dir) {
		if old, ok := before[rel]; !ok || string(old) != string(data) {
			added = append(added, rel)
		}
	}
	if len(added) != 1 {
		t.Fatalf("%s with %s added %v to the cache, want one file", wasm, name, added)
	}
	return added[0]
}

// exit7, exit3: the guest the cache tests load, and the code planted for
// it, which exits 3.
var (
	exit7 = enginetest.Testdata("exit7.wasm")
	exit3 = enginetest.Testdata("exit3.wasm")
)

// plantedCache returns a cache directory, owned by this user and private,
// where the entry of exit7 holds exit3's code, its seal forged to match:
// what another user who controls a directory would leave in it. An engine
// that loads exit7 from it runs exit3's code (exit 3), or worse.
func plantedCache(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "planted")
	three := addedCode(t, name, dir, exit3, 3)
	seven := addedCode(t, name, dir, exit7, 7)
	data, err := os.ReadFile(filepath.Join(dir, three))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, seven), data, 0o600); err != nil {
		t.Fatal(err)
	}
	forgeSeals(t, dir)
	return dir
}

// forgeSeals rewrites every seal under dir (a file KEY.seal holding the
// SHA-256 of an entry, in hex, and the entry's path relative to the
// seal's directory) to match the entry's contents as they are now.
func forgeSeals(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(path, ".seal") {
			return err
		}
		seal, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		_, entry, ok := strings.Cut(strings.TrimSpace(string(seal)), " ")
		if !ok {
			t.Fatalf("seal %s: %q", path, seal)
		}
		data, err := os.ReadFile(filepath.Join(filepath.Dir(path), entry))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		return os.WriteFile(path, []byte(hex.EncodeToString(sum[:])+" "+entry+"\n"), 0o600)
	})
}

// TestCacheLinkRefused: a cache directory that is a symbolic link, even to
// a directory private to this user (as another user can point a
// predictable path at root's own directory, and then at one of theirs),
// is refused with ErrUnsafeCacheDir before anything is loaded from it.
func TestCacheLinkRefused(t *testing.T) {
	for _, name := range engines.EmbeddedNames() {
		t.Run(name, func(t *testing.T) {
			link := filepath.Join(t.TempDir(), "cache")
			if err := os.Symlink(plantedCache(t, name), link); err != nil {
				t.Fatal(err)
			}
			code, err := guestExit(t, name, link, exit7, nil)
			if !errors.Is(err, engine.ErrUnsafeCacheDir) {
				t.Fatalf("cache at a symbolic link: exit %d (%v), want ErrUnsafeCacheDir", code, err)
			}
			t.Log(err)
		})
	}
}

// TestCacheRepointAfterOpen: an engine opened on a private cache
// directory whose path is then pointed at a planted cache (as between
// starting and a SIGHUP reload) goes on using the directory it checked:
// the guest it loads next runs its own code.
func TestCacheRepointAfterOpen(t *testing.T) {
	for _, name := range engines.EmbeddedNames() {
		t.Run(name, func(t *testing.T) {
			planted := plantedCache(t, name)
			root := t.TempDir()
			path := filepath.Join(root, "cache")
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			eng, err := engines.New(ctx, name, engine.Options{CacheDir: path})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close(ctx)
			if err := os.Rename(path, filepath.Join(root, "checked")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(planted, path); err != nil {
				t.Fatal(err)
			}
			if code, err := loadAndRun(t, eng, exit7); err != nil || code != 7 {
				t.Fatalf("load after the cache's path was re-pointed: exit %d (%v), want 7 (the guest's own code)", code, err)
			}
		})
	}
}

// TestCorruptCacheEntry: an entry of the guest's code that is truncated,
// overwritten with noise, damaged in its header, or replaced by another
// module's code (without a matching seal: copied in, say) is a miss on
// every engine: the guest is compiled afresh and runs, and the entry is
// rewritten, so that the next engine finds it; never a panic.
func TestCorruptCacheEntry(t *testing.T) {
	for _, name := range engines.EmbeddedNames() {
		t.Run(name, func(t *testing.T) {
			for _, tc := range []struct {
				name    string
				corrupt func(code, other []byte) []byte
			}{
				{"truncated", func(code, _ []byte) []byte { return code[:len(code)/2] }},
				{"noise", func(code, _ []byte) []byte {
					noise := make([]byte, len(code))
					for i := range noise {
						noise[i] = byte(i*7 + 3)
					}
					return noise
				}},
				{"header", func(code, _ []byte) []byte {
					damaged := append([]byte(nil), code...)
					for i := 8; i < min(64, len(damaged)); i++ {
						damaged[i] ^= 0xff
					}
					return damaged
				}},
				{"another module's code", func(_, other []byte) []byte { return other }},
			} {
				t.Run(tc.name, func(t *testing.T) {
					dir := filepath.Join(t.TempDir(), "cache")
					three := addedCode(t, name, dir, exit3, 3)
					seven := addedCode(t, name, dir, exit7, 7)
					files := codeFiles(t, dir)
					// A new file in its place, as a copy or a crash leaves
					// it: changing it in place would pull the pages from
					// under a mapping of it in this process.
					tmp := filepath.Join(dir, seven+".new")
					if err := os.WriteFile(tmp, tc.corrupt(files[seven], files[three]), 0o600); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(tmp, filepath.Join(dir, seven)); err != nil {
						t.Fatal(err)
					}
					runGuest(t, name, dir, exit7, nil)
					if !loadsCached(t, name, dir, exit7) {
						t.Error("the damaged entry was not rewritten: the next Load compiled again")
					}
				})
			}
		})
	}
}

// TestCacheReadOnlyNoTemp: a read-only cache, and no temporary directory
// to fall back to (docker run --read-only with a guest of the user's
// own): the guest is compiled in memory and runs, with one warning, rather
// than compiled and then failed for want of a place to write it. A guest
// compiled into the cache beforehand loads from it.
func TestCacheReadOnlyNoTemp(t *testing.T) {
	for _, name := range engines.EmbeddedNames() {
		t.Run(name, func(t *testing.T) {
			t.Setenv("TMPDIR", readOnlyDir(t))
			dir := readOnlyDir(t)
			var logs syncbuf.Buffer
			runGuest(t, name, dir, exit7, slog.New(slog.NewTextHandler(&logs, nil)))
			warnings := strings.Count(logs.String(), "level=WARN")
			t.Logf("logs: %s", strings.TrimSpace(logs.String()))
			if warnings != 1 || !strings.Contains(logs.String(), "memory") {
				t.Errorf("%d warnings, want one that says the guest is compiled in memory", warnings)
			}
		})
	}
}

// TestCacheReadOnlyHolds: a cache made read-only after the guest was
// compiled into it serves the guest's code from it.
func TestCacheReadOnlyHolds(t *testing.T) {
	for _, name := range engines.EmbeddedNames() {
		t.Run(name, func(t *testing.T) {
			dir := mountTmpfs(t, "size=8m")
			runGuest(t, name, dir, exit7, nil)
			if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
				t.Fatalf("remount read-only: %v %s", err, out)
			}
			if !loadsCached(t, name, dir, exit7) {
				t.Error("the guest compiled into the read-only cache was compiled again")
			}
		})
	}
}

// TestCacheFullAfterProbe: a cache with room when the engine starts but
// none for the guest's code when it is compiled (a small tmpfs that fills
// meanwhile) does not fail the load: the guest runs from memory, with one
// warning.
func TestCacheFullAfterProbe(t *testing.T) {
	for _, name := range engines.EmbeddedNames() {
		t.Run(name, func(t *testing.T) {
			dir := mountTmpfs(t, "size=2m")
			t.Setenv("TMPDIR", dir)
			var logs syncbuf.Buffer
			ctx := context.Background()
			eng, err := engines.New(ctx, name, engine.Options{CacheDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close(ctx)
			fill(t, filepath.Join(dir, "filler"))
			if code, err := loadAndRun(t, eng, exit7); err != nil || code != 7 {
				t.Fatalf("load with a full cache: exit %d (%v), want 7", code, err)
			}
			t.Logf("logs: %s", strings.TrimSpace(logs.String()))
			if warnings := strings.Count(logs.String(), "level=WARN"); warnings != 1 {
				t.Errorf("%d warnings, want one", warnings)
			}
		})
	}
}

// mountTmpfs mounts a tmpfs (mode 0700, with opts) on a new directory
// until the test ends, or skips the test where it cannot.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "mode=0700,"+opts, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("a small file system needs a tmpfs mount, which fails here: %v %s", err, out)
	}
	// Lazily: wazy maps code from the cache until the collector finalizes
	// the module.
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// fill writes path until its file system has no room left.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", path, err)
			}
			return
		}
	}
}

// TestKeepCode: with Options.KeepCode (hostharness compile), a read-only
// cache fails at once, before compiling, and a cache that fills before
// the code is written fails the Load, on every embedded engine, instead
// of compiling in memory.
func TestKeepCode(t *testing.T) {
	for _, name := range engines.EmbeddedNames() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			if eng, err := engines.New(ctx, name, engine.Options{CacheDir: readOnlyDir(t), KeepCode: true}); err == nil {
				eng.Close(ctx)
				t.Error("New with a read-only cache and KeepCode: no error")
			}
			dir := mountTmpfs(t, "size=2m")
			eng, err := engines.New(ctx, name, engine.Options{CacheDir: dir, KeepCode: true})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close(ctx)
			fill(t, filepath.Join(dir, "filler"))
			mod, err := eng.Load(ctx, exit7)
			if err == nil {
				mod.Close(ctx)
				t.Fatal("Load with a full cache and KeepCode: no error")
			}
			t.Log(err)
		})
	}
}

// TestCacheSharedByConcurrentEngines: engines of two processes (here two
// engines, each with its cache directory opened on its own) compile
// different guests into one cache at once, as two services sharing
// $XDG_CACHE_HOME do. Each must load its guest and run it; one's upkeep of
// the cache (dropping unsealed entries) must never remove what the other
// is writing.
func TestCacheSharedByConcurrentEngines(t *testing.T) {
	base, err := os.ReadFile(exit7)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range engines.EmbeddedNames() {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			const perEngine = 12
			errs := make(chan error, 2*perEngine)
			done := make(chan struct{}, 2)
			for e := range 2 {
				go func() {
					defer func() { done <- struct{}{} }()
					ctx := context.Background()
					eng, err := engines.New(ctx, name, engine.Options{CacheDir: dir})
					if err != nil {
						errs <- err
						return
					}
					defer eng.Close(ctx)
					for i := range perEngine {
						// A custom section makes each module new to the
						// cache, with the same code.
						wasm := filepath.Join(t.TempDir(), "g.wasm")
						if err := os.WriteFile(wasm, withCustomSection(base, fmt.Sprintf("engine %d module %d", e, i)), 0o644); err != nil {
							errs <- err
							return
						}
						if code, err := loadAndRun(t, eng, wasm); err != nil || code != 7 {
							errs <- fmt.Errorf("engine %d, module %d: exit %d, %v", e, i, code, err)
						}
					}
				}()
			}
			<-done
			<-done
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// withCustomSection returns wasm with a custom section holding payload
// appended: another module to every cache, the same to every engine.
func withCustomSection(wasm []byte, payload string) []byte {
	const sectionName = "wasiserve-test"
	body := append(leb128(uint32(len(sectionName))), sectionName...)
	body = append(body, payload...)
	out := append([]byte(nil), wasm...)
	out = append(out, 0) // custom section id
	out = append(out, leb128(uint32(len(body)))...)
	return append(out, body...)
}

// leb128 is n in unsigned LEB128, as wasm encodes sizes.
func leb128(n uint32) []byte {
	var out []byte
	for {
		b := byte(n & 0x7f)
		n >>= 7
		if n == 0 {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}
