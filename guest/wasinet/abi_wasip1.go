//go:build wasip1

package wasinet

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"syscall"
	"unsafe"
)

// The WasmEdge socket extensions this package calls itself, with the
// layouts of WasmEdge's thirdparty/wasi/api.hpp (what
// github.com/stealthrocket/net v0.2.1 and the project's host use). The
// connects go through github.com/stealthrocket/net/wasip1.

//go:wasmimport wasi_snapshot_preview1 sock_open
//go:noescape
func sockOpen(af int32, socktype int32, fd unsafe.Pointer) syscall.Errno

//go:wasmimport wasi_snapshot_preview1 sock_setsockopt
//go:noescape
func sockSetsockopt(fd int32, level uint32, name uint32, value unsafe.Pointer, valueLen uint32) syscall.Errno

//go:wasmimport wasi_snapshot_preview1 sock_getaddrinfo
//go:noescape
func sockGetaddrinfo(node unsafe.Pointer, nodeLen uint32, service unsafe.Pointer, serviceLen uint32,
	hints unsafe.Pointer, res unsafe.Pointer, maxResLen uint32, resLen unsafe.Pointer) syscall.Errno

// WasmEdge's address families, socket types and options.
const (
	afUnspec    = 0
	afInet      = 1
	afInet6     = 2
	sockStream  = 2
	ipprotoTCP  = 1
	solSocket   = 0
	soKeepalive = 7
)

// WasmEdge's getaddrinfo errors (numbered after WASI's errnos).
const (
	eaiAgain = 78
	eaiFail  = 80
)

// probeSockets checks that the runtime implements the socket extensions:
// it opens a socket and closes it. A runtime that defines sock_open only
// to answer ENOSYS or ENOTSUP, or with zero values (no fd written), has
// none.
func probeSockets() error {
	fd := int32(-1)
	errno := sockOpen(afInet, sockStream, unsafe.Pointer(&fd))
	switch {
	case noSocketsErrno(errno):
		return &probeError{call: "sock_open", errno: errno}
	case errno != 0:
		return nil // the extension is there; this dial will say what is wrong
	case fd < 0:
		return &probeError{call: "sock_open", zero: true}
	}
	syscall.Close(int(fd))
	return nil
}

// setKeepAlive switches SO_KEEPALIVE on for the socket fd.
func setKeepAlive(fd int) error {
	on := int32(1)
	if errno := sockSetsockopt(int32(fd), solSocket, soKeepalive, unsafe.Pointer(&on), 4); errno != 0 {
		return errno
	}
	return nil
}

// Sizes of getaddrinfo's structs: __wasi_addrinfo_t, __wasi_sockaddr_t
// (with its padding) and the data buffer of one address (a big-endian
// port, then 4 or 16 address bytes).
const (
	addrinfoSize = 28
	sockaddrSize = 16
	sockDataSize = 26
	slotSize     = addrinfoSize + sockaddrSize + sockDataSize
	// maxResults is how many addresses one lookup returns at most.
	maxResults = 16
)

// getaddrinfo resolves node (a host name) for a stream socket of family
// (afUnspec, afInet or afInet6) with the host's sock_getaddrinfo. The
// structs the host fills live in one heap buffer that Go's collector does
// not move; the addresses inside them are 32-bit guest pointers.
func getaddrinfo(node string, family uint8) ([]netip.Addr, syscall.Errno) {
	const (
		hintsOff  = 0
		resPtrOff = hintsOff + addrinfoSize
		resLenOff = resPtrOff + 4
		slotsOff  = resLenOff + 4
		nodeOff   = slotsOff + maxResults*slotSize
	)
	buf := make([]byte, nodeOff+len(node)+1) // a size known only at run time: on the heap
	le := binary.LittleEndian
	addr := func(off int) uint32 { return uint32(uintptr(unsafe.Pointer(&buf[off]))) }
	hints := buf[hintsOff:]
	hints[2], hints[3] = family, sockStream
	le.PutUint32(hints[4:], ipprotoTCP)
	for i := range maxResults {
		info := slotsOff + i*slotSize
		sa, data := info+addrinfoSize, info+addrinfoSize+sockaddrSize
		le.PutUint32(buf[info+8:], sockaddrSize) // ai_addrlen
		le.PutUint32(buf[info+12:], addr(sa))    // ai_addr
		if i+1 < maxResults {
			le.PutUint32(buf[info+24:], addr(info+slotSize)) // ai_next
		}
		le.PutUint32(buf[sa+4:], sockDataSize) // sa_data_len
		le.PutUint32(buf[sa+8:], addr(data))   // sa_data
	}
	le.PutUint32(buf[resPtrOff:], addr(slotsOff))
	copy(buf[nodeOff:], node) // NUL-terminated, as WasmEdge wants
	service := [1]byte{}      // "" with its NUL
	errno := sockGetaddrinfo(unsafe.Pointer(&buf[nodeOff]), uint32(len(node)+1), unsafe.Pointer(&service[0]), 1,
		unsafe.Pointer(&buf[hintsOff]), unsafe.Pointer(&buf[resPtrOff]), maxResults, unsafe.Pointer(&buf[resLenOff]))
	runtime.KeepAlive(buf)
	if errno != 0 {
		return nil, errno
	}
	n := min(int(le.Uint32(buf[resLenOff:])), maxResults)
	addrs := make([]netip.Addr, 0, n)
	for i := range n {
		sa := slotsOff + i*slotSize + addrinfoSize
		data := buf[sa+sockaddrSize : sa+sockaddrSize+sockDataSize]
		switch le.Uint32(buf[sa:]) {
		case afInet:
			addrs = append(addrs, netip.AddrFrom4([4]byte(data[2:6])))
		case afInet6:
			addrs = append(addrs, netip.AddrFrom16([16]byte(data[2:18])))
		}
	}
	return addrs, 0
}
