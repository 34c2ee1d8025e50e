package wasihttp

import (
	"context"
	"crypto/tls"
	"log"
	"net"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasiserve/wasiserve/guest/wasisock"
)

// server is the fast path of one Serve call: it accepts on the listener
// and serves HTTP/1.1 itself, handing each connection it cannot serve
// exactly as net/http to srv.Serve on an internal listener (handoff).
type server struct {
	srv               *http.Server
	handler           http.Handler
	connState         func(net.Conn, http.ConnState) // srv's own hook
	drainer           *Drainer
	idleTimeout       time.Duration
	readHeaderTimeout time.Duration
	base              context.Context // BaseContext with ServerContextKey
	hand              *handoffListener

	closing atomic.Bool // srv was shut down or closed

	mu    sync.Mutex
	conns map[*conn]time.Time // and when each was accepted
	idle  *sync.Cond          // signalled when a connection ends

	date_ atomic.Pointer[dateEntry]
}

type dateEntry struct {
	sec int64
	b   []byte
}

// date is the Date header value for now, formatted once per second.
func (s *server) date(now time.Time) []byte {
	sec := now.Unix()
	if e := s.date_.Load(); e != nil && e.sec == sec {
		return e.b
	}
	e := &dateEntry{sec: sec, b: now.UTC().AppendFormat(make([]byte, 0, len(http.TimeFormat)), http.TimeFormat)}
	s.date_.Store(e)
	return e.b
}

// usesFastPath reports whether the fast path can serve srv at all: it
// serves HTTP/1 only.
func usesFastPath(srv *http.Server) bool {
	return srv.Protocols == nil || srv.Protocols.HTTP1()
}

// newServer prepares srv for the fast path: its ConnState and Handler
// are wrapped for the connections handed to net/http (see NewDrainer);
// the fast path calls the originals.
func newServer(srv *http.Server, ln net.Listener) *server {
	h := srv.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	s := &server{
		srv:               srv,
		handler:           h,
		connState:         srv.ConnState,
		idleTimeout:       srv.IdleTimeout,
		readHeaderTimeout: srv.ReadHeaderTimeout,
		conns:             map[*conn]time.Time{},
	}
	s.idle = sync.NewCond(&s.mu)
	if s.idleTimeout == 0 {
		s.idleTimeout = srv.ReadTimeout
	}
	if s.readHeaderTimeout == 0 {
		s.readHeaderTimeout = srv.ReadTimeout
	}
	base := context.Background()
	if srv.BaseContext != nil {
		base = srv.BaseContext(ln)
		if base == nil {
			panic("BaseContext returned a nil context")
		}
	}
	s.base = context.WithValue(base, http.ServerContextKey, srv)

	s.drainer = newDrainer(srv, s.counts)
	user := s.connState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		s.drainer.track(c, st)
		if raw, handed := underlying(c); handed {
			if st == http.StateNew {
				return // its hook saw the connection begin on the fast path
			}
			c = raw
		}
		if user != nil {
			user(c, st)
		}
	}
	s.hand = &handoffListener{ch: make(chan net.Conn), done: make(chan struct{}), addr: ln.Addr(), onClose: func() { s.shutdown(ln) }}
	srv.RegisterOnShutdown(func() { s.shutdown(ln) })
	return s
}

