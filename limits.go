package wasiserve

import (
	"os"
	"strconv"
	"strings"
)

// connMemory is what one connection held mid-request costs a Go guest's
// linear memory (measured on the echo guest: README, --max-conns).
const connMemory = 160 << 10

// maxDefaultConns bounds DefaultMaxConns, below the host's share of
// descriptors per instance.
const maxDefaultConns = 4096

// DefaultMaxConns is the MaxConns of engines that have a connection limit
// when none is given: connections may take half the guest's memory cap
// (4 GiB for maxMemory 0) at 160 KiB each, at most 4096, so that slow
// clients wait in the kernel's backlog instead of running the guest out
// of memory; and all instances together at most half the process's
// descriptor limit nofile (0: unknown), so that they cannot exhaust it
// between them.
func DefaultMaxConns(maxMemory uint64, instances int, nofile uint64) int {
	if maxMemory == 0 {
		maxMemory = 4 << 30
	}
	n := min(maxMemory/2/connMemory, maxDefaultConns)
	if nofile > 0 {
		n = min(n, nofile/2/uint64(max(instances, 1)))
	}
	return int(max(1, n))
}

// memAvailable is the memory the kernel says is available, in bytes, or
// 0 where it cannot tell.
func memAvailable() uint64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}
