package hostsock

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// addressMemory is a 256-byte memory with an address buffer at 0 that
// points to addr at 16.
func addressMemory(addr []byte) byteMemory {
	mem := make(byteMemory, 256)
	le.PutUint32(mem, 16)
	le.PutUint32(mem[4:], uint32(len(addr)))
	copy(mem[16:], addr)
	return mem
}

// taggedAddr is the 128-byte family-tagged form of an address.
func taggedAddr(family uint16, addr ...byte) []byte {
	b := make([]byte, sockaddrAnySize)
	le.PutUint16(b, family)
	copy(b[2:], addr)
	return b
}

func TestSockaddr(t *testing.T) {
	v6 := netip.MustParseAddr("2001:db8::1").As16()
	for _, tc := range []struct {
		name      string
		mem       byteMemory
		ptr, port uint32
		want      string
		wantErrno Errno
	}{
		{"IPv4", addressMemory([]byte{127, 0, 0, 1}), 0, 8080, "127.0.0.1:8080", errnoSuccess},
		{"IPv6", addressMemory(v6[:]), 0, 443, "[2001:db8::1]:443", errnoSuccess},
		{"tagged IPv4", addressMemory(taggedAddr(afInet, 10, 0, 0, 1)), 0, 53, "10.0.0.1:53", errnoSuccess},
		{"tagged IPv6", addressMemory(taggedAddr(afInet6, v6[:]...)), 0, 53, "[2001:db8::1]:53", errnoSuccess},
		{"tagged unix", addressMemory(taggedAddr(afUnix, '/', 's')), 0, 0, "", errnoAfnosupport},
		{"tagged unknown family", addressMemory(taggedAddr(9)), 0, 0, "", errnoInval},
		{"odd length", addressMemory([]byte{1, 2, 3, 4, 5}), 0, 80, "", errnoInval},
		{"port too big", addressMemory([]byte{127, 0, 0, 1}), 0, 65536, "", errnoInval},
		{"buffer struct outside memory", addressMemory(nil), 252, 80, "", errnoFault},
		{"address outside memory", func() byteMemory { m := addressMemory(nil); le.PutUint32(m, 250); le.PutUint32(m[4:], 16); return m }(), 0, 80, "", errnoFault},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, errno := sockaddr(tc.mem, tc.ptr, tc.port)
			if errno != tc.wantErrno {
				t.Fatalf("errno %d, want %d", errno, tc.wantErrno)
			}
			if errno == errnoSuccess && got.String() != tc.want {
				t.Errorf("address %v, want %s", got, tc.want)
			}
		})
	}
}