// serve accepts connections on ln as net/http's Serve does, with the same
// retry of temporary errors, until ln fails or srv is shut down.
func (s *server) serve(ln net.Listener) error {
	netDone := make(chan struct{})
	go func() {
		defer close(netDone)
		s.srv.Serve(s.hand) // the connections handed over; ends when srv shuts down
	}()
	var tempDelay time.Duration
	for {
		rw, err := ln.Accept()
		if err != nil {
			if s.shuttingDown() {
				return http.ErrServerClosed
			}
			if wasisock.Drained(err) {
				return err
			}
			if ne, ok := err.(net.Error); ok && ne.Temporary() {
				if tempDelay == 0 {
					tempDelay = 5 * time.Millisecond
				} else {
					tempDelay *= 2
				}
				tempDelay = min(tempDelay, time.Second)
				s.logf("http: Accept error: %v; retrying in %v", err, tempDelay)
				time.Sleep(tempDelay)
				continue
			}
			s.hand.Close()
			<-netDone
			return err
		}
		tempDelay = 0
		if _, isTLS := rw.(interface{ ConnectionState() tls.ConnectionState }); isTLS {
			s.handOff(rw)
			continue
		}
		c := &conn{s: s, rwc: rw, parent: s.base}
		if cc := s.srv.ConnContext; cc != nil {
			c.parent = cc(s.base, rw)
			if c.parent == nil {
				panic("ConnContext returned nil")
			}
		}
		s.mu.Lock()
		s.conns[c] = time.Now()
		s.mu.Unlock()
		c.setState(http.StateNew)
		go c.serve()
	}
}

// serveHTTP runs the handler; during a drain every answer says
// "Connection: close", as the Drainer's handler does for net/http's.
func (s *server) serveHTTP(w *response, r *http.Request) {
	if s.drainer.draining.Load() {
		w.Header().Set("Connection", "close")
	}
	s.handler.ServeHTTP(w, r)
}

func (s *server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.idle.Broadcast()
}

// counts is the fast path's share of the Drainer's count.
func (s *server) counts() (busy, idle int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if http.ConnState(c.state.Load()) == http.StateIdle {
			idle++
		} else {
			busy++
		}
	}
	return busy, idle
}

func (s *server) shuttingDown() bool { return s.closing.Load() }

func (s *server) doKeepAlives() bool { return !s.closing.Load() }

// shutdown stops accepting, on srv.Shutdown or srv.Close.
func (s *server) shutdown(ln net.Listener) {
	if s.closing.Swap(true) {
		return
	}
	ln.Close()
	s.closeIdle()
}

// closeIdle wakes the fast path's idle connections, and those accepted
// more than 5 s ago that sent nothing, so that they close, as
// http.Server.Shutdown closes its idle ones.
func (s *server) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := time.Now().Add(-5 * time.Second)
	for c, at := range s.conns {
		st := http.ConnState(c.state.Load())
		if st == http.StateIdle || st == http.StateNew && at.Before(old) {
			c.rwc.SetReadDeadline(aLongTimeAgo)
		}
	}
}

// wait waits until every fast path connection has ended, closing idle
// ones as they go idle, or ctx ends.
func (s *server) wait(ctx context.Context) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		s.closeIdle()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// handOff gives c to net/http's Serve.
func (s *server) handOff(c net.Conn) {
	select {
	case s.hand.ch <- c:
	case <-s.hand.done:
		c.Close()
	}
}

func (s *server) logf(format string, args ...any) {
	if s.srv.ErrorLog != nil {
		s.srv.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}

// handoffListener is the listener net/http's Serve takes the handed
// connections from; srv.Shutdown and srv.Close close it, which stops the
// fast path too.
type handoffListener struct {
	ch      chan net.Conn
	done    chan struct{}
	once    sync.Once
	addr    net.Addr
	onClose func()
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.onClose()
	})
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// maxBytesReaderType is *http.maxBytesReader, whose limit net/http's own
// ResponseWriter learns of through an unexported method.
var maxBytesReaderType = reflect.TypeOf(http.MaxBytesReader(nil, http.NoBody, 0))

// maxBytesHit reports whether body is an http.MaxBytesReader made for w
// that ran past its limit.
func maxBytesHit(body any, w http.ResponseWriter) bool {
	if reflect.TypeOf(body) != maxBytesReaderType {
		return false
	}
	v := reflect.ValueOf(body).Elem()
	rw := v.FieldByName("w")
	if rw.IsNil() || rw.Elem().Pointer() != reflect.ValueOf(w).Pointer() {
		return false
	}
	err := v.FieldByName("err")
	return !err.IsNil() && err.Elem().Type() == maxBytesErrorType
}

var maxBytesErrorType = reflect.TypeOf((*http.MaxBytesError)(nil))
