package hostsock

import (
	"encoding/binary"
	"testing"
	"unsafe"
)

// FuzzIovecs decodes iovec arrays from arbitrary memory and checks that
// every buffer handed out lies inside memory and matches its entry, and
// that the errno says why when there are none.
func FuzzIovecs(f *testing.F) {
	f.Add([]byte(iovecMemory(64, 8, 128, 16)), uint32(0), uint32(2))
	f.Add([]byte(iovecMemory(250, 8)), uint32(0), uint32(1))
	f.Add([]byte(iovecMemory(8, 0xFFFFFFFF)), uint32(0), uint32(1))
	f.Add([]byte{}, uint32(0xFFFFFFFC), uint32(2))
	f.Add(make([]byte, 16), uint32(0), uint32(maxIovecs+1))
	f.Fuzz(func(t *testing.T, data []byte, iovs, n uint32) {
		mem := byteMemory(data)
		bufs, errno := iovecs(mem, iovs, n, nil)
		switch {
		case n > maxIovecs:
			if errno != errnoInval {
				t.Fatalf("%d iovecs: errno %d, want EINVAL", n, errno)
			}
			return
		case uint64(iovs)+uint64(n)*iovecSize > uint64(len(data)):
			if errno != errnoFault {
				t.Fatalf("array [%d, +%d) outside %d bytes: errno %d, want EFAULT", iovs, n*iovecSize, len(data), errno)
			}
			return
		}
		fault := false
		for i := uint32(0); i < n; i++ {
			off := binary.LittleEndian.Uint32(data[iovs+i*8:])
			size := binary.LittleEndian.Uint32(data[iovs+i*8+4:])
			if uint64(off)+uint64(size) > uint64(len(data)) {
				fault = true
				break
			}
			if errno == errnoSuccess && (len(bufs[i]) != int(size) || (size > 0 && &bufs[i][0] != &data[off])) {
				t.Fatalf("iovec %d: got %d bytes, want %d at offset %d", i, len(bufs[i]), size, off)
			}
		}
		if fault != (errno == errnoFault) || (!fault && (errno != errnoSuccess || uint32(len(bufs)) != n)) {
			t.Fatalf("fault %v: errno %d, %d buffers of %d", fault, errno, len(bufs), n)
		}
		for _, b := range bufs {
			if len(b) > 0 && !inside(data, b) {
				t.Fatalf("buffer outside memory")
			}
		}
	})
}

// inside reports whether b is a subslice of data.
func inside(data, b []byte) bool {
	start := uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return p >= start && p+uintptr(len(b)) <= start+uintptr(len(data))
}

// FuzzSubscriptions decodes subscription arrays from arbitrary memory and
// checks each decoded field against the raw bytes.
func FuzzSubscriptions(f *testing.F) {
	mem := make([]byte, 3*subscriptionSize)
	putSubscription(mem[0:], 1, eventtypeClock, clockMonotonic, 5e6, 0)
	putSubscription(mem[48:], 2, eventtypeFdRead, 3, 0, 0)
	putSubscription(mem[96:], 3, eventtypeFdWrite, 1<<20, 0, subclockAbstime)
	f.Add(mem, uint32(0), uint32(3))
	f.Add(mem, uint32(48), uint32(3))
	f.Add(mem, uint32(0), uint32(0))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 9}, uint32(0), uint32(1))
	f.Add(mem, uint32(0xFFFFFFF0), uint32(1))
	f.Fuzz(func(t *testing.T, data []byte, in, n uint32) {
		subs, errno := subscriptions(byteMemory(data), in, n, nil)
		switch {
		case n == 0 || n > maxSubscriptions:
			if errno != errnoInval {
				t.Fatalf("%d subscriptions: errno %d, want EINVAL", n, errno)
			}
			return
		case uint64(in)+uint64(n)*subscriptionSize > uint64(len(data)):
			if errno != errnoFault {
				t.Fatalf("array outside memory: errno %d, want EFAULT", errno)
			}
			return
		}
		for i := uint32(0); i < n; i++ {
			b := data[in+i*subscriptionSize:]
			if tag := b[8]; tag > eventtypeFdWrite {
				if errno != errnoInval {
					t.Fatalf("tag %d: errno %d, want EINVAL", tag, errno)
				}
				return
			}
		}
		if errno != errnoSuccess || uint32(len(subs)) != n {
			t.Fatalf("errno %d with %d of %d subscriptions", errno, len(subs), n)
		}
		for i, s := range subs {
			b := data[in+uint32(i)*subscriptionSize:]
			if s.userdata != binary.LittleEndian.Uint64(b) || s.tag != b[8] {
				t.Fatalf("subscription %d: %+v does not match its bytes", i, s)
			}
			if s.tag != eventtypeClock && s.fd != binary.LittleEndian.Uint32(b[16:]) {
				t.Fatalf("subscription %d: fd %d does not match its bytes", i, s.fd)
			}
			if s.tag == eventtypeClock && (s.timeout != binary.LittleEndian.Uint64(b[24:]) || s.flags != binary.LittleEndian.Uint16(b[40:])) {
				t.Fatalf("subscription %d: clock %+v does not match its bytes", i, s)
			}
		}
	})
}
