//go:build linux

package hostsock

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// proxyState is a table's part of ProxyFrom: the trusted connections
// whose header has not all arrived, and one epoll fd that the guest's
// waits on the listener poll instead of the listener. It is readable
// when the listener is (while fewer than MaxAwaitedHeaders headers are
// awaited), when an awaited connection is (more of its header, or its
// end), and when the timer fires at the nearest header deadline; each
// then makes the guest call sock_accept, which does the work without
// ever blocking (accept).
type proxyState struct {
	cfg ProxyFrom
	// epoll and timer are the host fds of the epoll instance and of its
	// timerfd.
	epoll, timer int
	// lent is the listener's host fd; listening says whether it is in the
	// epoll set.
	lent      int
	listening bool
	// awaited are the trusted connections whose header is incomplete,
	// oldest first.
	awaited []*awaitedConn
	log     proxyLog
}

// awaitedConn is a trusted connection whose header has not all arrived.
type awaitedConn struct {
	host     int
	peer     netip.AddrPort
	deadline time.Time
	buf      headerBuf
}

func newProxyState(cfg ProxyFrom, lent int) (*proxyState, error) {
	epoll, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	timer, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		unix.Close(epoll)
		return nil, fmt.Errorf("timerfd_create: %w", err)
	}
	p := &proxyState{cfg: cfg, epoll: epoll, timer: timer, lent: lent, log: newProxyLog(cfg.Logger)}
	if err := p.watch(timer); err != nil {
		p.close()
		return nil, err
	}
	if err := p.watch(lent); err != nil {
		p.close()
		return nil, err
	}
	p.listening = true
	return p, nil
}

// pollFD is the fd to poll for the listener (see proxyState).
func (p *proxyState) pollFD() int { return p.epoll }

// watch adds fd to the epoll set, for reading.
func (p *proxyState) watch(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	if err := unix.EpollCtl(p.epoll, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl add %d: %w", fd, err)
	}
	return nil
}

// unwatch removes fd from the epoll set.
func (p *proxyState) unwatch(fd int) {
	unix.EpollCtl(p.epoll, unix.EPOLL_CTL_DEL, fd, nil)
}

// accept returns the next connection of the listener (host fd listener)
// to give the guest, with what the guest reads first (the header of
// SendProxyHeaders when sendHeader, then any bytes read past a trusted
// peer's header) and, for a trusted peer that relayed a client, the
// addresses the guest sees. It never blocks: it answers EAGAIN when no
// connection is ready, having accepted what the backlog held and read
// what the awaited headers had.
func (p *proxyState) accept(listener int, sendHeader bool) (host int, pending []byte, addrs *connAddrs, errno Errno) {
	defer p.arm()
	var one [8]byte
	unix.Read(p.timer, one[:]) // a fired timer, acknowledged: arm sets the next
	now := time.Now()
	for i := 0; i < len(p.awaited); {
		c := p.awaited[i]
		n, err := c.buf.fill(readNow(c.host))
		if err == nil && n == 0 {
			if now.Before(c.deadline) {
				i++
				continue
			}
			err = errProxyHeaderLate
		}
		p.forget(i)
		if err == nil {
			if pending, addrs, err = p.trusted(c, n, sendHeader); err == nil {
				return c.host, pending, addrs, errnoSuccess
			}
		}
		p.reject(c, err)
	}
	for len(p.awaited) < MaxAwaitedHeaders {
		host, errno := accept(listener)
		if errno != errnoSuccess {
			return -1, nil, nil, errno
		}
		local, peer, errno := hostAddrs(host)
		if errno != errnoSuccess {
			closeFD(host)
			if errno == errnoAgain {
				continue // the client left before its address was read
			}
			return -1, nil, nil, errno
		}
		peerAP := addrPortOf(peer)
		if !peerAP.IsValid() || !p.cfg.trusts(peerAP.Addr()) {
			pending, err := guestPending(sendHeader, local, peer, nil)
			if err != nil {
				closeFD(host)
				return -1, nil, nil, errnoAfnosupport
			}
			return host, pending, nil, errnoSuccess
		}
		c := &awaitedConn{host: host, peer: peerAP, deadline: now.Add(p.cfg.HeaderTimeout)}
		n, err := c.buf.fill(readNow(host))
		switch {
		case err == nil && n == 0:
			if err = p.watch(host); err == nil {
				p.awaited = append(p.awaited, c)
				p.listen(len(p.awaited) < MaxAwaitedHeaders)
				continue
			}
		case err == nil:
			if pending, addrs, err = p.trusted(c, n, sendHeader); err == nil {
				return host, pending, addrs, errnoSuccess
			}
		}
		p.reject(c, err)
	}
	return -1, nil, nil, errnoAgain
}

