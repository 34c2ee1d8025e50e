//go:build !serveonly

package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompareUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown engine", []string{"--engine", "nope"}, `engine "nope": unknown engine`},
		{"bad regexp", []string{"-run", "("}, "-run: error parsing regexp"},
		{"no case matches", []string{"-run", "^no-such-case$"}, "matches no case"},
		{"two guests", []string{"a.wasm", "b.wasm"}, "at most one guest.wasm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			env := &cliEnv{engines: testEngines, stdout: io.Discard, stderr: &stderr, logger: slog.New(slog.NewTextHandler(&stderr, nil))}
			if code := runCompare(context.Background(), env, tc.args); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.want)
			}
		})
	}
}

// TestCompareCommand runs the command end to end on one fast engine and a
// few cases, with a JSON report.
func TestCompareCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the guest twice; the corpus itself runs in hostharness/internal/compare under -short too")
	}
	dir := t.TempDir()
	report := filepath.Join(dir, "report.json")
	var stdout, stderr bytes.Buffer
	env := &cliEnv{engines: testEngines, stdout: &stdout, stderr: &stderr, logger: slog.New(slog.NewTextHandler(&stderr, nil))}
	code := runCompare(context.Background(), env, []string{"--engine", "wazy", "--cache-dir", dir, "--json", report, "-run", "^(post-echo|get-listener)$"})
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "\n2 passed, 0 failed\n") {
		t.Errorf("stdout lacks the total line \"2 passed, 0 failed\":\n%s", stdout.String())
	}
	b, err := os.ReadFile(report)
	if err != nil || !bytes.Contains(b, []byte(`"passed": 2`)) {
		t.Errorf("JSON report: %v\n%s", err, b)
	}
}
