package scripts_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/samyfodil/wazy"
)

// TestWasmImage checks the Dockerfile's "wasm" target: built by build.sh
// mode wasm-wasmedge, it holds only the guest's socket-extension variant
// and runs it as the entrypoint; the module builds and imports the
// extensions it needs WasmEdge (or the wasmtime or wazy engine) for.
func TestWasmImage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the images' files with scripts/build.sh (the full suite runs it)")
	}
	st := parseDockerfile(t, "../Dockerfile")["wasm"]
	if st == nil {
		t.Fatal(`Dockerfile has no stage "wasm"`)
	}
	if want := []string{"scripts/build.sh --out /out wasm-wasmedge"}; !slices.Equal(st.runs, want) {
		t.Errorf("stage wasm is built by %q, want %q", st.runs, want)
	}
	if want := []string{"/echo-wasmedge.wasm"}; !slices.Equal(st.entrypoint, want) || st.cmd != nil {
		t.Errorf("stage wasm runs %q %q, want the entrypoint %q", st.entrypoint, st.cmd, want)
	}
	root := t.TempDir()
	if out, code := runScript(t, root, nil, "build.sh", "--out", root, "wasm-wasmedge"); code != 0 {
		t.Fatalf("build.sh wasm-wasmedge: exit %d\n%s", code, out)
	}
	wasm := filepath.Join(root, "echo-wasmedge.wasm")
	checkWasm(t, wasm)
	b, err := os.ReadFile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazy.NewRuntime(ctx)
	defer rt.Close(ctx)
	compiled, err := rt.CompileModule(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	imports := map[string]bool{}
	for _, f := range compiled.ImportedFunctions() {
		if module, name, _ := f.Import(); module == "wasi_snapshot_preview1" {
			imports[name] = true
		}
	}
	for _, name := range []string{"sock_open", "sock_bind", "sock_listen", "sock_connect", "sock_getaddrinfo"} {
		if !imports[name] {
			t.Errorf("echo-wasmedge.wasm does not import %s", name)
		}
	}
}