// trusted parses the whole header of length n of c, a trusted
// connection, and returns what the guest reads first and the addresses
// it sees.
func (p *proxyState) trusted(c *awaitedConn, n int, sendHeader bool) ([]byte, *connAddrs, error) {
	th, rest, err := c.buf.header(n)
	if err != nil {
		return nil, nil, err
	}
	var local, peer net.Addr
	if th.addrs != nil {
		local, peer = net.TCPAddrFromAddrPort(th.addrs.local), net.TCPAddrFromAddrPort(th.addrs.peer)
	} else if sendHeader {
		var errno Errno
		if local, peer, errno = hostAddrs(c.host); errno != errnoSuccess {
			return nil, nil, fmt.Errorf("addresses of a LOCAL connection: errno %d", errno)
		}
	}
	pending, err := guestPending(sendHeader, local, peer, rest)
	if err != nil {
		return nil, nil, err
	}
	return pending, th.addrs, nil
}

// forget removes awaited connection i from the awaited set and the epoll
// set; the caller hands it to the guest or closes it.
func (p *proxyState) forget(i int) {
	p.unwatch(p.awaited[i].host)
	p.awaited = slices.Delete(p.awaited, i, i+1)
	p.listen(true)
}

// reject closes c, a trusted connection, for err. One that ended before
// sending a byte (a balancer's TCP health check) is no fault: it is
// logged at debug level only.
func (p *proxyState) reject(c *awaitedConn, err error) {
	closeFD(c.host)
	if errors.Is(err, errProxyHeaderCut) && len(c.buf.b) == 0 {
		p.cfg.Logger.Debug("a trusted PROXY protocol peer closed a connection before sending anything", "peer", c.peer)
		return
	}
	p.log.closed(c.peer, err)
}

// listen puts the listener in the epoll set, or takes it out.
func (p *proxyState) listen(on bool) {
	switch {
	case on && !p.listening:
		p.listening = p.watch(p.lent) == nil
	case !on && p.listening:
		p.unwatch(p.lent)
		p.listening = false
	}
}

// arm sets the timer to the nearest deadline of the awaited headers, or
// disarms it when none is awaited.
func (p *proxyState) arm() {
	var spec unix.ItimerSpec
	if len(p.awaited) > 0 {
		next := p.awaited[0].deadline
		for _, c := range p.awaited[1:] {
			if c.deadline.Before(next) {
				next = c.deadline
			}
		}
		// At least 1ns: a zero value would disarm the timer.
		spec.Value = unix.NsecToTimespec(max(time.Until(next).Nanoseconds(), 1))
	}
	unix.TimerfdSettime(p.timer, 0, &spec, nil)
}

// close closes the awaited connections and the state's fds.
func (p *proxyState) close() {
	for _, c := range p.awaited {
		closeFD(c.host)
	}
	p.awaited = nil
	unix.Close(p.timer)
	unix.Close(p.epoll)
}

// readNow reads a host socket without waiting.
func readNow(host int) func([]byte) (int, Errno) {
	return func(b []byte) (int, Errno) {
		return sockIO(unix.SYS_RECVFROM, host, b, 0)
	}
}

// hostAddrs are an accepted host socket's local and peer addresses (see
// streamAddr). It answers EAGAIN when the client has already gone (its
// address can no longer be read), so that the caller drops the socket
// and accepts the next.
func hostAddrs(host int) (local, peer net.Addr, errno Errno) {
	localSA, errLocal := unix.Getsockname(host)
	peerSA, errPeer := unix.Getpeername(host)
	if err := errors.Join(errLocal, errPeer); err != nil {
		if errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.EINVAL) {
			return nil, nil, errnoAgain
		}
		return nil, nil, errnoOf(err)
	}
	return streamAddr(localSA), streamAddr(peerSA), errnoSuccess
}

// addrPortOf is a TCP address's AddrPort; the zero AddrPort for any
// other.
func addrPortOf(addr net.Addr) netip.AddrPort {
	if tcp, ok := addr.(*net.TCPAddr); ok {
		return tcp.AddrPort()
	}
	return netip.AddrPort{}
}
