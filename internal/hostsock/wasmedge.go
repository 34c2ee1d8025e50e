package hostsock

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The WasmEdge socket extensions let a guest open sockets itself: listen on
// an address of its choice, and connect out. Its sockets live in the same
// Table as the host's listener and connections, with fds from the
// connection range, so that fd_read, fd_write, sock_recv, sock_send,
// sock_accept, sock_shutdown, fd_close and poll_oneoff serve them as they
// do the others. Where they may go is the Table's Policy: by default,
// nowhere.

// opened is what a socket the guest opened itself adds to its entry.
type opened struct {
	// family is afInet or afInet6.
	family int
	dgram  bool
	// bound is set once sock_bind succeeded, under the listen policy.
	bound bool
}

// kindSocket is a socket the guest opened that neither listens nor is
// connected yet.
const kindSocket = kindConn + 1

// lookupTimeout bounds one host name lookup of sock_getaddrinfo.
const lookupTimeout = 10 * time.Second

// extension is one socket-extension function. All its parameters and its
// result are i32.
type extension struct {
	name   string
	params []string
	fn     func(t *Table, mem Memory, stack []uint64) Errno
}

func extensions() []extension {
	return []extension{
		{"sock_open", []string{"af", "socktype", "result.fd"}, sockOpen},
		{"sock_bind", []string{"fd", "addr", "port"}, withEntry(sockBind)},
		{"sock_listen", []string{"fd", "backlog"}, withEntry(sockListen)},
		{"sock_connect", []string{"fd", "addr", "port"}, withEntry(sockConnect)},
		{"sock_getaddrinfo", []string{"node", "node_len", "service", "service_len", "hints", "res", "max_res_len", "result.res_len"}, sockGetaddrinfo},
		{"sock_getlocaladdr", []string{"fd", "addr", "result.port"}, withEntry(sockAddrOf(false))},
		{"sock_getpeeraddr", []string{"fd", "addr", "result.port"}, withEntry(sockAddrOf(true))},
		{"sock_setsockopt", []string{"fd", "level", "name", "value", "value_len"}, withEntry(sockSetsockopt)},
		{"sock_getsockopt", []string{"fd", "level", "name", "value", "value_len"}, withEntry(sockGetsockopt)},
		{"sock_recv_from", []string{"fd", "ri_data", "ri_data_len", "addr", "ri_flags", "result.port", "result.nread", "result.ro_flags"}, withEntry(sockRecvFrom)},
		{"sock_send_to", []string{"fd", "si_data", "si_data_len", "addr", "port", "si_flags", "result.nwritten"}, withEntry(sockSendTo)},
	}
}

// entryFunc implements an extension function whose first parameter is an
// fd of the Table.
type entryFunc func(t *Table, mem Memory, e *entry, stack []uint64) Errno

// withEntry runs fn on the entry of the fd in stack[0]; an fd the Table
// does not own is no socket (EBADF).
func withEntry(fn entryFunc) func(t *Table, mem Memory, stack []uint64) Errno {
	return func(t *Table, mem Memory, stack []uint64) Errno {
		e, ok := t.lookup(uint32(stack[0]))
		if !ok {
			return errnoBadf
		}
		return fn(t, mem, e, stack)
	}
}

func sockOpen(t *Table, mem Memory, stack []uint64) Errno {
	family, socktype, result := uint32(stack[0]), uint32(stack[1]), uint32(stack[2])
	if _, ok := mem.Read(result, 4); !ok {
		return errnoFault
	}
	if family != afInet && family != afInet6 {
		return errnoAfnosupport // AF_UNIX and unknown families
	}
	if socktype != sockStream && socktype != sockDgram {
		return errnoInval
	}
	if t.atSocketLimit() {
		return errnoMfile
	}
	host, errno := openSocket(int(family), int(socktype))
	if errno != errnoSuccess {
		return errno
	}
	fd, errno := t.add(&entry{kind: kindSocket, host: host, opened: &opened{family: int(family), dgram: socktype == sockDgram}})
	if errno != errnoSuccess {
		closeFD(host)
		return errno
	}
	t.sockets++
	putUint32(mem, result, fd)
	return errnoSuccess
}