func TestPutSockaddr(t *testing.T) {
	b := make([]byte, 200)
	for i := range b {
		b[i] = 0xAA
	}
	putSockaddr(b, netip.MustParseAddr("192.0.2.7"))
	want := make([]byte, 200)
	copy(want, []byte{afInet, 0, 192, 0, 2, 7})
	for i := sockaddrAnySize; i < len(want); i++ {
		want[i] = 0xAA // past the 128 bytes: not the host's to clear
	}
	if diff := cmp.Diff(want, b); diff != "" {
		t.Errorf("IPv4 (-want +got):\n%s", diff)
	}
	putSockaddr(b[:minResultAddr], netip.MustParseAddr("::1"))
	if diff := cmp.Diff([]byte{afInet6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, b[:minResultAddr]); diff != "" {
		t.Errorf("IPv6 (-want +got):\n%s", diff)
	}
	putSockaddr(b[:minResultAddr], netip.Addr{})
	if diff := cmp.Diff(make([]byte, minResultAddr), b[:minResultAddr]); diff != "" {
		t.Errorf("no address (-want +got):\n%s", diff)
	}
}

func TestDecodeSockopt(t *testing.T) {
	for _, tc := range []struct {
		level, name, n uint32
		want           sockopt
		wantErrno      Errno
	}{
		{solSocket, soReuseaddr, 4, sockopt{name: soReuseaddr}, errnoSuccess},
		{solSocket, soBroadcast, 4, sockopt{name: soBroadcast}, errnoSuccess},
		{solSocket, soRcvbuf, 4, sockopt{name: soRcvbuf}, errnoSuccess},
		{solSocket, soError, 4, sockopt{name: soError, readOnly: true}, errnoSuccess},
		{solSocket, soType, 4, sockopt{name: soType, readOnly: true}, errnoSuccess},
		{solSocket, soAcceptconn, 4, sockopt{name: soAcceptconn, readOnly: true}, errnoSuccess},
		{solSocket, soReuseaddr, 8, sockopt{}, errnoInval},
		{solSocket, soError, 0, sockopt{}, errnoInval},
		{solSocket, soLinger, 8, sockopt{}, errnoNoprotoopt},
		{solSocket, soRcvtimeo, 16, sockopt{}, errnoNoprotoopt},
		{solSocket, soBindtodevice, 4, sockopt{}, errnoNoprotoopt},
		{solSocket, 99, 4, sockopt{}, errnoNoprotoopt},
		{1, soReuseaddr, 4, sockopt{}, errnoNoprotoopt},
	} {
		got, errno := decodeSockopt(tc.level, tc.name, tc.n)
		if errno != tc.wantErrno || (errno == errnoSuccess && got != tc.want) {
			t.Errorf("decodeSockopt(%d, %d, %d) = %+v, %d; want %+v, %d", tc.level, tc.name, tc.n, got, errno, tc.want, tc.wantErrno)
		}
	}
}

// addrinfoMemory lays out a chain of n addrinfo structs as
// stealthrocket/net allocates them: the result pointer at 0, then each
// addrinfo, its sockaddr and 26 bytes of data.
func addrinfoMemory(n int) byteMemory {
	const stride = addrinfoSize + sockaddrSize + 26
	mem := make(byteMemory, 8+n*stride)
	le.PutUint32(mem, 8)
	for i := range n {
		at := uint32(8 + i*stride)
		info := mem[at:]
		le.PutUint32(info[8:], sockaddrSize)
		le.PutUint32(info[12:], at+addrinfoSize)
		if i < n-1 {
			le.PutUint32(info[24:], at+stride)
		}
		addr := mem[at+addrinfoSize:]
		le.PutUint32(addr[4:], 26)
		le.PutUint32(addr[8:], at+addrinfoSize+sockaddrSize)
	}
	return mem
}

func TestAddrinfoChain(t *testing.T) {
	cyclic := addrinfoMemory(2)
	le.PutUint32(cyclic[8+addrinfoSize+sockaddrSize+26+24:], 8) // the second points back to the first
	selfCycle := addrinfoMemory(1)
	le.PutUint32(selfCycle[8+24:], 8) // the only one points to itself
	short := addrinfoMemory(1)
	le.PutUint32(short[8+addrinfoSize+4:], 17)
	rustLen := addrinfoMemory(1)
	le.PutUint32(rustLen[8+addrinfoSize+4:], 14)
	outside := addrinfoMemory(1)
	le.PutUint32(outside[8+12:], 0xFFFFFFF8)
	for _, tc := range []struct {
		name      string
		mem       byteMemory
		resPtr    uint32
		limit     uint32
		wantN     int
		wantErrno Errno
	}{
		{"three", addrinfoMemory(3), 0, 8, 3, errnoSuccess},
		{"cut at the limit", addrinfoMemory(3), 0, 2, 2, errnoSuccess},
		{"cycle ends where it comes back", cyclic, 0, 5, 2, errnoSuccess},
		{"self-cycle with no limit", selfCycle, 0, 1<<32 - 1, 1, errnoSuccess},
		{"data_len 14 means 26", rustLen, 0, 1, 1, errnoSuccess},
		{"data too small", short, 0, 1, 0, errnoInval},
		{"sockaddr outside memory", outside, 0, 1, 0, errnoFault},
		{"result pointer outside memory", addrinfoMemory(1), 0xFFFFFFFE, 1, 0, errnoFault},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slots, errno := addrinfoChain(tc.mem, tc.resPtr, tc.limit, nil)
			if errno != tc.wantErrno {
				t.Fatalf("errno %d, want %d", errno, tc.wantErrno)
			}
			if errno == errnoSuccess && len(slots) != tc.wantN {
				t.Errorf("%d slots, want %d", len(slots), tc.wantN)
			}
		})
	}
}

