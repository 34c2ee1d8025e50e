package hostsock

import (
	"net/netip"
	"slices"
)

// The WasmEdge socket extensions (sock_open, sock_bind, ...) as
// github.com/stealthrocket/net v0.2.1 imports them: WasmEdge's "v2"
// functions, exported from wasi_snapshot_preview1 under their plain names.
// Layouts are those of WasmEdge's thirdparty/wasi/api.hpp.

// More WASI errno values, used by the socket extensions.
const (
	errnoAcces        Errno = 2
	errnoAfnosupport  Errno = 5
	errnoInprogress   Errno = 26
	errnoIsconn       Errno = 30
	errnoNoprotoopt   Errno = 50
	errnoProtonosuppo Errno = 66

	// WasmEdge's getaddrinfo errors, numbered after WASI's own.
	errnoAIAgain   Errno = 78
	errnoAIBadflag Errno = 79
	errnoAIFail    Errno = 80
	errnoAIFamily  Errno = 81
	errnoAIMemory  Errno = 82
	errnoAINoname  Errno = 84
	errnoAIService Errno = 85
	errnoAISocktyp Errno = 86
)

// WasmEdge address families and socket types.
const (
	afUnspec = 0
	afInet   = 1
	afInet6  = 2
	afUnix   = 3

	sockAny    = 0
	sockDgram  = 1
	sockStream = 2
)

// WASI filetype of a datagram socket (stream sockets are
// filetypeSocketStream).
const filetypeSocketDgram = 5

// WasmEdge socket options: level SOL_SOCKET (0) and its SO_* names.
const (
	solSocket = 0

	soReuseaddr    = 0
	soType         = 1
	soError        = 2
	soDontroute    = 3
	soBroadcast    = 4
	soSndbuf       = 5
	soRcvbuf       = 6
	soKeepalive    = 7
	soOobinline    = 8
	soLinger       = 9
	soRcvlowat     = 10
	soRcvtimeo     = 11
	soSndtimeo     = 12
	soAcceptconn   = 13
	soBindtodevice = 14
)

// getaddrinfo hint flags.
const (
	aiPassive     = 1 << 0
	aiCanonname   = 1 << 1
	aiNumerichost = 1 << 2
	aiNumericserv = 1 << 3
	aiV4mapped    = 1 << 4
	aiAll         = 1 << 5
	aiAddrconfig  = 1 << 6
	aiKnownFlags  = aiPassive | aiCanonname | aiNumerichost | aiNumericserv | aiV4mapped | aiAll | aiAddrconfig
)

// Sizes of the extension's structs.
const (
	// addressBufSize is __wasi_address_t: {buf u32, buf_len u32}.
	addressBufSize = 8
	// sockaddrAnySize is the family-tagged address the guest passes for
	// results and sock_send_to: u16 family then the address bytes.
	sockaddrAnySize = 128
	// addrinfoSize is __wasi_addrinfo_t: flags u16, family u8, socktype
	// u8, protocol u32, addrlen u32, addr u32, canonname u32,
	// canonnamelen u32, next u32.
	addrinfoSize = 28
	// sockaddrSize is __wasi_sockaddr_t: family u32, data_len u32, data
	// u32 (and 4 bytes of padding in the guest's struct).
	sockaddrSize = 16
	// maxNameLen bounds the node and service names of getaddrinfo.
	maxNameLen = 1024
	// maxAddrinfoResults caps the guest's max_res_len: the result chain
	// the host decodes and fills holds at most this many addrinfo structs
	// (a resolver answers far fewer; the lookup's own list is cut too).
	maxAddrinfoResults = 64
)

