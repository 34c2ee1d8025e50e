package hostsock

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// byteMemory is guest memory as a plain byte slice, with wazero's bounds
// rule: offset+byteCount must not pass the end.
type byteMemory []byte

func (m byteMemory) Read(offset, byteCount uint32) ([]byte, bool) {
	if uint64(offset)+uint64(byteCount) > uint64(len(m)) {
		return nil, false
	}
	return m[offset : offset+byteCount : offset+byteCount], true
}

// iovecMemory lays out iovecs (pairs of offset, length) at offset 0 of a
// 256-byte memory.
func iovecMemory(pairs ...uint32) byteMemory {
	mem := make(byteMemory, 256)
	for i, v := range pairs {
		binary.LittleEndian.PutUint32(mem[i*4:], v)
	}
	return mem
}

func TestIovecs(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mem       byteMemory
		iovs, n   uint32
		wantLens  []int
		wantErrno Errno
	}{
		{"none", iovecMemory(), 0, 0, nil, errnoSuccess},
		{"two", iovecMemory(64, 8, 128, 16), 0, 2, []int{8, 16}, errnoSuccess},
		{"empty buffer at the end", iovecMemory(256, 0), 0, 1, []int{0}, errnoSuccess},
		{"buffer past the end", iovecMemory(250, 8), 0, 1, nil, errnoFault},
		{"huge length", iovecMemory(8, 0xFFFFFFFF), 0, 1, nil, errnoFault},
		{"array past the end", iovecMemory(), 252, 1, nil, errnoFault},
		{"array offset wraps", iovecMemory(), 0xFFFFFFFC, 2, nil, errnoFault},
		{"too many", iovecMemory(), 0, maxIovecs + 1, nil, errnoInval},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bufs, errno := iovecs(tc.mem, tc.iovs, tc.n, nil)
			if errno != tc.wantErrno {
				t.Fatalf("errno %d, want %d", errno, tc.wantErrno)
			}
			var lens []int
			for _, b := range bufs {
				lens = append(lens, len(b))
			}
			if errno == errnoSuccess {
				if diff := cmp.Diff(tc.wantLens, lens); diff != "" {
					t.Errorf("buffer lengths (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// putSubscription encodes one subscription at b.
func putSubscription(b []byte, userdata uint64, tag uint8, fdOrClock uint32, timeout uint64, flags uint16) {
	binary.LittleEndian.PutUint64(b, userdata)
	b[8] = tag
	binary.LittleEndian.PutUint32(b[16:], fdOrClock)
	binary.LittleEndian.PutUint64(b[24:], timeout)
	binary.LittleEndian.PutUint16(b[40:], flags)
}

func TestSubscriptions(t *testing.T) {
	mem := make(byteMemory, 4*subscriptionSize)
	putSubscription(mem[0:], 1, eventtypeClock, clockMonotonic, 5e6, 0)
	putSubscription(mem[48:], 2, eventtypeFdRead, 3, 0, 0)
	putSubscription(mem[96:], 3, eventtypeFdWrite, 1<<20, 0, 0)
	putSubscription(mem[144:], 4, 7, 0, 0, 0)
	want := []subscription{
		{userdata: 1, tag: eventtypeClock, clockID: clockMonotonic, timeout: 5e6},
		{userdata: 2, tag: eventtypeFdRead, fd: 3},
		{userdata: 3, tag: eventtypeFdWrite, fd: 1 << 20},
	}
	got, errno := subscriptions(mem, 0, 3, nil)
	if errno != errnoSuccess {
		t.Fatalf("errno %d", errno)
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(subscription{})); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		name      string
		in, n     uint32
		wantErrno Errno
	}{
		{"unknown tag", 0, 4, errnoInval},
		{"none", 0, 0, errnoInval},
		{"too many", 0, maxSubscriptions + 1, errnoInval},
		{"past the end", 48, 4, errnoFault},
		{"offset wraps", 0xFFFFFFF0, 1, errnoFault},
	} {
		if _, errno := subscriptions(mem, tc.in, tc.n, nil); errno != tc.wantErrno {
			t.Errorf("%s: errno %d, want %d", tc.name, errno, tc.wantErrno)
		}
	}
}

func TestPutEvent(t *testing.T) {
	b := make([]byte, eventSize)
	for i := range b {
		b[i] = 0xAA // stale bytes must be cleared
	}
	putEvent(b, event{userdata: 0x0102030405060708, errno: errnoBadf, tag: eventtypeFdRead, hangup: true})
	want := []byte{
		8, 7, 6, 5, 4, 3, 2, 1, // userdata
		byte(errnoBadf), 0, // errno
		eventtypeFdRead, 0, 0, 0, 0, 0, // type, padding
		0, 0, 0, 0, 0, 0, 0, 0, // nbytes
		eventFdReadwriteHangup, 0, 0, 0, 0, 0, 0, 0, // flags, padding
	}
	if diff := cmp.Diff(want, b); diff != "" {
		t.Errorf("event bytes (-want +got):\n%s", diff)
	}
}