func TestAddrinfoPut(t *testing.T) {
	mem := addrinfoMemory(2)
	slots, errno := addrinfoChain(mem, 0, 2, nil)
	if errno != errnoSuccess {
		t.Fatal(errno)
	}
	slots[0].put(netip.MustParseAddrPort("192.0.2.1:443"), sockStream, ipprotoTCP)
	slots[1].put(netip.MustParseAddrPort("[2001:db8::2]:53"), sockDgram, ipprotoUDP)
	next := le.Uint32(slots[0].info[24:])
	if next == 0 {
		t.Error("put cleared ai_next")
	}
	for i, want := range []struct {
		family, socktype uint8
		protocol         uint32
		data             []byte
	}{
		{afInet, sockStream, ipprotoTCP, []byte{1, 187, 192, 0, 2, 1}},
		{afInet6, sockDgram, ipprotoUDP, append([]byte{0, 53}, netip.MustParseAddr("2001:db8::2").AsSlice()...)},
	} {
		s := slots[i]
		if s.info[2] != want.family || s.info[3] != want.socktype || le.Uint32(s.info[4:]) != want.protocol || le.Uint32(s.info[8:]) != sockaddrSize {
			t.Errorf("slot %d: addrinfo % x", i, s.info)
		}
		if le.Uint32(s.addr) != uint32(want.family) {
			t.Errorf("slot %d: sa_family %d, want %d", i, le.Uint32(s.addr), want.family)
		}
		if diff := cmp.Diff(want.data, s.data[:len(want.data)]); diff != "" {
			t.Errorf("slot %d: data (-want +got):\n%s", i, diff)
		}
	}
}

func TestDecodeHints(t *testing.T) {
	hints := func(flags uint16, family, socktype uint8) byteMemory {
		mem := make(byteMemory, addrinfoSize)
		le.PutUint16(mem, flags)
		mem[2], mem[3] = family, socktype
		le.PutUint32(mem[4:], ipprotoTCP)
		return mem
	}
	for _, tc := range []struct {
		name      string
		mem       byteMemory
		want      addrinfoHints
		wantErrno Errno
	}{
		{"numeric", hints(aiNumerichost|aiNumericserv, afInet, sockStream), addrinfoHints{aiNumerichost | aiNumericserv, afInet, sockStream, ipprotoTCP}, errnoSuccess},
		{"unknown flag", hints(1<<9, afInet, sockStream), addrinfoHints{}, errnoAIBadflag},
		{"unknown family", hints(0, afUnix, sockStream), addrinfoHints{}, errnoAIFamily},
		{"unknown socket type", hints(0, afInet, 3), addrinfoHints{}, errnoAISocktyp},
		{"outside memory", hints(0, 0, 0)[:addrinfoSize-1], addrinfoHints{}, errnoFault},
	} {
		got, errno := decodeHints(tc.mem, 0)
		if errno != tc.wantErrno || got != tc.want {
			t.Errorf("%s: %+v, %d; want %+v, %d", tc.name, got, errno, tc.want, tc.wantErrno)
		}
	}
}

func TestGuestString(t *testing.T) {
	mem := byteMemory("example.com\x00rest")
	for _, tc := range []struct {
		ptr, n    uint32
		want      string
		wantErrno Errno
	}{
		{0, 12, "example.com", errnoSuccess},
		{0, 11, "example.com", errnoSuccess},
		{0, 0, "", errnoSuccess},
		{12, 4, "rest", errnoSuccess},
		{12, 5, "", errnoFault},
		{0, maxNameLen + 1, "", errnoInval},
	} {
		got, errno := guestString(mem, tc.ptr, tc.n)
		if got != tc.want || errno != tc.wantErrno {
			t.Errorf("guestString(%d, %d) = %q, %d; want %q, %d", tc.ptr, tc.n, got, errno, tc.want, tc.wantErrno)
		}
	}
	if _, errno := guestString(byteMemory(strings.Repeat("a", maxNameLen)), 0, maxNameLen); errno != errnoSuccess {
		t.Errorf("a name of maxNameLen bytes: errno %d", errno)
	}
}
