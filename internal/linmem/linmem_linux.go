//go:build linux && (amd64 || arm64)

package linmem

import (
	"sync"

	"github.com/samyfodil/wazy/api"
	"golang.org/x/sys/unix"
)

const supported = true

// maxReserve bounds a reservation: no larger one fits in the user address
// space of amd64 or arm64 Linux (2^47 or 2^48 bytes unless a process asks
// for 5-level page tables' larger one by mapping above it).
const maxReserve = 1 << 48

// mappedMemory is a linear memory in a private anonymous mapping of its
// maximum size. Bytes up to accessible are readable and writable; the rest
// is PROT_NONE, reserved address space that costs no memory. mu orders
// Free, which the engine and freeAll may both call, with the rest: a
// second munmap could unmap what the system has mapped there since.
type mappedMemory struct {
	mu         sync.Mutex
	mapping    []byte // the whole reservation; nil once freed
	accessible uint64 // a multiple of the system page size
}

// allocate reserves max bytes (rounded up to a page); capacity is only a
// hint, as growth never copies. It falls back to the Go heap when the
// reservation fails.
func allocate(capacity, max uint64) api.LinearMemory {
	page := uint64(unix.Getpagesize())
	if max > maxReserve {
		// Never mappable; rounding it up could wrap round to a page.
		return newHeapMemory(capacity, max)
	}
	reserve := roundUp(max, page)
	if reserve == 0 {
		reserve = page
	}
	mapping, err := unix.Mmap(-1, 0, int(reserve), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return newHeapMemory(capacity, max)
	}
	return &mappedMemory{mapping: mapping}
}

// Reallocate makes the first size bytes accessible and returns them, at
// the same address as before. It returns nil, a failed grow, when size is
// past the reservation or the system refuses the memory.
func (m *mappedMemory) Reallocate(size uint64) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mapping == nil || size > uint64(len(m.mapping)) {
		return nil
	}
	if size > m.accessible {
		page := uint64(unix.Getpagesize())
		end := min(roundUp(size, page), uint64(len(m.mapping)))
		if err := unix.Mprotect(m.mapping[m.accessible:end], unix.PROT_READ|unix.PROT_WRITE); err != nil {
			return nil
		}
		m.accessible = end
	}
	return m.mapping[:size:size]
}

// Free unmaps the memory; the engine calls it when the instance closes,
// after its last access, and freeAll once the instance has ended.
func (m *mappedMemory) Free() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mapping == nil {
		return
	}
	unix.Munmap(m.mapping)
	m.mapping, m.accessible = nil, 0
}

func roundUp(n, multiple uint64) uint64 {
	return (n + multiple - 1) / multiple * multiple
}
