package guestbuild_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasiserve/wasiserve/internal/guestbuild"
)

func TestBuild(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "sub", "echo.wasm")
	if err := guestbuild.Build(context.Background(), guestbuild.Package, guestbuild.WASI, wasm); err != nil {
		t.Fatal(err)
	}
	magic := make([]byte, 4)
	f, err := os.Open(wasm)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Read(magic); err != nil || string(magic) != "\x00asm" {
		t.Fatalf("%s starts with %q, want the wasm magic", wasm, magic)
	}
	native := filepath.Join(dir, "echo-native")
	if err := guestbuild.Build(context.Background(), guestbuild.Package, guestbuild.Target{}, native); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(native)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&0o111 == 0 {
		t.Fatalf("native build has mode %v, want an executable", st.Mode())
	}
}

func TestBuildOutsideTheModule(t *testing.T) {
	t.Chdir(t.TempDir())
	err := guestbuild.Build(context.Background(), guestbuild.Package, guestbuild.WASI, filepath.Join(t.TempDir(), "x.wasm"))
	if err == nil || !strings.Contains(err.Error(), "run from a wasiserve checkout") {
		t.Fatalf("Build outside the module: %v, want a hint to run from a checkout", err)
	}
}
