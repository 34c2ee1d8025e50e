package wasiserve

import (
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/wasiserve/wasiserve/internal/linmem"
)

// connMemory is what one connection can make a Go guest's linear memory
// hold under net/http's defaults: a client sending request headers up to
// http.DefaultMaxHeaderBytes (1 MiB) makes it buffer about 1 MiB, which
// the Go collector's goal (GOGC=100) doubles (64 such connections ran a
// 64 MiB guest out of memory: TestLargeHeadersWithinBudget); an ordinary
// request held mid-way costs 126-160 KiB.
const connMemory = 2 << 20

// maxDefaultConns bounds DefaultMaxConns, below the host's share of
// descriptors per instance.
const maxDefaultConns = 4096

// DefaultMaxConns is the MaxConns of engines that have a connection limit
// when none is given: connections may take half the instance's memory
// budget maxMemory (4 GiB for 0) at 2 MiB each (connMemory: 1,024 for
// 4 GiB, 16 for 64 MiB), at most 4096, so that clients past it, however
// large their headers, wait in the kernel's backlog instead of running
// the guest out of memory; and all instances together at most half the
// process's descriptor limit nofile (0: unknown), so that they cannot
// exhaust it between them.
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

// maxDefaultMemory bounds DefaultMaxMemory: wasm32's 4 GiB.
const maxDefaultMemory = 4 << 30

// MinDefaultMemory is the least budget DefaultMaxMemory may give an
// instance: Options with more instances than the memory available holds
// at that budget each are refused, unless they set MaxMemory.
const MinDefaultMemory = 64 << 20

// DefaultMaxMemory is the MaxMemory (each instance's memory budget) when
// none is given: half of avail, the memory available to the process
// (availableMemory; 0: unknown, which gives 4 GiB), shared by the
// instances, rounded down to a power of two, so that it stays the same
// from one start to the next as the machine's free memory moves, and at
// most 4 GiB.
func DefaultMaxMemory(avail uint64, instances int) uint64 {
	if avail == 0 {
		return maxDefaultMemory
	}
	share := avail / 2 / uint64(max(instances, 1))
	if share >= maxDefaultMemory {
		return maxDefaultMemory
	}
	if share == 0 {
		return 0
	}
	return 1 << (bits.Len64(share) - 1)
}

// availableMemory is what the process may still take, in bytes: the
// least of the kernel's MemAvailable, its cgroup's memory.max less its
// usage, and the address space RLIMIT_AS leaves (linear memories reserve
// theirs); 0 when none of them is known.
func availableMemory() uint64 {
	avail := uint64(math.MaxUint64)
	for _, v := range []uint64{memAvailable(), cgroupAvailable()} {
		if v != 0 {
			avail = min(avail, v)
		}
	}
	// math.MaxUint64 without a limit; at it, 1 byte: none left, not
	// unknown.
	avail = min(avail, max(1, linmem.AddressSpaceLeft()))
	if avail == math.MaxUint64 {
		return 0
	}
	return avail
}

// cgroupAvailable is what the process's cgroup (v2) may still take:
// memory.max less the anonymous memory its processes hold (memory.stat's
// anon: its page cache is reclaimable, and memory.current counts it), or
// 0 where there is no limit or it cannot tell.
func cgroupAvailable() uint64 {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	// cgroup v2: the one line "0::/PATH".
	path, ok := strings.CutPrefix(strings.TrimSpace(string(data)), "0::")
	if !ok || strings.Contains(path, "\n") {
		return 0
	}
	dir := filepath.Join("/sys/fs/cgroup", path)
	data, err = os.ReadFile(filepath.Join(dir, "memory.max"))
	if err != nil {
		return 0
	}
	limit, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0 // "max": no limit
	}
	var anon uint64
	if data, err = os.ReadFile(filepath.Join(dir, "memory.stat")); err == nil {
		for line := range strings.Lines(string(data)) {
			if v, ok := strings.CutPrefix(line, "anon "); ok {
				anon, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			}
		}
	}
	return limit - min(limit-1, anon)
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
