package engine_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/internal/syncbuf"
)

// TestDefaultCacheDirWithoutHome: with neither HOME nor XDG_CACHE_HOME
// the cache is not a path every user shares, and it is created private.
func TestDefaultCacheDirWithoutHome(t *testing.T) {
	t.Setenv("HOME", "")
	t.Setenv("XDG_CACHE_HOME", "")
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dir := engine.DefaultCacheDir()
	if want := filepath.Join(tmp, "wasiserve-"+strconv.Itoa(os.Getuid())); dir != want {
		t.Fatalf("DefaultCacheDir() = %s, want %s (private to the user)", dir, want)
	}
	if err := engine.CheckCacheDir(dir); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("created cache directory: %v, mode %v; want 0700", err, st.Mode())
	}
}

// TestPlantedCacheDirRefused: a cache directory that others can write to
// (or that someone else owns, or a symlink to one) is refused by New with
// ErrUnsafeCacheDir before anything is loaded from it.
func TestPlantedCacheDirRefused(t *testing.T) {
	worldWritable := filepath.Join(t.TempDir(), "planted")
	if err := os.Mkdir(worldWritable, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(worldWritable, 0o777) // past the umask
	cases := map[string]string{"world-writable": worldWritable}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(worldWritable, link); err != nil {
		t.Fatal(err)
	}
	cases["symlink to a world-writable directory"] = link
	if os.Getuid() == 0 {
		other := filepath.Join(t.TempDir(), "other")
		if err := os.Mkdir(other, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		cases["owned by another user"] = other
	}
	for name, dir := range cases {
		t.Run(name, func(t *testing.T) {
			eng, err := engine.New(context.Background(), engine.Wazy, engine.Options{CacheDir: dir})
			if err == nil {
				eng.Close(context.Background())
			}
			if !errors.Is(err, engine.ErrUnsafeCacheDir) {
				t.Fatalf("New with cache %s: %v, want ErrUnsafeCacheDir", dir, err)
			}
			t.Log(err)
		})
	}
}

// TestBrokenCache: a truncated, read-only or impossible cache directory
// does not stop any engine from compiling and running the guest.
func TestBrokenCache(t *testing.T) {
	wasm := filepath.Join("testdata", "exit7.wasm")
	for _, name := range engine.Embedded() {
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
	ctx := context.Background()
	eng, err := engine.New(ctx, name, engine.Options{CacheDir: dir, Logger: logger})
	if err != nil {
		t.Fatalf("New with cache %s: %v", dir, err)
	}
	defer eng.Close(ctx)
	mod, err := eng.Load(ctx, wasm)
	if err != nil {
		t.Fatalf("Load with cache %s: %v", dir, err)
	}
	defer mod.Close(ctx)
	inst, err := engine.Serve(ctx, mod, engine.Config{Listener: listen(t)})
	if err == nil {
		err = inst.Wait()
	}
	if code := engine.ExitCode(err); code != 7 {
		t.Fatalf("guest exited %d (%v), want 7", code, err)
	}
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
