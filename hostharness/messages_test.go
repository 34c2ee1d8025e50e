package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasiserve/wasiserve/internal/syncbuf"
)

// exit3Module is a WASI command whose _start calls proc_exit(3).
var exit3Module = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x08, 0x02, 0x60, 0x01, 0x7f, 0x00, 0x60, 0x00, 0x00, // types: (i32) -> (), () -> ()
	0x02, 0x24, 0x01, 0x16, 'w', 'a', 's', 'i', '_', 's', 'n', 'a', 'p', 's', 'h', 'o', 't', '_', 'p', 'r', 'e', 'v', 'i', 'e', 'w', '1',
	0x09, 'p', 'r', 'o', 'c', '_', 'e', 'x', 'i', 't', 0x00, 0x00, // import proc_exit, type 0
	0x03, 0x02, 0x01, 0x01, // function 1 has type 1
	0x05, 0x03, 0x01, 0x00, 0x01, // one memory of 1 page
	0x07, 0x13, 0x02, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x01, 0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00,
	0x0a, 0x08, 0x01, 0x06, 0x00, 0x41, 0x03, 0x10, 0x00, 0x0b, // i32.const 3, call proc_exit
}

// TestServeMessages serves, twice with one (private) cache, a guest that
// exits 3 at once: the second start must say that it loaded the compiled
// guest from the cache (not that it compiles), and serve's error must be
// one line that says the guest's exit once.
func TestServeMessages(t *testing.T) {
	wasm := filepath.Join(t.TempDir(), "exit3.wasm")
	if err := os.WriteFile(wasm, exit3Module, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range testEngines.EmbeddedNames() {
		t.Run(name, func(t *testing.T) {
			cacheDir := t.TempDir()
			var logs syncbuf.Buffer
			for i := range 2 {
				logs = syncbuf.Buffer{}
				env := &cliEnv{engines: testEngines, stdout: io.Discard, stderr: &logs, logger: newLogger(&logs)}
				code := run(context.Background(), env, []string{"serve", "--engine", name, "--listen", "127.0.0.1:0",
					"--cache-dir", cacheDir, wasm})
				if code != 3 {
					t.Fatalf("run %d: exit %d, want 3; logs:\n%s", i, code, logs.String())
				}
				if i == 0 && !strings.Contains(logs.String(), `msg="compiled guest"`) {
					t.Errorf("the first start, with an empty cache, does not say that it compiled:\n%s", logs.String())
				}
			}
			out := logs.String()
			if !strings.Contains(out, `msg="loaded compiled guest (cache)"`) || strings.Contains(out, "compiling") {
				t.Errorf("a start from the cache does not say so:\n%s", out)
			}
			for line := range strings.Lines(out) {
				if strings.Contains(line, `\n`) {
					t.Errorf("log line with a literal \\n: %s", line)
				}
				if strings.Contains(line, "serve failed") && strings.Count(line, "guest exited with code 3") != 1 {
					t.Errorf("serve's error does not say the exit once: %s", line)
				}
			}
		})
	}
}

// TestOneLineLogs: every logged value is one line, each of its lines said
// once.
func TestOneLineLogs(t *testing.T) {
	var out strings.Builder
	exit := errors.New("guest exited with code 1")
	newLogger(&out).With("ctx", "with\nattrs").Error("serve\nfailed",
		"err", errors.Join(fmt.Errorf("start: %w", exit), exit, exit),
		"text", "build failed\n# pkg\nmain.go:1: syntax error\n",
		"n", 3)
	got := out.String()
	if strings.Count(got, "\n") != 1 || strings.Contains(got, `\n`) {
		t.Fatalf("not one line: %q", got)
	}
	for _, want := range []string{`msg="serve; failed"`, `ctx="with; attrs"`,
		`err="start: guest exited with code 1; guest exited with code 1"`,
		`text="build failed; # pkg; main.go:1: syntax error"`, "n=3"} {
		if !strings.Contains(got, want) {
			t.Errorf("%s: no %s", got, want)
		}
	}
}
