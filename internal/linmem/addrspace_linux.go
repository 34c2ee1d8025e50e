//go:build linux

package linmem

import (
	"bufio"
	"math"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// AddressSpaceLeft is how many more bytes of address space the process
// may map under its RLIMIT_AS (the soft limit, less the VmSize it has
// mapped already), or math.MaxUint64 when there is no such limit.
func AddressSpaceLeft() uint64 {
	limit := addressSpaceLimit()
	if limit == math.MaxUint64 {
		return limit
	}
	return limit - min(limit, vmSize())
}

// addressSpaceLimit is the soft RLIMIT_AS, or math.MaxUint64 for none.
func addressSpaceLimit() uint64 {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_AS, &lim); err != nil || lim.Cur == unix.RLIM_INFINITY {
		return math.MaxUint64
	}
	return lim.Cur
}

// vmSize is the process's mapped address space (VmSize), or 0 where it
// cannot be read.
func vmSize() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	for s := bufio.NewScanner(f); s.Scan(); {
		if v, ok := strings.CutPrefix(s.Text(), "VmSize:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
