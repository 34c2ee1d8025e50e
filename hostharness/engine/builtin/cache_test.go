package builtin_test

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	ctx := context.Background()
	eng, err := engines.New(ctx, name, engine.Options{CacheDir: dir, Logger: logger})
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
