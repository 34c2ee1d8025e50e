package hostsock

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// FuzzSockaddr decodes address buffers from arbitrary memory and checks
// the address against the bytes it came from, and the errno against why
// there is none.
func FuzzSockaddr(f *testing.F) {
	v6 := netip.MustParseAddr("2001:db8::1").As16()
	f.Add([]byte(addressMemory([]byte{127, 0, 0, 1})), uint32(0), uint32(80))
	f.Add([]byte(addressMemory(v6[:])), uint32(0), uint32(443))
	f.Add([]byte(addressMemory(taggedAddr(afInet, 10, 0, 0, 1))), uint32(0), uint32(53))
	f.Add([]byte(addressMemory(taggedAddr(afInet6, v6[:]...))), uint32(0), uint32(53))
	f.Add([]byte(addressMemory(taggedAddr(afUnix, '/'))), uint32(0), uint32(0))
	f.Add([]byte{}, uint32(0xFFFFFFFC), uint32(1<<16))
	f.Fuzz(func(t *testing.T, data []byte, ptr, port uint32) {
		ap, errno := sockaddr(byteMemory(data), ptr, port)
		if uint64(ptr)+addressBufSize > uint64(len(data)) {
			if errno != errnoFault {
				t.Fatalf("buffer struct outside memory: errno %d, want EFAULT", errno)
			}
			return
		}
		buf, n := binary.LittleEndian.Uint32(data[ptr:]), binary.LittleEndian.Uint32(data[ptr+4:])
		if uint64(buf)+uint64(n) > uint64(len(data)) {
			if errno != errnoFault {
				t.Fatalf("address outside memory: errno %d, want EFAULT", errno)
			}
			return
		}
		raw := data[buf : buf+n]
		if port > 0xFFFF {
			if errno != errnoInval {
				t.Fatalf("port %d: errno %d, want EINVAL", port, errno)
			}
			return
		}
		var want []byte
		switch {
		case n == 4 || n == 16:
			want = raw
		case n == sockaddrAnySize && binary.LittleEndian.Uint16(raw) == afInet:
			want = raw[2:6]
		case n == sockaddrAnySize && binary.LittleEndian.Uint16(raw) == afInet6:
			want = raw[2:18]
		case n == sockaddrAnySize && binary.LittleEndian.Uint16(raw) == afUnix:
			if errno != errnoAfnosupport {
				t.Fatalf("AF_UNIX: errno %d, want EAFNOSUPPORT", errno)
			}
			return
		default:
			if errno != errnoInval {
				t.Fatalf("%d-byte address: errno %d, want EINVAL", n, errno)
			}
			return
		}
		if errno != errnoSuccess || !bytes.Equal(ap.Addr().AsSlice(), want) || ap.Port() != uint16(port) {
			t.Fatalf("decoded %v, errno %d; want % x port %d", ap, errno, want, port)
		}
	})
}

// FuzzAddrinfo resolves result chains from arbitrary memory, writes a
// result into every slot, and checks that the chain stays within limit
// and memory, and that writing touches nothing but the slots.
func FuzzAddrinfo(f *testing.F) {
	f.Add([]byte(addrinfoMemory(3)), uint32(0), uint32(8))
	f.Add([]byte(addrinfoMemory(2)), uint32(0), uint32(1))
	f.Add([]byte(addrinfoMemory(1)), uint32(0xFFFFFFFE), uint32(1))
	cyclic := addrinfoMemory(1)
	le.PutUint32(cyclic[8+24:], 8)
	f.Add([]byte(cyclic), uint32(0), uint32(100))
	f.Fuzz(func(t *testing.T, data []byte, resPtr, limit uint32) {
		limit %= 1 << 10 // the guest's max_res_len; a longer chain needs more memory than fuzzing makes
		slots, errno := addrinfoChain(byteMemory(data), resPtr, limit, nil)
		if uint32(len(slots)) > limit {
			t.Fatalf("%d slots, limit %d", len(slots), limit)
		}
		if errno != errnoSuccess {
			return
		}
		before := bytes.Clone(data)
		for i := range slots {
			for j := range i {
				if &slots[i].info[0] == &slots[j].info[0] {
					t.Fatalf("slots %d and %d are one addrinfo: the chain looped", j, i)
				}
			}
		}
		for i, s := range slots {
			for _, b := range [][]byte{s.info, s.addr, s.data} {
				if !inside(data, b) {
					t.Fatalf("slot %d outside memory", i)
				}
			}
			if len(s.info) != addrinfoSize || len(s.addr) != sockaddrSize || len(s.data) < 18 {
				t.Fatalf("slot %d: sizes %d, %d, %d", i, len(s.info), len(s.addr), len(s.data))
			}
			s.put(netip.MustParseAddrPort("[2001:db8::1]:443"), sockStream, ipprotoTCP)
		}
		for i := range data {
			if data[i] != before[i] && !inAnySlot(data, i, slots) {
				t.Fatalf("byte %d changed outside every slot", i)
			}
		}
	})
}

// inAnySlot reports whether data[i] belongs to one of the slots.
func inAnySlot(data []byte, i int, slots []addrinfoSlot) bool {
	for _, s := range slots {
		for _, b := range [][]byte{s.info, s.addr, s.data} {
			if inside(data, b) && len(b) > 0 && inside(b, data[i:i+1]) {
				return true
			}
		}
	}
	return false
}

// FuzzSockopt checks that only 4-byte SOL_SOCKET integer options decode,
// and that the ones the guest may not touch never do.
func FuzzSockopt(f *testing.F) {
	f.Add(uint32(solSocket), uint32(soReuseaddr), uint32(4))
	f.Add(uint32(solSocket), uint32(soError), uint32(4))
	f.Add(uint32(solSocket), uint32(soLinger), uint32(8))
	f.Add(uint32(solSocket), uint32(soBindtodevice), uint32(16))
	f.Add(uint32(1), uint32(1), uint32(4))
	f.Fuzz(func(t *testing.T, level, name, n uint32) {
		opt, errno := decodeSockopt(level, name, n)
		if errno != errnoSuccess {
			return
		}
		if level != solSocket || n != 4 || opt.name != name {
			t.Fatalf("decoded level %d name %d len %d as %+v", level, name, n, opt)
		}
		switch name {
		case soLinger, soRcvtimeo, soSndtimeo, soBindtodevice:
			t.Fatalf("option %d decoded", name)
		case soType, soError, soAcceptconn:
			if !opt.readOnly {
				t.Fatalf("option %d is settable", name)
			}
		default:
			if name > soBindtodevice || opt.readOnly {
				t.Fatalf("option %d: %+v", name, opt)
			}
		}
	})
}
