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
// The allocator is nil where this package cannot reserve address space
// (32-bit hosts, other systems): the engine then uses its own, in the Go
// heap, and the function does nothing.
func Allocator() (api.MemoryAllocator, func()) {
	if !supported {
		return nil, func() {}
	}
	a := &instanceAllocator{}
	return a, a.freeAll
}

// instanceAllocator allocates the memories of one instance and keeps them,
// for freeAll.
type instanceAllocator struct {
	mu   sync.Mutex
	mems []api.LinearMemory
}

func (a *instanceAllocator) Allocate(capacity, max uint64) api.LinearMemory {
	mem := allocate(capacity, max)
	a.mu.Lock()
	a.mems = append(a.mems, mem)
	a.mu.Unlock()
	return mem
}

// freeAll frees every memory allocated, those the engine freed included:
// freeing twice is harmless.
func (a *instanceAllocator) freeAll() {
	a.mu.Lock()
	mems := a.mems
	a.mems = nil
	a.mu.Unlock()
	for _, mem := range mems {
		mem.Free()
	}
}

// heapMemory is a linear memory in the Go heap: the fallback when address
// space cannot be reserved (RLIMIT_AS, say), which grows as the engine's
// own memories do. mu orders Free, which the engine and freeAll may both
// call, with the rest.
type heapMemory struct {
	mu  sync.Mutex
	buf []byte
	max uint64
}

// newHeapMemory returns an empty heap memory of capacity bytes (at most
// max) that grows up to max.
func newHeapMemory(capacity, max uint64) *heapMemory {
	return &heapMemory{buf: make([]byte, 0, min(capacity, max)), max: max}
}

func (m *heapMemory) Reallocate(size uint64) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
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

func (m *heapMemory) Free() {
	m.mu.Lock()
	m.buf = nil
	m.mu.Unlock()
}
