//go:build linux

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/samyfodil/wazy"
	"github.com/samyfodil/wazy/api"
	"github.com/samyfodil/wazy/imports/wasi_snapshot_preview1"
)

// socketExtensions are the WasmEdge functions a wasinet guest imports
// beside WASI preview 1's.
var socketExtensions = []string{"sock_open", "sock_bind", "sock_listen", "sock_connect", "sock_getaddrinfo",
	"sock_getlocaladdr", "sock_getpeeraddr", "sock_setsockopt", "sock_getsockopt", "sock_recv_from", "sock_send_to"}

// TestNoSocketExtensions runs a wasinet guest on a runtime that has WASI
// preview 1 but not the socket extensions, defined only the ways such a
// runtime may define unknown imports: answering ENOSYS, or succeeding
// with zero values and writing nothing. Every dial and lookup must fail
// with wasinet.ErrNoSocketExtensions, whose text says what to run the
// guest with, not "connection refused".
func TestNoSocketExtensions(t *testing.T) {
	wasm, err := os.ReadFile(bins.dialprobeWasm)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		errno uint64
		want  string
	}{
		{"not implemented", 52, "(sock_open answered ENOSYS)"},
		{"zero values", 0, "(sock_open returned no socket)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			r := wazy.NewRuntimeWithConfig(ctx, wazy.NewRuntimeConfigInterpreter())
			defer r.Close(ctx)
			compiled, err := r.CompileModule(ctx, wasm)
			if err != nil {
				t.Fatal(err)
			}
			b := r.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
			wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
			stubbed := 0
			for _, imp := range compiled.ImportedFunctions() {
				module, name, _ := imp.Import()
				if module != wasi_snapshot_preview1.ModuleName || !slices.Contains(socketExtensions, name) {
					continue
				}
				errno := tc.errno
				b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) {
					stack[0] = errno
				}), imp.ParamTypes(), imp.ResultTypes()).Export(name)
				stubbed++
			}
			if stubbed == 0 {
				t.Fatal("the guest imports no socket extension: it would run anywhere, and this test checks nothing")
			}
			if _, err := b.Instantiate(ctx); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			cfg := wazy.NewModuleConfig().WithStdout(&stdout).WithStderr(&stderr).
				WithArgs("dialprobe", "dial=127.0.0.1:5432", "lookup=db.internal", "dial=db.internal:5432")
			mod, err := r.InstantiateModule(ctx, compiled, cfg)
			if err != nil {
				t.Fatalf("run: %v\nstderr: %s", err, &stderr)
			}
			mod.Close(ctx)
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			if len(lines) != 3 {
				t.Fatalf("%d lines, want one per call:\n%s\nstderr: %s", len(lines), &stdout, &stderr)
			}
			for _, line := range lines {
				if !strings.Contains(line, "does not provide the WasmEdge socket extensions that outbound connections need: "+
					"run the guest with hostharness serve (--engine wasmtime or --engine wazy) and --allow-dial, or with WasmEdge") ||
					!strings.Contains(line, tc.want) || !strings.HasSuffix(line, "(no socket extensions: true)") {
					t.Errorf("%q: want wasinet.ErrNoSocketExtensions %s", line, tc.want)
				}
			}
		})
	}
}

// TestServeRefusesWithoutExtensions serves the callout guest with the
// project's reference peer wazy-sock, which has no socket extensions: a
// module that imports them cannot be instantiated there, and serve says
// so, naming the import and the engines that run it, before anything
// starts.
func TestServeRefusesWithoutExtensions(t *testing.T) {
	cmd := exec.Command(bins.hostharness, "serve", "--engine", "wazy-sock", "--listen", "127.0.0.1:0", "--cache-dir", cacheDir(), bins.calloutWasm)
	out, err := cmd.CombinedOutput()
	want := "it imports wasi_snapshot_preview1.sock_open, which the wazy-sock engine does not provide; " +
		"guests built with the WasmEdge socket extensions run with --engine wasmtime or --engine wazy"
	if err == nil || cmd.ProcessState.ExitCode() == 0 || !strings.Contains(string(out), want) {
		t.Errorf("serve --engine wazy-sock: %v, output:\n%s\nwant a non-zero exit and %q", err, out, want)
	}
}
