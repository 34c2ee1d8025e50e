package main

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
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
