package hostsock

import "encoding/binary"

// WASI preview 1 errno values (the spec's numbering, which the Go wasip1
// port's syscall package shares).
const (
	errnoSuccess uint32 = 0
	errnoAgain   uint32 = 6
	errnoBadf    uint32 = 8
	errnoFault   uint32 = 21
	errnoIntr    uint32 = 27
	errnoInval   uint32 = 28
	errnoIO      uint32 = 29
	errnoNotconn uint32 = 53
	errnoNotdir  uint32 = 54
	errnoNotsup  uint32 = 58
	errnoSpipe   uint32 = 70
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

// memory is the part of api.Memory the decoders need; a byte slice can
// stand in for it in tests.
type memory interface {
	Read(offset, byteCount uint32) ([]byte, bool)
}

// iovecs resolves the guest's iovec array at iovs (count entries of
// {buf u32, len u32}) into slices of guest memory, appended to dst. Any
// entry outside memory gives EFAULT; more than maxIovecs entries EINVAL.
func iovecs(mem memory, iovs, count uint32, dst [][]byte) ([][]byte, uint32) {
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
func subscriptions(mem memory, in, n uint32, dst []subscription) ([]subscription, uint32) {
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
	errno    uint32
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
