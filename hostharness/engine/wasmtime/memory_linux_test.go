//go:build cgo && linux

package wasmtime

import (
	"syscall"
	"testing"
)

// TestGuestMemoryReadAt4GiB: a read that ends exactly at the end of a
// 4 GiB memory is served; its end, off+n, is 2^32, which wrapped to 0 in
// 32 bits and panicked (slice bounds out of range).
func TestGuestMemoryReadAt4GiB(t *testing.T) {
	const size = 1 << 32
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_NONE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		t.Skipf("cannot reserve 4 GiB of address space here: %v", err)
	}
	defer syscall.Munmap(mem)
	m := &guestMemory{b: mem}
	for _, tc := range []struct {
		off, n uint32
		ok     bool
	}{
		{0xFFFFFFF0, 0x10, true},
		{0xFFFFFFFF, 1, true},
		{0xFFFFFFF0, 0x11, false},
		{0xFFFFFFFF, 0xFFFFFFFF, false},
		{0, 0, true},
	} {
		b, ok := m.Read(tc.off, tc.n)
		if ok != tc.ok || ok && (len(b) != int(tc.n) || cap(b) != int(tc.n)) {
			t.Errorf("Read(%#x, %#x) = %d bytes (cap %d), %v; want %v", tc.off, tc.n, len(b), cap(b), ok, tc.ok)
		}
	}
}