func sockBind(t *Table, mem Memory, e *entry, stack []uint64) Errno {
	if e.opened == nil || e.kind != kindSocket || e.opened.bound {
		return errnoInval // as bind(2) on a socket that has an address
	}
	ap, errno := sockaddr(mem, uint32(stack[1]), uint32(stack[2]))
	if errno != errnoSuccess {
		return errno
	}
	if !t.rules().allowListen("bind", ap) {
		return errnoAcces
	}
	if errno := bindSocket(e.host, e.opened.family, ap); errno != errnoSuccess {
		return errno
	}
	e.opened.bound = true
	return errnoSuccess
}

func sockListen(t *Table, _ Memory, e *entry, stack []uint64) Errno {
	if e.opened == nil || e.opened.dgram || e.kind != kindSocket {
		return errnoInval
	}
	if !e.opened.bound {
		// listen(2) would bind the wildcard address on a port of the
		// kernel's choice.
		if !t.rules().allowListen("listen", netip.AddrPortFrom(wildcard(e.opened.family), 0)) {
			return errnoAcces
		}
	}
	if errno := listenSocket(e.host, int32(stack[1])); errno != errnoSuccess {
		return errno
	}
	e.opened.bound = true
	e.kind = kindListener
	return errnoSuccess
}

// wildcard is the unspecified address of a family.
func wildcard(family int) netip.Addr {
	if family == afInet6 {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

func sockConnect(t *Table, mem Memory, e *entry, stack []uint64) Errno {
	switch {
	case e.kind == kindListener:
		return errnoInval
	case e.opened == nil || (e.kind == kindConn && !e.opened.dgram):
		return errnoIsconn
	}
	ap, errno := sockaddr(mem, uint32(stack[1]), uint32(stack[2]))
	if errno != errnoSuccess {
		return errno
	}
	if !t.rules().allowDial("connect", ap) {
		return errnoAcces
	}
	errno = connectSocket(e.host, e.opened.family, e.opened.dgram, ap)
	if errno != errnoSuccess && errno != errnoInprogress {
		return errno
	}
	e.kind = kindConn
	if errno == errnoSuccess || e.nonblock {
		return errno
	}
	// A blocking guest fd: wait until the connection is made or failed.
	if errno := t.await(e, pollOut); errno != errnoSuccess {
		return errno
	}
	v, errno := getOption(e.host, soError)
	if errno != errnoSuccess {
		return errno
	}
	return Errno(v)
}

// sockAddrOf implements sock_getlocaladdr (peer false) and
// sock_getpeeraddr: the address, family-tagged, into the guest's address
// buffer and the port at result.port.
func sockAddrOf(peer bool) entryFunc {
	return func(_ *Table, mem Memory, e *entry, stack []uint64) Errno {
		buf, errno := resultAddr(mem, uint32(stack[1]))
		if errno != errnoSuccess {
			return errno
		}
		portPtr := uint32(stack[2])
		if _, ok := mem.Read(portPtr, 4); !ok {
			return errnoFault
		}
		ap, errno := e.sockAddr(peer)
		if errno != errnoSuccess {
			return errno
		}
		putSockaddr(buf, ap.Addr())
		putUint32(mem, portPtr, uint32(ap.Port()))
		return errnoSuccess
	}
}

// sockSetsockopt sets an option of a socket the guest opened or accepted.
// The listener it was lent is shared with the other instances and owned
// by the host: setting its options gives EACCES (reading them works), so
// that no guest changes it for the others.
func sockSetsockopt(_ *Table, mem Memory, e *entry, stack []uint64) Errno {
	opt, errno := decodeSockopt(uint32(stack[1]), uint32(stack[2]), uint32(stack[4]))
	if errno != errnoSuccess {
		return errno
	}
	if opt.readOnly {
		return errnoNoprotoopt
	}
	if e.lent {
		return errnoAcces
	}
	value, ok := mem.Read(uint32(stack[3]), 4)
	if !ok {
		return errnoFault
	}
	return setOption(e.host, opt.name, int32(le.Uint32(value)))
}

func sockGetsockopt(_ *Table, mem Memory, e *entry, stack []uint64) Errno {
	opt, errno := decodeSockopt(uint32(stack[1]), uint32(stack[2]), uint32(stack[4]))
	if errno != errnoSuccess {
		return errno
	}
	value, ok := mem.Read(uint32(stack[3]), 4)
	if !ok {
		return errnoFault
	}
	var v int32
	switch opt.name {
	case soType:
		v = sockStream
		if e.opened != nil && e.opened.dgram {
			v = sockDgram
		}
	case soAcceptconn:
		if e.kind == kindListener {
			v = 1
		}
	default:
		v, errno = getOption(e.host, opt.name)
		if errno != errnoSuccess {
			return errno
		}
	}
	le.PutUint32(value, uint32(v))
	return errnoSuccess
}

func sockRecvFrom(t *Table, mem Memory, e *entry, stack []uint64) Errno {
	riFlags := uint32(stack[4])
	if riFlags&^(riRecvPeek|riRecvWaitall) != 0 {
		return errnoNotsup
	}
	dgram := e.opened != nil && e.opened.dgram
	if e.kind == kindListener || (!dgram && e.kind != kindConn) {
		return errnoNotconn
	}
	addrBuf, errno := resultAddr(mem, uint32(stack[3]))
	if errno != errnoSuccess {
		return errno
	}
	portPtr, nreadPtr, roFlagsPtr := uint32(stack[5]), uint32(stack[6]), uint32(stack[7])
	for _, p := range [][2]uint32{{portPtr, 4}, {nreadPtr, 4}, {roFlagsPtr, 2}} {
		if _, ok := mem.Read(p[0], p[1]); !ok {
			return errnoFault
		}
	}
	bufs, errno := iovecs(mem, uint32(stack[1]), uint32(stack[2]), nil)
	if errno != errnoSuccess {
		return errno
	}
	flags := recvFlags(riFlags)
	// A datagram socket that was neither bound under the listen policy nor
	// connected gets datagrams only from where the dial policy lets it
	// send: the others are dropped unseen.
	filter := dgram && e.kind != kindConn && !e.opened.bound
	var n int
	var from netip.AddrPort
	if len(e.pending) > 0 { // a stream's: its sender is the zero address, as recvmsg(2) says
		n = e.takePending(bufs, flags&msgPeek != 0)
	} else {
		errno = t.io(e, pollIn, func() Errno {
			for {
				var errno Errno
				n, from, errno = recvFrom(e.host, bufs, flags)
				if errno != errnoSuccess || !filter || t.rules().dial.allows(from) {
					return errno
				}
				if flags&msgPeek != 0 {
					recvFrom(e.host, nil, 0) // drop the datagram that was peeked at
				}
			}
		})
	}
	if errno != errnoSuccess {
		return errno
	}
	t.counters.read.Add(uint64(n))
	putSockaddr(addrBuf, from.Addr())
	putUint32(mem, portPtr, uint32(from.Port()))
	putUint32(mem, nreadPtr, uint32(n))
	putUint16(mem, roFlagsPtr, 0)
	return errnoSuccess
}

func sockSendTo(t *Table, mem Memory, e *entry, stack []uint64) Errno {
	if uint32(stack[5]) != 0 { // si_flags: none are defined
		return errnoNotsup
	}
	if e.opened == nil || !e.opened.dgram {
		if e.kind == kindConn {
			return errnoIsconn
		}
		return errnoNotconn
	}
	ap, errno := sockaddr(mem, uint32(stack[3]), uint32(stack[4]))
	if errno != errnoSuccess {
		return errno
	}
	result := uint32(stack[6])
	bufs, errno := t.rw(mem, uint32(stack[1]), uint32(stack[2]), result)
	defer t.done(bufs)
	if errno != errnoSuccess {
		return errno
	}
	if !t.rules().allowDial("send_to", ap) {
		return errnoAcces
	}
	var n int
	errno = t.io(e, pollOut, func() Errno {
		var errno Errno
		n, errno = sendTo(e.host, e.opened.family, bufs, ap)
		return errno
	})
	if errno != errnoSuccess {
		return errno
	}
	t.counters.written.Add(uint64(n))
	putUint32(mem, result, uint32(n))
	return errnoSuccess
}

// sockGetaddrinfo resolves a node and service into the guest's chain of
// result structs. IP literals and an empty node need no lookup; a host
// name is looked up only when the policy names it (see rules.allowName),
// and a name it does not is answered as one that does not exist: no
// results. Looked-up addresses become dialable on the ports of the
// patterns that named them.
func sockGetaddrinfo(t *Table, mem Memory, stack []uint64) Errno {
	resLenPtr := uint32(stack[7])
	if _, ok := mem.Read(resLenPtr, 4); !ok {
		return errnoFault
	}
	node, errno := guestString(mem, uint32(stack[0]), uint32(stack[1]))
	if errno != errnoSuccess {
		return errno
	}
	service, errno := guestString(mem, uint32(stack[2]), uint32(stack[3]))
	if errno != errnoSuccess {
		return errno
	}
	hints, errno := decodeHints(mem, uint32(stack[4]))
	if errno != errnoSuccess {
		return errno
	}
	maxRes := uint32(stack[6])
	switch {
	case node == "" && service == "":
		return errnoAINoname
	case maxRes == 0:
		return errnoAIMemory
	}
	maxRes = min(maxRes, maxAddrinfoResults)
	slots, errno := addrinfoChain(mem, uint32(stack[5]), maxRes, nil)
	if errno != errnoSuccess {
		return errno
	}
	port, errno := lookupService(service, hints)
	if errno != errnoSuccess {
		return errno
	}
	addrs, errno := t.lookupNode(t.ctx, node, hints)
	if errno != errnoSuccess {
		return errno
	}
	socktype, protocol := hints.socktype, hints.protocol
	if socktype == sockAny {
		socktype = sockStream
	}
	if protocol == 0 {
		protocol = ipprotoTCP
		if socktype == sockDgram {
			protocol = ipprotoUDP
		}
	}
	n := min(len(addrs), len(slots))
	for i := range n {
		slots[i].put(netip.AddrPortFrom(addrs[i], port), socktype, protocol)
	}
	putUint32(mem, resLenPtr, uint32(n))
	return errnoSuccess
}

// WasmEdge's protocol numbers in addrinfo.
const (
	ipprotoTCP = 1
	ipprotoUDP = 2
)

// lookupService turns a getaddrinfo service into a port: empty is 0, a
// number is itself, a name is looked up in the host's services database
// (no network) unless AI_NUMERICSERV forbids it.
func lookupService(service string, hints addrinfoHints) (uint16, Errno) {
	if service == "" {
		return 0, errnoSuccess
	}
	if n, err := strconv.ParseUint(service, 10, 16); err == nil {
		return uint16(n), errnoSuccess
	}
	if hints.flags&aiNumericserv != 0 || strings.ContainsRune(service, 0) {
		return 0, errnoAINoname
	}
	network := "tcp"
	if hints.socktype == sockDgram {
		network = "udp"
	}
	port, err := net.LookupPort(network, service)
	if err != nil {
		return 0, errnoAIService
	}
	return uint16(port), errnoSuccess
}

// lookupNode turns a getaddrinfo node into addresses of the hinted family:
// empty is the wildcard (AI_PASSIVE) or loopback addresses, an IP literal
// is itself, and a host name is looked up on the host if the policy names
// it. A name that is not allowed, malformed or not found gives no
// addresses, so that the guest cannot tell them apart.
func (t *Table) lookupNode(ctx context.Context, node string, hints addrinfoHints) ([]netip.Addr, Errno) {
	var addrs []netip.Addr
	switch a, err := netip.ParseAddr(node); {
	case node == "" && hints.flags&aiPassive != 0:
		addrs = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	case node == "":
		addrs = []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}
	case err == nil && a.Zone() == "":
		addrs = []netip.Addr{a}
	case hints.flags&aiNumerichost != 0:
		return nil, errnoAINoname
	case !validName(canonicalName(node)) || !t.rules().allowName(node):
		return nil, errnoSuccess
	default:
		var errno Errno
		if addrs, errno = resolve(ctx, node, hints.family); errno != errnoSuccess {
			return nil, errno
		}
		t.rules().resolved(node, addrs)
	}
	kept := addrs[:0]
	for _, a := range addrs {
		a = a.Unmap()
		if hints.family == afUnspec || (hints.family == afInet) == a.Is4() {
			kept = append(kept, a)
		}
	}
	return kept, errnoSuccess
}

// resolve looks name up with the host's resolver.
func resolve(ctx context.Context, name string, family uint8) ([]netip.Addr, Errno) {
	network := "ip"
	switch family {
	case afInet:
		network = "ip4"
	case afInet6:
		network = "ip6"
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, network, name)
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		return addrs, errnoSuccess
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return nil, errnoSuccess
	case errors.As(err, &dnsErr) && (dnsErr.IsTimeout || dnsErr.IsTemporary):
		return nil, errnoAIAgain
	}
	return nil, errnoAIFail
}
