// Package guestbuild builds the wasiserve echo guest, for WASI or natively,
// with the go command that is on PATH.
package guestbuild

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Package is the import path of the echo guest's main package.
const Package = "github.com/wasiserve/wasiserve/guest"

// Target is a GOOS/GOARCH pair and build tags; the zero Target is the
// host without tags.
type Target struct {
	GOOS, GOARCH string
	// Tags is a comma-separated list of build tags.
	Tags string
}

// WASI is the target of wasm guests.
var WASI = Target{GOOS: "wasip1", GOARCH: "wasm"}

// WasmEdgeTags select the echo guest's variant for the WasmEdge socket
// extensions: it can listen on LISTEN_ADDR itself and has the outbound
// GET /fetch route, with github.com/stealthrocket/net, which resolves
// names with sock_getaddrinfo under the getaddrinfo tag.
// scripts/build.sh (mode wasm-wasmedge) builds with the same tags.
const WasmEdgeTags = "wasmedge,getaddrinfo"

// WASIWasmEdge is the target of that variant: only hosts with the socket
// extensions (WasmEdge, the wasmtime and wazy engines) can instantiate it.
var WASIWasmEdge = Target{GOOS: "wasip1", GOARCH: "wasm", Tags: WasmEdgeTags}

// IsWASI reports whether t builds wasm guests.
func (t Target) IsWASI() bool { return t.GOOS == WASI.GOOS }

// Build compiles pkg for target into out. It must run inside the wasiserve
// module (any directory of the checkout); extraEnv adds variables such as
// CGO_ENABLED=0.
func Build(ctx context.Context, pkg string, target Target, out string, extraEnv ...string) error {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("build %s: the go command is needed to build the guest: %w", pkg, err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("build %s: %w", pkg, err)
	}
	args := []string{"build", "-o", out}
	if target.Tags != "" {
		args = append(args, "-tags", target.Tags)
	}
	cmd := exec.CommandContext(ctx, goCmd, append(args, pkg)...)
	cmd.Env = append(os.Environ(), extraEnv...)
	if target.GOOS != "" {
		cmd.Env = append(cmd.Env, "GOOS="+target.GOOS, "GOARCH="+target.GOARCH)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "cannot find module") || strings.Contains(msg, "not in std") || strings.Contains(msg, "go.mod file not found") {
			msg += "\n(run from a wasiserve checkout, or pass the path of a .wasm file)"
		}
		return fmt.Errorf("build %s for %s: %w\n%s", pkg, target, err, msg)
	}
	return nil
}

func (t Target) String() string {
	s := "host"
	if t.GOOS != "" {
		s = t.GOOS + "/" + t.GOARCH
	}
	if t.Tags != "" {
		s += " (tags " + t.Tags + ")"
	}
	return s
}

// DefaultOutput is where the harness keeps a built guest named name.
func DefaultOutput(cacheDir, name string) string {
	return filepath.Join(cacheDir, "guests", name)
}
