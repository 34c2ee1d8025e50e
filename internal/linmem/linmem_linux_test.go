//go:build linux && (amd64 || arm64)

package linmem

import (
	"testing"
	"unsafe"
)

// TestGrowInPlace grows a memory page by page: contents stay, the address
// never moves, and growing past the maximum fails without changing it.
func TestGrowInPlace(t *testing.T) {
	const maxPages = 8
	alloc, _ := Allocator(0)
	if !supported {
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

// TestReserveWasm32 reserves the largest 32-bit memory, 4 GiB, as an
// unbounded guest gets, and grows it: the reservation costs address space
// only.
func TestReserveWasm32(t *testing.T) {
	alloc, _ := Allocator(0)
	if !supported {
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
