package linmem

import (
	"math"
	"testing"
)

const wasmPage = 65536

// TestFree checks that a freed memory refuses to grow instead of handing
// out unmapped bytes, and that freeing twice is harmless.
func TestFree(t *testing.T) {
	alloc, _ := Allocator(0)
	if !supported {
		t.Skip("linmem: no mapped memories on this platform")
	}
	mem := alloc.Allocate(0, 4*wasmPage)
	mem.Reallocate(wasmPage)[0] = 1
	mem.Free()
	mem.Free()
	if buf := mem.Reallocate(wasmPage); buf != nil {
		t.Fatalf("a freed memory grew to %d bytes", len(buf))
	}
}

// TestHeapFallback checks the Go-heap memory used when no address space
// can be reserved: it grows, keeps its contents and stops at its maximum.
func TestHeapFallback(t *testing.T) {
	mem := &heapMemory{max: 3 * wasmPage}
	mem.Reallocate(wasmPage)[10] = 7
	if buf := mem.Reallocate(2 * wasmPage); len(buf) != 2*wasmPage || buf[10] != 7 {
		t.Fatalf("grow: %d bytes, byte 10 = %d", len(buf), buf[10])
	}
	if buf := mem.Reallocate(4 * wasmPage); buf != nil {
		t.Fatalf("grew past the maximum: %d bytes", len(buf))
	}
}

// TestFreeAll checks that the function Allocator returns frees every
// memory the allocator gave out, those the engine freed already included,
// even as the engine frees one at the same time.
func TestFreeAll(t *testing.T) {
	alloc, freeAll := Allocator(0)
	if !supported {
		t.Skip("linmem: no mapped memories on this platform")
	}
	freed := alloc.Allocate(0, 4*wasmPage)
	freed.Reallocate(wasmPage)[0] = 1
	freed.Free() // as the engine does when the instance closes
	leaked := alloc.Allocate(0, 4*wasmPage)
	leaked.Reallocate(wasmPage)[0] = 1 // an instance that failed to instantiate
	done := make(chan struct{})
	go func() { leaked.Free(); close(done) }()
	freeAll()
	<-done
	freeAll()
	for i, mem := range []interface{ Reallocate(uint64) []byte }{freed, leaked} {
		if buf := mem.Reallocate(wasmPage); buf != nil {
			t.Errorf("memory %d is still mapped after freeAll: %d bytes", i, len(buf))
		}
	}
}

// TestHugeMaximum: a maximum past any address space (up to 2^64-1 bytes,
// which a 64-bit memory's saturates to) gives a memory that still grows
// to its first pages, rather than a reservation whose size wrapped round
// to one page.
func TestHugeMaximum(t *testing.T) {
	alloc, freeAll := Allocator(0)
	if !supported {
		t.Skip("linmem: no mapped memories on this platform")
	}
	defer freeAll()
	for _, max := range []uint64{math.MaxUint64, math.MaxUint64 - wasmPage, 1 << 63} {
		mem := alloc.Allocate(0, max)
		buf := mem.Reallocate(2 * wasmPage)
		if len(buf) != 2*wasmPage {
			t.Fatalf("maximum %d: two pages gave %d bytes", max, len(buf))
		}
		buf[len(buf)-1] = 1
	}
}
