package hostsock

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
)

// ProxyFrom says which peers of the listener NewTable was given are
// trusted upstreams (load balancers) that start every connection with a
// PROXY protocol header, version 1 or 2, naming the client they relay.
//
// A connection from a trusted peer is held by the host until its whole
// header has arrived; the guest then sees the header's addresses (and
// never the header's bytes): in the header of SendProxyHeaders and in the
// WasmEdge sock_getpeeraddr and sock_getlocaladdr. A LOCAL header (a
// balancer's own health check) and a version 1 UNKNOWN one keep the
// connection's own addresses. A trusted peer whose header is missing,
// malformed, not TCP over IPv4 or IPv6, or not complete within
// HeaderTimeout is closed. Connections from any other peer are served as
// without ProxyFrom: whatever they send, a PROXY header included, is
// their data, which the guest reads as such.
//
// Waiting for headers never blocks the guest: the connections whose
// header is awaited are polled with the listener, at most
// MaxAwaitedHeaders per table at once; past that, further clients wait in
// the kernel's backlog.
type ProxyFrom struct {
	// Trusted are the prefixes of the trusted peers' addresses; an IPv4
	// peer is also matched by its IPv4-mapped IPv6 form and the reverse,
	// but not by a wider IPv6 prefix such as ::/0.
	Trusted []netip.Prefix
	// HeaderTimeout bounds the wait for a trusted peer's header, from the
	// accept; 0 means DefaultProxyHeaderTimeout.
	HeaderTimeout time.Duration
	// Logger receives the closed trusted connections, at most one line
	// per ProxyLogInterval (counting the others); nil discards them.
	Logger *slog.Logger
}

// Bounds of ProxyFrom.
const (
	// DefaultProxyHeaderTimeout is the HeaderTimeout when it is 0. A
	// balancer sends its header with the connection's first segment.
	DefaultProxyHeaderTimeout = 5 * time.Second
	// MaxAwaitedHeaders bounds the trusted connections per table whose
	// header has not all arrived.
	MaxAwaitedHeaders = 64
	// ProxyLogInterval is the least time between two log lines about
	// closed trusted connections.
	ProxyLogInterval = 10 * time.Second
)

// Check reports the first prefix of p that is not valid, and a negative
// HeaderTimeout.
func (p ProxyFrom) Check() error {
	for i, prefix := range p.Trusted {
		if !prefix.IsValid() {
			return fmt.Errorf("trusted prefix %d (%v): not a valid IP prefix", i, prefix)
		}
	}
	if p.HeaderTimeout < 0 {
		return fmt.Errorf("header timeout %v: want 0 or more", p.HeaderTimeout)
	}
	return nil
}

