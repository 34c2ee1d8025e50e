package linmem

import (
	"math"
	"testing"
	"unsafe"
)

const wasmPage = 65536

// TestGrowInPlace grows a memory page by page: contents stay, the address
// never moves, and growing past the maximum fails without changing it.
func TestGrowInPlace(t *testing.T) {
	const maxPages = 8
	alloc, _ := Allocator()
	if alloc == nil {
		t.Skip("linmem: no mapped memories on this platform; the engine's own allocator is used")
	}
	mem := alloc.Allocate(wasmPage, maxPages*wasmPage)
	defer mem.Free()
	if _, ok := mem.(*mappedMemory); !ok {
		t.Fatalf("Allocate gave a %T, want a mapping", mem)
	}
	var base unsafe.Pointer
	for pages := uint64(1); pages <= maxPages; pages++ {
		buf := mem.Reallocate(pages * wasmPage)
		if uint64(len(buf)) != pages*wasmPage {
			t.Fatalf("%d pages: got %d bytes", pages, len(buf))
		}
		if pages == 1 {
			base = unsafe.Pointer(&buf[0])
		} else if unsafe.Pointer(&buf[0]) != base {
			t.Fatalf("%d pages: the memory moved", pages)
		}
		for p := uint64(0); p < pages-1; p++ {
			if got := buf[p*wasmPage]; got != byte(p+1) {
				t.Fatalf("%d pages: page %d holds %d, want %d", pages, p, got, p+1)
			}
		}
		buf[(pages-1)*wasmPage] = byte(pages)
		buf[len(buf)-1] = 0xff // the last byte is writable
	}
	if buf := mem.Reallocate((maxPages + 1) * wasmPage); buf != nil {
		t.Fatalf("grew past the maximum: %d bytes", len(buf))
	}
	if buf := mem.Reallocate(maxPages * wasmPage); buf[0] != 1 {
		t.Fatalf("after a failed grow, page 0 holds %d", buf[0])
	}
}

// TestFree checks that a freed memory refuses to grow instead of handing
// out unmapped bytes, and that freeing twice is harmless.
func TestFree(t *testing.T) {
	alloc, _ := Allocator()
	if alloc == nil {
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

// TestReserveWasm32 reserves the largest 32-bit memory, 4 GiB, as an
// unbounded guest gets, and grows it: the reservation costs address space
// only.
func TestReserveWasm32(t *testing.T) {
	alloc, _ := Allocator()
	if alloc == nil {
		t.Skip("linmem: no mapped memories on this platform")
	}
	mem := alloc.Allocate(0, 1<<32)
	defer mem.Free()
	if _, ok := mem.(*mappedMemory); !ok {
		t.Fatalf("Allocate(4 GiB) gave a %T, want a mapping", mem)
	}
	buf := mem.Reallocate(64 * wasmPage)
	buf[len(buf)-1] = 1
}

// TestFreeAll checks that the function Allocator returns frees every
// memory the allocator gave out, those the engine freed already included,
// even as the engine frees one at the same time.
func TestFreeAll(t *testing.T) {
	alloc, freeAll := Allocator()
	if alloc == nil {
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
	alloc, freeAll := Allocator()
	if alloc == nil {
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
