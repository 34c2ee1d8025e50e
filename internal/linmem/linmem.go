// Package linmem backs guest linear memories with memory mapped outside
// the Go heap, for engines that take a wazero-style memory allocator, and
// caps them: an instance's memories together stay within its limit.
//
// A linear memory in the Go heap is garbage to the host's collector each
// time it grows (the engine copies it into a larger slice), and it counts
// twice towards the collector's goal (GOGC=100 lets the heap grow to twice
// what is live): a guest with a 20 MiB memory costs the host up to 40 MiB
// more of heap. Here each memory reserves its maximum once, as
// inaccessible address space, and grows in place by making more of it
// accessible: only the pages the guest touches are resident, a grow copies
// nothing, and the memory returns to the system when its instance closes.
//
// Where address space cannot be reserved (RLIMIT_AS, other systems), a
// memory falls back to the Go heap, and grows only while the process's
// address space limit leaves room for the grow and a margin: past it the
// Go runtime could not map its own heap and would end the whole process
// ("fatal error: out of memory"); the guest's grow fails instead.
package linmem

import (
	"math"
	"sync"

	"github.com/samyfodil/wazy/api"
)

// Allocator returns the allocator to give the engine for one instance
// (api.WithMemoryAllocator), and a function that frees every memory it
// allocated: call it once the instance is closed and none of its calls
// runs. The engine frees a memory when its instance closes, but not those
// of an instantiation that failed after allocating them (a start function
// that trapped or was stopped, a data segment out of bounds): wazy leaves
// them to the garbage collector, which knows nothing of a mapping.
//
// limit caps the bytes of all the instance's memories together (0: none
// but each memory's maximum): a grow past it fails, as one past the
// memory's maximum does.
func Allocator(limit uint64) (api.MemoryAllocator, func()) {
	a := &instanceAllocator{limit: limit}
	return a, a.freeAll
}

// instanceAllocator allocates the memories of one instance and keeps them,
// for freeAll.
type instanceAllocator struct {
	limit uint64
	mu    sync.Mutex
	mems  []api.LinearMemory
	// reserved is the sum of the maxima of the memories allocated, each
	// cut to what limit left when it was allocated.
	reserved uint64
}

func (a *instanceAllocator) Allocate(capacity, max uint64) api.LinearMemory {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.limit != 0 {
		max = min(max, a.limit-a.reserved)
		a.reserved += max
	}
	mem := allocate(capacity, max)
	a.mems = append(a.mems, mem)
	return mem
}

// freeAll frees every memory allocated, those the engine freed included:
// freeing twice is harmless.
func (a *instanceAllocator) freeAll() {
	a.mu.Lock()
	mems := a.mems
	a.mems, a.reserved = nil, 0
	a.mu.Unlock()
	for _, mem := range mems {
		mem.Free()
	}
}

// heapMemory is a linear memory in the Go heap: the fallback when address
// space cannot be reserved (RLIMIT_AS, say), which grows as the engine's
// own memories do, while the address space limit leaves room
// (heapRoom). mu orders Free, which the engine and freeAll may both call,
// with the rest.
type heapMemory struct {
	mu    sync.Mutex
	buf   []byte
	max   uint64
	freed bool
}

// newHeapMemory returns an empty heap memory of capacity bytes (at most
// max, and what the address space limit leaves) that grows up to max.
func newHeapMemory(capacity, max uint64) *heapMemory {
	m := &heapMemory{max: max}
	if c := min(capacity, max); c > 0 && heapRoom(c) {
		m.buf = make([]byte, 0, c)
	}
	return m
}

func (m *heapMemory) Reallocate(size uint64) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.freed || size > m.max {
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
		return m.buf
	}
	newCap := max(size, min(2*uint64(cap(m.buf)), m.max))
	if !heapRoom(newCap) {
		if newCap == size || !heapRoom(size) {
			return nil // the guest's grow fails; the host goes on
		}
		newCap = size
	}
	grown := make([]byte, size, newCap)
	copy(grown, m.buf)
	m.buf = grown
	return m.buf
}

func (m *heapMemory) Free() {
	m.mu.Lock()
	m.buf, m.freed = nil, true
	m.mu.Unlock()
}

// minHeapMargin is the least address space a heap memory's grow leaves
// the Go runtime under RLIMIT_AS, for the host's own heap.
const minHeapMargin = 64 << 20

// heapRoom reports whether n more bytes of Go heap leave the runtime its
// margin under the address space limit: the larger of minHeapMargin and
// 1/16 of the limit (256 MiB of 4 GiB). The old buffer of a grow stays
// mapped in the Go heap (the runtime reuses its address space, but never
// unmaps it), so the limit is checked against what is mapped now, at each
// grow.
func heapRoom(n uint64) bool {
	limit := addressSpaceLimit()
	if limit == math.MaxUint64 {
		return true
	}
	left := AddressSpaceLeft()
	margin := max(minHeapMargin, limit/16)
	return left > margin && n <= left-margin
}
