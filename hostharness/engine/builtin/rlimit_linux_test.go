//go:build linux

package builtin_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wasiserve/wasiserve/hostharness/engine"
	"github.com/wasiserve/wasiserve/hostharness/engine/wazy"
)

// rlimitChildEnv marks the re-executed test binary of
// TestOutOfAddressSpaceEndsGuest; its value is the cache directory.
const rlimitChildEnv = "WASISERVE_RLIMIT_AS_CHILD"

// TestOutOfAddressSpaceEndsGuest runs, in a child process whose
// RLIMIT_AS leaves it 1.5 GiB more than it has mapped, wazy without a
// budget (a memory of wasm32's 4 GiB, whose reservation fails there, so
// that it falls back to the Go heap) and a guest that grows its memory
// 20 MiB at a time, touching it, twice over. Each run must end with the
// guest's failed grow, and the process must go on: before, the Go runtime
// ran out of address space for its own heap and ended the host with
// "fatal error: out of memory".
func TestOutOfAddressSpaceEndsGuest(t *testing.T) {
	if dir := os.Getenv(rlimitChildEnv); dir != "" {
		outOfAddressSpaceChild(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("-short: runs a child process that fills its address space limit")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestOutOfAddressSpaceEndsGuest$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), rlimitChildEnv+"="+t.TempDir())
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", strings.TrimSpace(string(out)))
	if err != nil || strings.Count(string(out), "guest's grow failed") != 2 {
		t.Fatalf("the child process under RLIMIT_AS: %v, want two runs that end in a failed grow and the process going on", err)
	}
}

// outOfAddressSpaceChild is the child's side.
func outOfAddressSpaceChild(t *testing.T, cacheDir string) {
	ctx := context.Background()
	eng, err := engines.New(ctx, wazy.Name, engine.Options{CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	limit := vmSize(t) + 3<<29
	if err := unix.Setrlimit(unix.RLIMIT_AS, &unix.Rlimit{Cur: limit, Max: limit}); err != nil {
		t.Fatal(err)
	}
	for run := range 2 {
		err := runModule(t, eng, hostileModule("memory_grow"))
		code := engine.ExitCode(err)
		if code < 2 || code > 205 {
			t.Fatalf("run %d: %v, want the guest to exit with 1 + its grows", run, err)
		}
		fmt.Printf("run %d: the guest's grow failed after %d MiB under RLIMIT_AS %d MiB\n", run, (code-1)*20, limit>>20)
	}
}

// vmSize is the process's mapped address space.
func vmSize(t *testing.T) uint64 { return uint64(procStatus(t, "VmSize")) }
