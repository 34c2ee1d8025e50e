package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/wasiserve/wasiserve/hostharness/engine"
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
			eng, err := probe(t).Open(context.Background(), engine.Options{CacheDir: dir})
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

// probe is a Kind whose New fails the test: a cache directory refused
// before any engine is made never reaches it.
func probe(t *testing.T) engine.Kind {
	return engine.Kind{Name: "probe", New: func(context.Context, engine.Options) (engine.Engine, error) {
		t.Error("New reached with a cache directory that should have been refused")
		return nil, errors.New("probe")
	}}
}

// TestPlantedDefaultCacheDir: without HOME the default cache is a
// predictable path in the temporary directory, which another user can
// plant first: with a link to a directory (even one that passes the
// checks) or with a directory of their own there, the engine gets a fresh
// private directory instead, neither the planted one nor a refusal to
// start.
func TestPlantedDefaultCacheDir(t *testing.T) {
	plants := map[string]func(t *testing.T, path string){
		"link to a private directory": func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "target")
			if err := os.Mkdir(target, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		},
		"world-writable directory": func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
			os.Chmod(path, 0o777)
		},
	}
	if os.Getuid() == 0 {
		plants["directory of another user"] = func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(path, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, plant := range plants {
		t.Run(name, func(t *testing.T) {
			t.Setenv("HOME", "")
			t.Setenv("XDG_CACHE_HOME", "")
			t.Setenv("TMPDIR", t.TempDir())
			planted := engine.DefaultCacheDir()
			plant(t, planted)
			if err := engine.CheckCacheDir(planted); err != nil {
				t.Fatalf("CheckCacheDir of the planted default: %v, want nil (a fresh directory is used)", err)
			}
			var got string
			k := engine.Kind{Name: "probe", New: func(_ context.Context, opts engine.Options) (engine.Engine, error) {
				if opts.Cache == nil {
					return nil, errors.New("no cache")
				}
				got = opts.Cache.Name()
				return nil, errors.New("probe")
			}}
			k.Open(context.Background(), engine.Options{})
			if got == "" || got == planted {
				t.Fatalf("the engine got cache %q, want a fresh private directory, not %s", got, planted)
			}
			if _, err := os.Stat(got); err == nil {
				t.Errorf("the fresh directory %s is left after the engine failed", got)
			}
		})
	}
}

// TestCacheDirEntries: files of others in the cache directory's top level
// (guests built there under umask 002, say) do not stop it from opening;
// inside an engine's directory, a link, a file others can write to, or a
// directory others can write to is refused at the next Check, as at Sub.
func TestCacheDirEntries(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	c, err := engine.OpenCacheDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	guest := filepath.Join(dir, "guest.wasm")
	if err := os.WriteFile(guest, nil, 0o664); err != nil {
		t.Fatal(err)
	}
	os.Chmod(guest, 0o664)
	again, err := engine.OpenCacheDir(dir)
	if err != nil {
		t.Fatalf("a group-writable file at the top level: %v, want the directory opened", err)
	}
	again.Close()
	sub, err := c.Sub("engine")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := sub.Check(); err != nil {
		t.Fatalf("fresh engine directory: %v", err)
	}
	for name, plant := range map[string]func(path string) error{
		"link":                     func(path string) error { return os.Symlink("/etc", path) },
		"group-writable file":      func(path string) error { os.WriteFile(path, nil, 0o600); return os.Chmod(path, 0o620) },
		"world-writable directory": func(path string) error { os.Mkdir(path, 0o700); return os.Chmod(path, 0o777) },
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "engine", "planted")
			if err := plant(path); err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(path)
			if err := sub.Check(); !errors.Is(err, engine.ErrUnsafeCacheDir) {
				t.Errorf("Check with a %s in the engine's directory: %v, want ErrUnsafeCacheDir", name, err)
			}
			if s, err := c.Sub("engine"); !errors.Is(err, engine.ErrUnsafeCacheDir) {
				if err == nil {
					s.Close()
				}
				t.Errorf("Sub with a %s in it: %v, want ErrUnsafeCacheDir", name, err)
			}
		})
	}
}
