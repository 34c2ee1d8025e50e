package hostsock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// ConnFDBase is the first guest fd number given to accepted connections.
// wazy numbers the files it opens densely from 3 upward, so a guest would
// need about a million open files before wazy reached this range.
const ConnFDBase = 1 << 20

// maxConnFD bounds the connection range; an accept past it gives EMFILE.
const maxConnFD = 1<<31 - 1

// errnoMfile is WASI's "too many open files".
const errnoMfile Errno = 33

// kind tells listeners from connections.
type kind uint8

const (
	kindListener kind = iota + 1
	kindConn
)

// entry is one guest fd backed by a host socket.
type entry struct {
	kind kind
	// host is the host's fd number of the socket, non-blocking on the host
	// whatever the guest asked for.
	host int
	// lent marks the listener NewTable was given: its owner closes it.
	lent bool
	// nonblock is the guest's FDFLAGS_NONBLOCK: when false, reads, writes
	// and accepts wait (in the kernel) until they can proceed.
	nonblock bool
	// opened is set for a socket the guest opened itself (sock_open).
	opened *opened
	// pending are bytes the guest reads before any of the socket's: the
	// PROXY header of a connection (see SendProxyHeaders).
	pending []byte
	// addrs are the addresses a trusted peer's header gave (ProxyFrom);
	// nil: the socket's own.
	addrs *connAddrs
}

// Table is the set of guest fds one module instance has on host sockets.
// The host functions of a module instance run on that instance's goroutine
// only, so the fds need no lock; Close runs after the instance has stopped.
type Table struct {
	fds      map[uint32]*entry
	nextConn uint32
	free     []uint32
	conns    int // accepted connections open
	maxConns int // 0: no limit
	wake     *waker
	stop     func() bool
	ctx      context.Context // ends the guest's run when done; bounds lookups
	policy   *rules          // where the guest's own sockets may go; nil: nowhere
	// proxyHeaders: connections accepted on the lent listener start with
	// a PROXY header (SendProxyHeaders).
	proxyHeaders bool
	// proxy, when set, takes PROXY headers from trusted peers on the lent
	// listener (TrustProxyFrom).
	proxy *proxyState

	// sockets counts the sockets the guest opened itself (sock_open) that
	// are open: with maxConns, against it together with conns; without,
	// against maxSockets.
	sockets int

	// drain fires once Drain is called; draining is then true for good.
	drain    *waker
	draining atomic.Bool
	// ready is closed when the guest first waits on a listener.
	ready     chan struct{}
	readyOnce sync.Once

	// Scratch space of poll_oneoff, reused across calls.
	subs    []subscription
	pollFDs []pollFD
	slots   []int

	// counters are the table's Stats.
	counters counters
	// bufs is the scratch iovec list of fd_read, fd_write, sock_recv and
	// sock_send, so that a call allocates nothing.
	bufs [][]byte
}

// NewTable returns a Table that gives the guest ln (a TCP or Unix
// listener) at fd. The caller keeps ownership of ln: the table never
// closes it, so one listener can serve several module instances, each
// with a table of its own, and outlive them (a restarted instance finds
// the connections that queued meanwhile). Cancelling ctx wakes every wait
// of the guest on the table's sockets, so that a stopped guest does not
// stay blocked in the host.
func NewTable(ctx context.Context, ln net.Listener, fd uint32) (*Table, error) {
	if err := Supported(); err != nil {
		return nil, err
	}
	if fd >= ConnFDBase {
		return nil, fmt.Errorf("listener fd %d: must be below %d", fd, ConnFDBase)
	}
	host, err := rawFD(ln)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", ln.Addr(), err)
	}
	wake, err := newWaker()
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", ln.Addr(), err)
	}
	drain, err := newWaker()
	if err != nil {
		wake.close()
		return nil, fmt.Errorf("listener %s: %w", ln.Addr(), err)
	}
	t := &Table{
		fds:      map[uint32]*entry{fd: {kind: kindListener, host: host, lent: true}},
		nextConn: ConnFDBase,
		wake:     wake,
		drain:    drain,
		ready:    make(chan struct{}),
	}
	t.stop = context.AfterFunc(ctx, wake.fire)
	t.ctx = ctx
	return t, nil
}

// Ready is closed when the guest first waits for a connection: its first
// sock_accept, or poll_oneoff on a listener. Until then, connections only
// queue in the kernel's backlog.
func (t *Table) Ready() <-chan struct{} { return t.ready }

func (t *Table) markReady() {
	t.readyOnce.Do(func() { close(t.ready) })
}