// sockaddr decodes the address buffer at ptr (a __wasi_address_t) and
// port into an address. A buffer of 4 or 16 bytes is a bare IPv4 or IPv6
// address; one of 128 bytes starts with a u16 family (sock_send_to's
// form). Anything outside memory gives EFAULT; other lengths, ports above
// 65535 and unknown families give EINVAL; AF_UNIX gives EAFNOSUPPORT.
func sockaddr(mem Memory, ptr, port uint32) (netip.AddrPort, Errno) {
	b, errno := addressBuf(mem, ptr)
	if errno != errnoSuccess {
		return netip.AddrPort{}, errno
	}
	if port > 0xFFFF {
		return netip.AddrPort{}, errnoInval
	}
	if len(b) == sockaddrAnySize {
		switch le.Uint16(b) {
		case afInet:
			b = b[2:6]
		case afInet6:
			b = b[2:18]
		case afUnix:
			return netip.AddrPort{}, errnoAfnosupport
		default:
			return netip.AddrPort{}, errnoInval
		}
	}
	addr, ok := netip.AddrFromSlice(b)
	if !ok {
		return netip.AddrPort{}, errnoInval
	}
	return netip.AddrPortFrom(addr, uint16(port)), errnoSuccess
}

// addressBuf resolves a __wasi_address_t at ptr into the guest memory it
// points to.
func addressBuf(mem Memory, ptr uint32) ([]byte, Errno) {
	raw, ok := mem.Read(ptr, addressBufSize)
	if !ok {
		return nil, errnoFault
	}
	b, ok := mem.Read(le.Uint32(raw), le.Uint32(raw[4:]))
	if !ok {
		return nil, errnoFault
	}
	return b, errnoSuccess
}

// putSockaddr encodes addr, family-tagged, into the guest's result buffer
// b (at least 18 bytes: checked by the caller), clearing the rest of its
// first sockaddrAnySize bytes. An invalid addr (an unnamed socket) is
// written as AF_UNSPEC.
func putSockaddr(b []byte, addr netip.Addr) {
	clear(b[:min(len(b), sockaddrAnySize)])
	switch {
	case addr.Is4():
		le.PutUint16(b, afInet)
		a := addr.As4()
		copy(b[2:], a[:])
	case addr.Is6():
		le.PutUint16(b, afInet6)
		a := addr.As16()
		copy(b[2:], a[:])
	}
}

// minResultAddr is the smallest address buffer a result is written into:
// the family and an IPv6 address.
const minResultAddr = 2 + 16

// resultAddr resolves the guest's result address buffer at ptr; it must
// hold at least minResultAddr bytes (EINVAL otherwise).
func resultAddr(mem Memory, ptr uint32) ([]byte, Errno) {
	b, errno := addressBuf(mem, ptr)
	if errno != errnoSuccess {
		return nil, errno
	}
	if len(b) < minResultAddr {
		return nil, errnoInval
	}
	return b, errnoSuccess
}

// sockopt is one decoded SOL_SOCKET option.
type sockopt struct {
	name uint32
	// readOnly options can be read but not set.
	readOnly bool
}

// decodeSockopt checks a socket option's level, name and value length
// (always a 4-byte int here). Options that take structs (SO_LINGER,
// SO_RCVTIMEO, SO_SNDTIMEO) and SO_BINDTODEVICE, which would let the guest
// pick the host's network interface, are refused with ENOPROTOOPT, as are
// unknown levels and names; a value that is not 4 bytes gives EINVAL.
func decodeSockopt(level, name, valueLen uint32) (sockopt, Errno) {
	if level != solSocket {
		return sockopt{}, errnoNoprotoopt
	}
	switch name {
	case soReuseaddr, soDontroute, soBroadcast, soSndbuf, soRcvbuf, soKeepalive, soOobinline, soRcvlowat:
	case soType, soError, soAcceptconn:
		return sockopt{name: name, readOnly: true}, checkOptLen(valueLen)
	default: // soLinger, soRcvtimeo, soSndtimeo, soBindtodevice, unknown
		return sockopt{}, errnoNoprotoopt
	}
	return sockopt{name: name}, checkOptLen(valueLen)
}

func checkOptLen(n uint32) Errno {
	if n != 4 {
		return errnoInval
	}
	return errnoSuccess
}

// addrinfoSlot is one guest addrinfo of the result chain, with the
// sockaddr and data buffer it points to, resolved before anything is
// written.
type addrinfoSlot struct {
	info, addr, data []byte
}

