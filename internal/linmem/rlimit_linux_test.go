//go:build linux

package linmem

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rlimitChildEnv marks the re-executed test binary of
// TestHeapFallbackUnderRLimitAS.
const rlimitChildEnv = "LINMEM_RLIMIT_AS_CHILD"

// TestHeapFallbackUnderRLimitAS runs, in a child process whose RLIMIT_AS
// leaves it 768 MiB more address space than it has mapped, two memories of
// 4 GiB maximum (whose reservations fail there, so that they fall back to
// the Go heap) grown by 20 MiB at a time and touched, as a guest's
// allocations do, until a grow fails. The process must go on: before, the
// Go runtime ran out of address space for its own heap and ended it
// ("fatal error: out of memory").
func TestHeapFallbackUnderRLimitAS(t *testing.T) {
	if os.Getenv(rlimitChildEnv) != "" {
		rlimitChild()
		return
	}
	if testing.Short() {
		t.Skip("-short: runs a child process that fills its address space limit")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHeapFallbackUnderRLimitAS$", "-test.count=1")
	cmd.Env = append(os.Environ(), rlimitChildEnv+"=1")
	done := make(chan struct{})
	defer close(done)
	go func() { // bounded: the child must not outlive the test
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			cmd.Process.Kill()
		}
	}()
	out, err := cmd.CombinedOutput()
	t.Logf("child: %s", strings.TrimSpace(string(out)))
	if err != nil || !strings.Contains(string(out), "grow refused") {
		t.Fatalf("the child process under RLIMIT_AS: %v, want it to refuse a grow and go on", err)
	}
}

// rlimitChild is the child's side: it lowers its RLIMIT_AS, grows two
// memories until one refuses, and reports.
func rlimitChild() {
	const step = 20 << 20
	limit := vmSize() + 768<<20
	if err := unix.Setrlimit(unix.RLIMIT_AS, &unix.Rlimit{Cur: limit, Max: limit}); err != nil {
		fmt.Println("setrlimit:", err)
		os.Exit(3)
	}
	alloc, freeAll := Allocator(0)
	defer freeAll()
	mems := []interface{ Reallocate(uint64) []byte }{alloc.Allocate(0, 1<<32), alloc.Allocate(0, 1<<32)}
	for _, m := range mems {
		if _, heap := m.(*heapMemory); !heap {
			fmt.Printf("a 4 GiB reservation succeeded under RLIMIT_AS %d MiB: %T\n", limit>>20, m)
			os.Exit(4)
		}
	}
	size := [2]uint64{}
	for i := 0; ; i++ {
		k := i % 2
		buf := mems[k].Reallocate(size[k] + step)
		if buf == nil {
			fmt.Printf("grow refused at %d + %d MiB under RLIMIT_AS %d MiB; VmSize %d MiB\n", size[0]>>20, size[1]>>20, limit>>20, vmSize()>>20)
			return
		}
		for off := size[k]; off < uint64(len(buf)); off += 4096 {
			buf[off] = 1
		}
		size[k] = uint64(len(buf))
	}
}