// Drain makes the guest's listeners stop giving connections, for a
// graceful stop: a guest waiting on one is woken, poll_oneoff reports it
// readable, and sock_accept answers EINVAL, as accept(2) does on a socket
// that no longer listens. A Go guest's http.Server.Serve then returns, and
// the guest can finish its requests in flight and exit. Connections the
// guest already has are untouched. Drain may be called from any goroutine.
func (t *Table) Drain() {
	if !t.draining.Swap(true) {
		t.drain.fire()
	}
}

// Close closes every socket the table still holds. Call it once the
// module instance has stopped.
func (t *Table) Close() error {
	t.stop()
	var errs []error
	for fd, e := range t.fds {
		if e.kind == kindConn && e.opened == nil {
			t.counters.closed.Add(1)
		}
		errs = append(errs, t.closeEntry(e))
		delete(t.fds, fd)
	}
	if t.proxy != nil {
		t.proxy.close()
	}
	errs = append(errs, t.wake.close(), t.drain.close())
	return errors.Join(errs...)
}

// LimitConns bounds the connections the guest may have open at once,
// accepted ones and sockets it opened itself (sock_open) together; 0 means
// no limit on accepted connections and maxSockets on opened sockets. At
// the limit the listener is held back: sock_accept answers EAGAIN and
// poll_oneoff never reports it readable, so further clients wait in the
// kernel's backlog until the guest closes one; sock_open answers EMFILE.
func (t *Table) LimitConns(n int) {
	t.maxConns = max(n, 0)
}

// maxSockets bounds the sockets a guest opens itself when there is no
// connection limit: below the host's share of descriptors (RLIMIT_NOFILE
// is often 1,024 to 20,000 for the whole process), far above what a
// service dials at once.
const maxSockets = 4096

// atConnLimit reports whether the guest may accept no more connections.
func (t *Table) atConnLimit() bool {
	return t.maxConns > 0 && t.conns+t.sockets >= t.maxConns
}

// atSocketLimit reports whether the guest may open no more sockets.
func (t *Table) atSocketLimit() bool {
	if t.maxConns > 0 {
		return t.conns+t.sockets >= t.maxConns
	}
	return t.sockets >= maxSockets
}

// lookup returns the entry of a guest fd the table owns.
func (t *Table) lookup(fd uint32) (*entry, bool) {
	e, ok := t.fds[fd]
	return e, ok
}

// addConn gives an accepted host socket, whose guest reads pending first,
// a guest fd from the connection range, reusing closed numbers first.
func (t *Table) addConn(host int, nonblock bool, pending []byte) (uint32, Errno) {
	fd, errno := t.add(&entry{kind: kindConn, host: host, nonblock: nonblock, pending: pending})
	if errno == errnoSuccess {
		t.conns++
		t.counters.accepted.Add(1)
		if t.atConnLimit() {
			t.counters.holds.Add(1)
		}
	}
	return fd, errno
}

// add gives e a guest fd from the connection range, reusing closed numbers
// first.
func (t *Table) add(e *entry) (uint32, Errno) {
	var fd uint32
	switch {
	case len(t.free) > 0:
		fd = t.free[len(t.free)-1]
		t.free = t.free[:len(t.free)-1]
	case t.nextConn < maxConnFD:
		fd = t.nextConn
		t.nextConn++
	default:
		return 0, errnoMfile
	}
	t.fds[fd] = e
	return fd, errnoSuccess
}

// remove closes a guest fd's socket and forgets the fd.
func (t *Table) remove(fd uint32) error {
	e, ok := t.fds[fd]
	if !ok {
		return nil
	}
	delete(t.fds, fd)
	if fd >= ConnFDBase {
		t.free = append(t.free, fd)
	}
	switch {
	case e.opened != nil:
		t.sockets--
	case e.kind == kindConn:
		t.conns--
		t.counters.closed.Add(1)
	}
	return t.closeEntry(e)
}

func (t *Table) closeEntry(e *entry) error {
	if e.lent {
		return nil
	}
	return closeFD(e.host)
}

// stopped reports whether the table's context is done: the guest is to
// be stopped at its next call (see Func.Call). A guest that makes no such
// call, spinning in pure computation, is stopped only by the engine.
func (t *Table) stopped() bool {
	return t.ctx.Err() != nil
}

// waker lets another goroutine interrupt the kernel waits of the guest:
// the table's context being cancelled (its fd is in every poll set), or
// Drain (its fd is in the poll sets that wait on a listener).
type waker struct {
	mu     sync.Mutex
	fd     int
	closed bool
}

func (w *waker) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		signalFD(w.fd)
	}
}

func (w *waker) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	return closeFD(w.fd)
}