// TrustProxyFrom makes the table take PROXY headers from p's trusted
// peers on the listener NewTable was given; call it before the guest
// runs. With no trusted prefix it does nothing.
func (t *Table) TrustProxyFrom(p ProxyFrom) error {
	if err := p.Check(); err != nil {
		return err
	}
	if len(p.Trusted) == 0 {
		return nil
	}
	if p.HeaderTimeout == 0 {
		p.HeaderTimeout = DefaultProxyHeaderTimeout
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if t.proxy != nil {
		t.proxy.close()
	}
	listener := -1
	for _, e := range t.fds {
		if e.lent {
			listener = e.host
		}
	}
	state, err := newProxyState(p, listener)
	if err != nil {
		return fmt.Errorf("PROXY protocol from %v: %w", p.Trusted, err)
	}
	t.proxy = state
	return nil
}

// trusts reports whether a peer at addr is trusted. An IPv4 peer (also
// in its IPv4-mapped form) is matched by IPv4 prefixes and by prefixes
// within the IPv4-mapped range (::ffff:0:0/96), never by an IPv6 prefix
// that merely contains that range (::/0): trusting every IPv6 peer does
// not trust every IPv4 one.
func (p *ProxyFrom) trusts(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, prefix := range p.Trusted {
		if a := prefix.Addr(); a.Is4In6() && prefix.Bits() >= 96 {
			prefix = netip.PrefixFrom(a.Unmap(), prefix.Bits()-96)
		}
		if prefix.Contains(addr) {
			return true
		}
	}
	return false
}

// connAddrs are the addresses of an accepted connection as a trusted
// peer's header gave them, which the guest sees instead of the socket's.
type connAddrs struct {
	local, peer netip.AddrPort
}

// sockAddr is e's local address, or its peer's: the trusted header's for
// a connection that had one, else the socket's.
func (e *entry) sockAddr(peer bool) (netip.AddrPort, Errno) {
	switch {
	case e.addrs == nil:
		return socketAddr(e.host, peer)
	case peer:
		return e.addrs.peer, errnoSuccess
	default:
		return e.addrs.local, errnoSuccess
	}
}

// pollHost is the host fd that a wait on e polls: for the lent listener
// of a table with trusted peers, the fd that is readable when it or an
// awaited header is (see proxyState).
func (t *Table) pollHost(e *entry) int {
	if t.proxy != nil && e.lent {
		return t.proxy.pollFD()
	}
	return e.host
}

// Errors of the header of a trusted connection.
var (
	errNoProxyHeader     = errors.New("no PROXY protocol header")
	errProxyHeaderLong   = errors.New("PROXY protocol header too long")
	errProxyHeaderCut    = errors.New("connection closed inside its PROXY protocol header")
	errProxyHeaderLate   = errors.New("PROXY protocol header not complete in time")
	errProxyNotTCP       = errors.New("PROXY protocol header not for TCP over IPv4 or IPv6")
	errProxyHeaderSpared = errors.New("PROXY protocol header not consumed whole")
)

// proxySigV1 starts a version 1 header; proxyproto.SIGV2 a version 2 one.
var proxySigV1 = []byte("PROXY ")

// Sizes of PROXY protocol headers.
const (
	// maxV1Header is the longest version 1 header, CRLF included.
	maxV1Header = 107
	// v2Fixed is the fixed part of a version 2 header: signature,
	// version and command, family and protocol, length.
	v2Fixed = 16
	// firstHeaderRead is the size of the first read of a header: a
	// version 1 header, or a version 2 one with any address block and no
	// TLV, in one read.
	firstHeaderRead = v2Fixed + 216
)

// proxyHeaderLen frames the PROXY header at the start of b: its length
// once b holds all of it, 0 while b is a prefix of one, or an error when
// b cannot start one (no signature, or longer than the protocol allows:
// 107 bytes for version 1, proxyproto.MaxV2HeaderSize of addresses and
// TLVs for version 2).
func proxyHeaderLen(b []byte) (int, error) {
	switch {
	case len(b) == 0:
		return 0, nil
	case b[0] == proxyproto.SIGV2[0]:
		if n := min(len(b), len(proxyproto.SIGV2)); !bytes.Equal(b[:n], proxyproto.SIGV2[:n]) {
			return 0, errNoProxyHeader
		}
		if len(b) < v2Fixed {
			return 0, nil
		}
		length := binary.BigEndian.Uint16(b[v2Fixed-2:])
		if length > proxyproto.MaxV2HeaderSize {
			return 0, errProxyHeaderLong
		}
		if total := v2Fixed + int(length); len(b) >= total {
			return total, nil
		}
		return 0, nil
	case b[0] == proxySigV1[0]:
		if n := min(len(b), len(proxySigV1)); !bytes.Equal(b[:n], proxySigV1[:n]) {
			return 0, errNoProxyHeader
		}
		if i := bytes.IndexByte(b[:min(len(b), maxV1Header)], '\n'); i >= 0 {
			return i + 1, nil
		}
		if len(b) >= maxV1Header {
			return 0, errProxyHeaderLong
		}
		return 0, nil
	}
	return 0, errNoProxyHeader
}

// nextHeaderRead is how many bytes to read next into b, the incomplete
// start of a header (proxyHeaderLen 0): the rest of a version 2 header
// whose length is known, else enough for a whole common header. What is
// read past the header is the connection's first data.
func nextHeaderRead(b []byte) int {
	if len(b) >= v2Fixed && b[0] == proxyproto.SIGV2[0] {
		return v2Fixed + int(binary.BigEndian.Uint16(b[v2Fixed-2:])) - len(b)
	}
	return max(firstHeaderRead-len(b), 1)
}

// trustedHeader is what a trusted peer's header says.
type trustedHeader struct {
	// addrs are the relayed client's and the address it connected to;
	// nil for a LOCAL header (or version 1 UNKNOWN), whose connection
	// keeps its own.
	addrs *connAddrs
}

// parseProxyHeader parses b, a whole header as proxyHeaderLen framed it.
func parseProxyHeader(b []byte) (trustedHeader, error) {
	r := bytes.NewReader(b)
	br := bufio.NewReaderSize(r, len(b))
	h, err := proxyproto.Read(br)
	if err != nil {
		return trustedHeader{}, err
	}
	if r.Len()+br.Buffered() != 0 {
		return trustedHeader{}, errProxyHeaderSpared
	}
	if h.Command.IsLocal() || h.TransportProtocol == proxyproto.UNSPEC {
		return trustedHeader{}, nil
	}
	if h.TransportProtocol != proxyproto.TCPv4 && h.TransportProtocol != proxyproto.TCPv6 {
		return trustedHeader{}, errProxyNotTCP
	}
	src, dst, ok := h.TCPAddrs()
	if !ok || src == nil || dst == nil {
		return trustedHeader{}, errProxyNotTCP
	}
	addrs := &connAddrs{peer: src.AddrPort(), local: dst.AddrPort()}
	if !addrs.peer.IsValid() || !addrs.local.IsValid() {
		return trustedHeader{}, errProxyNotTCP
	}
	return trustedHeader{addrs: addrs}, nil
}

// headerBuf gathers the first bytes of a trusted connection until they
// hold its whole header.
type headerBuf struct {
	b []byte
}

// fill reads with read, which answers EAGAIN when nothing is there
// (a non-blocking read), until the buffer holds a whole header, or read
// would block, fails or reaches the end. It returns the header's length
// once it is whole, and 0 with no error while more is to come.
func (h *headerBuf) fill(read func([]byte) (int, Errno)) (int, error) {
	for {
		n, err := proxyHeaderLen(h.b)
		if err != nil || n > 0 {
			return n, err
		}
		have := len(h.b)
		want := nextHeaderRead(h.b)
		if cap(h.b)-have < want {
			h.b = append(h.b[:have:have], make([]byte, want)...)[:have]
		}
		got, errno := read(h.b[have : have+want])
		switch {
		case errno == errnoAgain:
			return 0, nil
		case errno != errnoSuccess:
			return 0, fmt.Errorf("reading the PROXY protocol header: errno %d", errno)
		case got == 0:
			return 0, errProxyHeaderCut
		}
		h.b = h.b[:have+got]
	}
}

// header parses the whole header of length n in the buffer, and returns
// it with the bytes read past it.
func (h *headerBuf) header(n int) (trustedHeader, []byte, error) {
	th, err := parseProxyHeader(h.b[:n])
	if err != nil {
		return trustedHeader{}, nil, err
	}
	return th, h.b[n:], nil
}

// guestPending is what the guest reads of a connection before its socket
// bytes: the header of SendProxyHeaders when sendHeader (for the
// addresses local and peer), then rest, what was read past a trusted
// peer's header.
func guestPending(sendHeader bool, local, peer net.Addr, rest []byte) ([]byte, error) {
	var pending []byte
	if sendHeader {
		header, err := proxyHeader(local, peer)
		if err != nil {
			return nil, err
		}
		pending = header
	}
	if len(rest) > 0 {
		pending = append(pending, rest...)
	}
	return pending, nil
}

// proxyLog rate-limits the log of closed trusted connections, with the
// limiter of the policy's denials under one key.
type proxyLog struct {
	logger *slog.Logger
	limit  *denialLog
}

// newProxyLog logs to logger at most once per ProxyLogInterval.
func newProxyLog(logger *slog.Logger) proxyLog {
	return proxyLog{logger: logger, limit: newRateLog(ProxyLogInterval)}
}

// closed logs that the trusted connection from peer was closed for err,
// unless a line was logged less than ProxyLogInterval ago.
func (l *proxyLog) closed(peer netip.AddrPort, err error) {
	ok, suppressed := l.limit.admit("closed")
	if !ok {
		return
	}
	l.logger.Warn("closed a connection from a trusted PROXY protocol peer", "peer", peer, "err", err,
		"also_closed_since_last_line", suppressed)
}
