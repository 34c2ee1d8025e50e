package hostsock

import "encoding/binary"

// Errno is a WASI preview 1 errno, the result of every function this
// package serves. Its own type keeps it from being swapped with an fd or
// a count.
type Errno uint32

// WASI preview 1 errno values (the spec's numbering, which the Go wasip1
// port's syscall package shares).
const (
	errnoSuccess Errno = 0
	errnoAgain   Errno = 6
	errnoBadf    Errno = 8
	errnoFault   Errno = 21
	errnoIntr    Errno = 27
	errnoInval   Errno = 28
	errnoIO      Errno = 29
	errnoNotconn Errno = 53
	errnoNotdir  Errno = 54
	errnoNotsup  Errno = 58
	errnoSpipe   Errno = 70
)

// WASI preview 1 constants used here.
const (
	filetypeSocketStream = 6

	fdflagAppend   = 0x1
	fdflagDsync    = 0x2
	fdflagNonblock = 0x4
	fdflagRsync    = 0x8
	fdflagSync     = 0x10

	riRecvPeek    = 0x1
	riRecvWaitall = 0x2

	sdRD = 0x1
	sdWR = 0x2

	eventtypeClock   = 0
	eventtypeFdRead  = 1
	eventtypeFdWrite = 2

	subclockAbstime = 0x1
	clockRealtime   = 0
	clockMonotonic  = 1

	eventFdReadwriteHangup = 0x1
)

// Rights reported by fd_fdstat_get for owned sockets.
const (
	rightFdRead           = 1 << 1
	rightFdstatSetFlags   = 1 << 3
	rightFdWrite          = 1 << 6
	rightFdFilestatGet    = 1 << 21
	rightPollFdReadwrite  = 1 << 27
	rightSockShutdown     = 1 << 28
	rightSockAccept       = 1 << 29
	connRights            = rightFdRead | rightFdstatSetFlags | rightFdWrite | rightFdFilestatGet | rightPollFdReadwrite | rightSockShutdown
	listenerRights        = rightFdstatSetFlags | rightFdFilestatGet | rightPollFdReadwrite | rightSockAccept
	listenerInheritRights = connRights
)

// Sizes of the WASI structs read from or written to guest memory.
const (
	iovecSize        = 8
	subscriptionSize = 48
	eventSize        = 32
	fdstatSize       = 24
	filestatSize     = 64
)

// Limits on what one call may ask for, so that a guest cannot make the
// host allocate without bound. Both match what Linux allows one
// readv/writev (IOV_MAX) and what the Go wasip1 runtime can submit.
const (
	maxIovecs        = 1024
	maxSubscriptions = 1 << 16
)

var le = binary.LittleEndian

// Memory is a guest's linear memory as the host functions see it: wazero's
// api.Memory has this method, and a binding for another engine wraps the
// memory's bytes. Read returns a view of memory, not a copy, so writes to
// it reach the guest; ok is false when the range is not inside memory. A
// byte slice can stand in for it in tests.
type Memory interface {
	Read(offset, byteCount uint32) (view []byte, ok bool)
}

// putUint32 writes v at offset, which the caller has checked is in memory.
func putUint32(mem Memory, offset, v uint32) {
	if b, ok := mem.Read(offset, 4); ok {
		le.PutUint32(b, v)
	}
}

// putUint16 writes v at offset, which the caller has checked is in memory.
func putUint16(mem Memory, offset uint32, v uint16) {
	if b, ok := mem.Read(offset, 2); ok {
		le.PutUint16(b, v)
	}
}

// iovecs resolves the guest's iovec array at iovs (count entries of
// {buf u32, len u32}) into slices of guest memory, appended to dst. Any
// entry outside memory gives EFAULT; more than maxIovecs entries EINVAL.
func iovecs(mem Memory, iovs, count uint32, dst [][]byte) ([][]byte, Errno) {
	if count > maxIovecs {
		return dst, errnoInval
	}
	raw, ok := mem.Read(iovs, count*iovecSize)
	if !ok {
		return dst, errnoFault
	}
	for i := uint32(0); i < count; i++ {
		buf := le.Uint32(raw[i*iovecSize:])
		n := le.Uint32(raw[i*iovecSize+4:])
		b, ok := mem.Read(buf, n)
		if !ok {
			return dst, errnoFault
		}
		dst = append(dst, b)
	}
	return dst, errnoSuccess
}

// subscription is one decoded WASI subscription.
type subscription struct {
	userdata uint64
	tag      uint8
	// fd is set for fd_read and fd_write subscriptions.
	fd uint32
	// clock fields, for clock subscriptions.
	clockID uint32
	timeout uint64
	flags   uint16
}

// subscriptions decodes n subscriptions at in, appended to dst. n of 0 or
// above maxSubscriptions, or an unknown tag, gives EINVAL; an array outside
// memory gives EFAULT.
func subscriptions(mem Memory, in, n uint32, dst []subscription) ([]subscription, Errno) {
	if n == 0 || n > maxSubscriptions {
		return dst, errnoInval
	}
	raw, ok := mem.Read(in, n*subscriptionSize)
	if !ok {
		return dst, errnoFault
	}
	for i := uint32(0); i < n; i++ {
		b := raw[i*subscriptionSize : (i+1)*subscriptionSize]
		s := subscription{userdata: le.Uint64(b), tag: b[8]}
		switch s.tag {
		case eventtypeClock:
			s.clockID = le.Uint32(b[16:])
			s.timeout = le.Uint64(b[24:])
			s.flags = le.Uint16(b[40:])
		case eventtypeFdRead, eventtypeFdWrite:
			s.fd = le.Uint32(b[16:])
		default:
			return dst, errnoInval
		}
		dst = append(dst, s)
	}
	return dst, errnoSuccess
}

// event is one WASI event to report.
type event struct {
	userdata uint64
	errno    Errno
	tag      uint8
	hangup   bool
}

// putEvent encodes e into the 32-byte slot b.
func putEvent(b []byte, e event) {
	clear(b[:eventSize])
	le.PutUint64(b, e.userdata)
	le.PutUint16(b[8:], uint16(e.errno))
	b[10] = e.tag
	if e.hangup {
		le.PutUint16(b[24:], eventFdReadwriteHangup)
	}
}

// putFdstat encodes a socket's fdstat into the 24-byte slot b.
func putFdstat(b []byte, flags uint16, base, inheriting uint64) {
	clear(b[:fdstatSize])
	b[0] = filetypeSocketStream
	le.PutUint16(b[2:], flags)
	le.PutUint64(b[8:], base)
	le.PutUint64(b[16:], inheriting)
}

// filestat is the part of a socket's filestat the host fills in.
type filestat struct {
	dev, ino, nlink, atim, mtim, ctim uint64
}

// putFilestat encodes a socket's filestat into the 64-byte slot b.
func putFilestat(b []byte, st filestat) {
	clear(b[:filestatSize])
	le.PutUint64(b[0:], st.dev)
	le.PutUint64(b[8:], st.ino)
	b[16] = filetypeSocketStream
	le.PutUint64(b[24:], st.nlink)
	le.PutUint64(b[40:], st.atim)
	le.PutUint64(b[48:], st.mtim)
	le.PutUint64(b[56:], st.ctim)
}
