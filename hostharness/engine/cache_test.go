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
