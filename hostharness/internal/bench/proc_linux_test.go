//go:build linux

package bench

import (
	"context"
	"crypto/sha256"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

func TestReadProcSelf(t *testing.T) {
	before, _, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if before.PPID != os.Getppid() {
		t.Errorf("PPID = %d, want %d", before.PPID, os.Getppid())
	}
	// Touch 64 MiB so that the peak RSS must be at least that, and burn
	// some CPU so that the CPU time must grow.
	const size = 64 << 20
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i)
	}
	burnCPU(t, buf, 300*time.Millisecond)
	after, hwm, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.CPU <= before.CPU {
		t.Errorf("CPU time did not grow: %v then %v", before.CPU, after.CPU)
	}
	if hwm < size {
		t.Errorf("VmHWM = %d bytes, want at least the %d touched", hwm, size)
	}
	buf[0] = 1 // keep buf alive until here
}

func TestTreeUsageCountsChildren(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	child := exec.CommandContext(ctx, "sleep", "20")
	if err := child.Start(); err != nil {
		t.Skipf("cannot start a child process (sleep): %v", err)
	}
	defer func() {
		child.Process.Kill()
		child.Wait()
	}()
	pids, err := descendants(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if pids[0] != os.Getpid() || !slices.Contains(pids, child.Process.Pid) {
		t.Errorf("descendants(%d) = %v, want self first and the child %d", os.Getpid(), pids, child.Process.Pid)
	}
	self, selfHWM, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	_, childHWM, err := readProc(child.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := treeUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if tree.PeakRSS < selfHWM+childHWM || tree.CPU < self.CPU {
		t.Errorf("treeUsage = %+v, want at least self (%v, %d) plus child RSS %d", tree, self.CPU, selfHWM, childHWM)
	}
}

// burnCPU hashes buf for about d of wall time, using CPU meanwhile.
func burnCPU(t *testing.T, buf []byte, d time.Duration) {
	t.Helper()
	for start := time.Now(); time.Since(start) < d; {
		sha256.Sum256(buf)
	}
}
