// Package linmem backs guest linear memories with memory mapped outside
// the Go heap, for engines that take a wazero-style memory allocator.
//
// A linear memory in the Go heap is garbage to the host's collector each
// time it grows (the engine copies it into a larger slice), and it counts
// twice towards the collector's goal (GOGC=100 lets the heap grow to twice
// what is live): a guest with a 20 MiB memory costs the host up to 40 MiB
// more of heap. Here each memory reserves its maximum once, as
// inaccessible address space, and grows in place by making more of it
// accessible: only the pages the guest touches are resident, a grow copies
// nothing, and the memory returns to the system when its instance closes.
package linmem

import (
	"github.com/samyfodil/wazy/api"
)

// Allocator returns the allocator to give the engine (api.WithMemoryAllocator),
// or nil where this package cannot reserve address space (32-bit hosts,
// other systems): the engine then uses its own, in the Go heap.
func Allocator() api.MemoryAllocator {
	if !supported {
		return nil
	}
	return api.MemoryAllocatorFunc(allocate)
}

// heapMemory is a linear memory in the Go heap: the fallback when address
// space cannot be reserved (RLIMIT_AS, say), which grows as the engine's
// own memories do.
type heapMemory struct {
	buf []byte
	max uint64
}

func (m *heapMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	grown := make([]byte, size, max(size, min(2*uint64(cap(m.buf)), m.max)))
	copy(grown, m.buf)
	m.buf = grown
	return m.buf
}

func (m *heapMemory) Free() { m.buf = nil }
