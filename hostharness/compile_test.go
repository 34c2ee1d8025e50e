package main

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasiserve/wasiserve/hostharness/engine/wazy"
	"github.com/wasiserve/wasiserve/internal/enginetest"
)

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no guest", []string{"compile"}, 2, "want exactly one guest.wasm"},
		{"two guests", []string{"compile", "a.wasm", "b.wasm"}, 2, "want exactly one guest.wasm"},
		{"unknown engine", []string{"compile", "--engine", "nosuch", "x.wasm"}, 2, "unknown engine"},
		{"missing wasm", []string{"compile", "--engine", wazy.Name, filepath.Join(t.TempDir(), "nope.wasm")}, 1, "no such file"},
		{"bad flag", []string{"compile", "--nosuch"}, 2, "flag provided but not defined"},
		{"read-only cache", []string{"compile", "--engine", wazy.Name, "--cache-dir", readOnlyMount(t), enginetest.Testdata("exit7.wasm")}, 1, "could not be kept"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr strings.Builder
			env := &cliEnv{engines: testEngines, stdout: io.Discard, stderr: &stderr, logger: slog.New(slog.NewTextHandler(&stderr, nil))}
			if code := run(context.Background(), env, tc.args); code != tc.wantCode || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr.String(), tc.wantCode, tc.wantErr)
			}
		})
	}
}

// readOnlyMount is an empty read-only tmpfs mount on a new directory,
// which root cannot write either; where the test cannot mount one, a
// directory of mode 0500.
func readOnlyMount(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,mode=0700,size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Logf("no read-only mount here (%v %s): the read-only case compiles into a directory of mode 0500", err, out)
		os.Chmod(dir, 0o500)
		return dir
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestCompileFillsCache compiles the echo guest into an empty cache
// directory and checks that the engine's compiled code landed there.
func TestCompileFillsCache(t *testing.T) {
	dir := t.TempDir()
	var stderr strings.Builder
	env := &cliEnv{engines: testEngines, stdout: io.Discard, stderr: &stderr, logger: slog.New(slog.NewTextHandler(&stderr, nil))}
	if code := run(t.Context(), env, []string{"compile", "--engine", wazy.Name, "--cache-dir", dir, enginetest.Echo.Path(t)}); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	var size int64
	err := filepath.WalkDir(filepath.Join(dir, "wazy"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		size += info.Size()
		return err
	})
	if err != nil || size < 1<<20 {
		t.Fatalf("cache %s holds %d bytes (err %v), want the compiled guest (MBs); stderr:\n%s", dir, size, err, stderr.String())
	}
}