// addrinfoChain resolves up to limit addrinfo structs of the guest's result
// chain, starting at the pointer stored at resPtr and following ai_next
// until it is 0. Every struct, its sockaddr and the sockaddr's data (at
// least 18 bytes: port and an IPv6 address) must lie inside memory
// (EFAULT); a data buffer that is too small gives EINVAL. A data_len of 14
// is taken as 26, as stealthrocket/wasi-go's host does: WasmEdge's Rust
// socket library declares 14 bytes but allocates 26. The chain is cut at
// limit (callers cap it at maxAddrinfoResults) and where it comes back to
// an addrinfo it has already passed, so a cycle can neither loop nor have
// two results written into one struct.
func addrinfoChain(mem Memory, resPtr, limit uint32, dst []addrinfoSlot) ([]addrinfoSlot, Errno) {
	raw, ok := mem.Read(resPtr, 4)
	if !ok {
		return dst, errnoFault
	}
	ptr := le.Uint32(raw)
	first := len(dst)
	var seen []uint32 // the chain's pointers, to find a cycle
	for uint32(len(dst)-first) < limit && !slices.Contains(seen, ptr) {
		seen = append(seen, ptr)
		info, ok := mem.Read(ptr, addrinfoSize)
		if !ok {
			return dst, errnoFault
		}
		addr, ok := mem.Read(le.Uint32(info[12:]), sockaddrSize)
		if !ok {
			return dst, errnoFault
		}
		dataLen := le.Uint32(addr[4:])
		if dataLen == 14 {
			dataLen = 26
		}
		data, ok := mem.Read(le.Uint32(addr[8:]), dataLen)
		if !ok {
			return dst, errnoFault
		}
		if len(data) < 2+16 {
			return dst, errnoInval
		}
		dst = append(dst, addrinfoSlot{info: info, addr: addr, data: data})
		ptr = le.Uint32(info[24:])
		if ptr == 0 {
			break
		}
	}
	return dst, errnoSuccess
}

// put writes one result into the slot: the family, socket type and
// protocol into the addrinfo (ai_addrlen set to the sockaddr's size, no
// canonical name, ai_next kept), the family into the sockaddr, and the
// port (big-endian) then the address into its data.
func (s addrinfoSlot) put(ap netip.AddrPort, socktype uint8, protocol uint32) {
	family := uint8(afInet)
	if ap.Addr().Is6() {
		family = afInet6
	}
	le.PutUint16(s.info, 0)
	s.info[2] = family
	s.info[3] = socktype
	le.PutUint32(s.info[4:], protocol)
	le.PutUint32(s.info[8:], sockaddrSize)
	le.PutUint32(s.info[20:], 0)
	le.PutUint32(s.addr, uint32(family))
	clear(s.data)
	s.data[0], s.data[1] = byte(ap.Port()>>8), byte(ap.Port())
	if family == afInet {
		a := ap.Addr().As4()
		copy(s.data[2:], a[:])
	} else {
		a := ap.Addr().As16()
		copy(s.data[2:], a[:])
	}
}

// addrinfoHints is the part of the guest's hints getaddrinfo uses.
type addrinfoHints struct {
	flags    uint16
	family   uint8
	socktype uint8
	protocol uint32
}

// decodeHints reads the hints addrinfo at ptr. Unknown flags give
// EAI_BADFLAGS, an unknown family EAI_FAMILY, an unknown socket type
// EAI_SOCKTYPE.
func decodeHints(mem Memory, ptr uint32) (addrinfoHints, Errno) {
	b, ok := mem.Read(ptr, addrinfoSize)
	if !ok {
		return addrinfoHints{}, errnoFault
	}
	h := addrinfoHints{flags: le.Uint16(b), family: b[2], socktype: b[3], protocol: le.Uint32(b[4:])}
	switch {
	case h.flags&^aiKnownFlags != 0:
		return addrinfoHints{}, errnoAIBadflag
	case h.family > afInet6:
		return addrinfoHints{}, errnoAIFamily
	case h.socktype > sockStream:
		return addrinfoHints{}, errnoAISocktyp
	}
	return h, errnoSuccess
}

// guestString reads a name of n bytes at ptr, without the one trailing
// NUL that WasmEdge's guests append. Names longer than maxNameLen give
// EINVAL.
func guestString(mem Memory, ptr, n uint32) (string, Errno) {
	if n > maxNameLen {
		return "", errnoInval
	}
	b, ok := mem.Read(ptr, n)
	if !ok {
		return "", errnoFault
	}
	if len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return string(b), errnoSuccess
}
