package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/internal/enginetest"
	"github.com/wasiserve/wasiserve/hostharness/internal/syncbuf"
)

// TestServeMessages serves, twice with one cache, a guest that exits 3 at
// once: the second start must say that it loaded the compiled guest from
// the cache (not that it compiles), and serve's error must be one line
// that says the guest's exit once.
func TestServeMessages(t *testing.T) {
	for _, name := range []string{engine.Wazero, engine.WazeroSock} {
		t.Run(name, func(t *testing.T) {
			var logs syncbuf.Buffer
			for i := range 2 {
				logs = syncbuf.Buffer{}
				env := &cliEnv{stdout: io.Discard, stderr: &logs, logger: newLogger(&logs)}
				code := run(context.Background(), env, []string{"serve", "--engine", name, "--listen", "127.0.0.1:0",
					"--cache-dir", enginetest.CacheDir(), "--env", "EXIT_CODE=3", built.fd3})
				if code != 3 {
					t.Fatalf("run %d: exit %d, want 3; logs:\n%s", i, code, logs.String())
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
