package wasihttp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// readBufferSize is the connection's read buffer, net/http's size: a
// request head that does not fit is net/http's to read (it allows up to
// MaxHeaderBytes), and a chunked body's trailer is bounded by it as there.
const readBufferSize = 4 << 10

var crlfcrlf = []byte("\r\n\r\n")

// aLongTimeAgo is a deadline in the past, to wake a pending read.
var aLongTimeAgo = time.Unix(1, 0)

// phase is what a connection reads: it picks the read deadline.
type phase int

const (
	phaseIdle phase = iota // between requests: IdleTimeout
	phaseHead              // a request head: ReadHeaderTimeout
	phaseBody              // a request body: ReadTimeout
)

// conn is one connection served by the fast path.
type conn struct {
	s          *server
	rwc        net.Conn
	cr         connReader
	br         *bufio.Reader
	bufw       *bufio.Writer // the connection's writer, as net/http's conn.bufw
	ww         *bufio.Writer // a response's body buffer, reused per request
	rf         io.ReaderFrom // rwc's, if it has one
	remoteAddr string
	laddr      net.Addr
	parent     context.Context // values of each request's context

	state      atomic.Int32 // http.ConnState, for the drain
	lastMethod string
	werr       error
	hijacked   bool
	curReq     atomic.Pointer[response]

	// Deadlines. t0 is when the request being read began, phase what is
	// read; rdl and wdl are the deadlines set on rwc (zero: none), each
	// set only when the one needed falls outside [set-slack, set]; a
	// handler's own deadline (ResponseController) holds for its request.
	t0             time.Time
	phase          phase
	rdl, wdl       time.Time
	userRDL        bool
	userWDL        bool
	headReads      int
	headerDoneTime time.Time
}

// deadlineSlack bounds how much later than net/http's a deadline may fire
// so that it need not be set again for every request.
func deadlineSlack(d time.Duration) time.Duration {
	return min(d/16, 500*time.Millisecond)
}

func (c *conn) now() time.Time { return time.Now() }

// armRead sets the read deadline the current phase needs before a read
// that may block.
func (c *conn) armRead() {
	if c.userRDL {
		return
	}
	var d time.Duration
	switch c.phase {
	case phaseIdle:
		d = c.s.idleTimeout
	case phaseHead:
		d = c.s.readHeaderTimeout
	case phaseBody:
		d = c.s.srv.ReadTimeout
	}
	if d <= 0 {
		if !c.rdl.IsZero() {
			c.rdl = time.Time{}
			c.rwc.SetReadDeadline(c.rdl)
		}
		return
	}
	c.rdl = lazyDeadline(c.rdl, c.t0.Add(d), deadlineSlack(d), c.rwc.SetReadDeadline)
	if c.phase == phaseIdle && c.s.shuttingDown() {
		c.rdl = aLongTimeAgo // closeIdle may have set it before this call set it again
		c.rwc.SetReadDeadline(c.rdl)
	}
}

// armWrite sets the write deadline of the response being written.
func (c *conn) armWrite() {
	if c.userWDL {
		return
	}
	d := c.s.srv.WriteTimeout
	if d <= 0 {
		return
	}
	c.wdl = lazyDeadline(c.wdl, c.headerDoneTime.Add(d), deadlineSlack(d), c.rwc.SetWriteDeadline)
}

// lazyDeadline returns the deadline to have set for want: cur if it is
// within slack after want, else want+slack, set with set.
func lazyDeadline(cur, want time.Time, slack time.Duration, set func(time.Time) error) time.Time {
	if !cur.IsZero() && !cur.Before(want) && cur.Sub(want) <= slack {
		return cur
	}
	next := want.Add(slack)
	set(next)
	return next
}

func (c *conn) setReadDeadlineExact(t time.Time) error {
	c.userRDL = true
	c.rdl = t
	return c.rwc.SetReadDeadline(t)
}

func (c *conn) setWriteDeadlineExact(t time.Time) error {
	c.userWDL = true
	c.wdl = t
	return c.rwc.SetWriteDeadline(t)
}

// checkConnErrorWriter is net/http's: it notes the first write error.
type checkConnErrorWriter struct{ c *conn }

func (w checkConnErrorWriter) Write(p []byte) (int, error) {
	w.c.armWrite()
	n, err := w.c.rwc.Write(p)
	if err != nil && w.c.werr == nil {
		w.c.werr = err
		w.c.cancelRequest()
	}
	return n, err
}

// cancelRequest cancels the current request's context and fires its
// CloseNotify, as net/http does when the connection fails.
func (c *conn) cancelRequest() {
	if w := c.curReq.Load(); w != nil {
		w.ctx.cancel()
		w.closeNotify()
	}
}

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
	bodyPool   = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufferBeforeChunkingSize) }}
)

func (c *conn) release() {
	if c.br != nil {
		c.br.Reset(nil)
		readerPool.Put(c.br)
		c.br = nil
	}
	if c.bufw != nil {
		c.bufw.Flush()
		c.bufw.Reset(nil)
		writerPool.Put(c.bufw)
		c.bufw = nil
	}
	if c.ww != nil {
		c.ww.Reset(nil)
		bodyPool.Put(c.ww)
		c.ww = nil
	}
}

// errHandoff ends the fast path's loop on a connection net/http now
// serves.
var errHandoff = errors.New("handed to net/http")

// serve serves c's requests until it closes, is hijacked or handed to
// net/http.
func (c *conn) serve() {
	var inFlight *response
	handedOff := false
	defer func() {
		if err := recover(); err != nil && err != http.ErrAbortHandler {
			const size = 64 << 10
			buf := make([]byte, size)
			buf = buf[:runtime.Stack(buf, false)]
			c.s.logf("http: panic serving %v: %v\n%s", c.remoteAddr, err, buf)
		}
		if inFlight != nil {
			inFlight.ctx.cancel()
			inFlight.disableWriteContinue()
		}
		if handedOff || c.hijacked {
			c.s.forget(c)
			return
		}
		if inFlight != nil {
			c.cr.abortPendingRead()
			inFlight.reqBody.Close()
		}
		c.release()
		c.rwc.Close()
		c.setState(http.StateClosed)
		c.s.forget(c)
	}()

	if ra := c.rwc.RemoteAddr(); ra != nil {
		c.remoteAddr = ra.String()
	}
	c.laddr = c.rwc.LocalAddr()
	c.rf, _ = c.rwc.(io.ReaderFrom)
	c.cr = connReader{c: c, rwc: c.rwc}
	c.br = readerPool.Get().(*bufio.Reader)
	c.br.Reset(&c.cr)
	c.bufw = writerPool.Get().(*bufio.Writer)
	c.bufw.Reset(checkConnErrorWriter{c})
	c.ww = bodyPool.Get().(*bufio.Writer)

	c.t0 = c.now()
	c.phase = phaseHead
	var r request
	for first := true; ; first = false {
		if !first {
			c.phase = phaseIdle
			if _, err := c.br.Peek(4); err != nil {
				return
			}
			c.t0 = c.now()
			c.phase = phaseHead
		}
		w, err := c.readRequest(&r, first)
		if err == errHandoff {
			handedOff = true
			c.handoff()
			return
		}
		if err != nil {
			return
		}
		c.setState(http.StateActive)
		if c.s.shuttingDown() {
			return
		}
		req := w.req
		if r.expectContinue {
			req.Body = &expectContinueReader{readCloser: req.Body, resp: w}
			w.canWriteContinue.Store(true)
		}
		c.curReq.Store(w)
		if b, ok := w.reqBody.(*body); ok {
			b.registerOnHitEOF(c.cr.bodyDone)
		} else {
			c.cr.bodyDone()
		}

		inFlight = w
		c.s.serveHTTP(w, req)
		inFlight = nil
		w.ctx.cancel()
		if c.hijacked {
			c.cr.releaseConn()
			return
		}
		w.finishRequest()
		c.userRDL, c.userWDL = false, false
		if !w.shouldReuseConnection() {
			if w.requestBodyLimitHit || w.closedRequestBodyEarly() {
				c.closeWriteAndWait()
			}
			return
		}
		c.setState(http.StateIdle)
		c.curReq.Store(nil)
		if !c.s.doKeepAlives() {
			return
		}
		if w.headerAtFinish {
			c.t0 = w.headerTime
		} else {
			c.t0 = c.now()
		}
	}
}

// readRequest reads the next request head and returns its response, or
// errHandoff for a connection net/http must serve from here on, or the
// read error that ends the connection without an answer.
func (c *conn) readRequest(r *request, first bool) (*response, error) {
	if c.lastMethod == "POST" {
		peek, _ := c.br.Peek(4)
		c.br.Discard(numLeadingCRorLF(peek))
	}
	c.headReads = 0
	for {
		buf, _ := c.br.Peek(c.br.Buffered())
		if end := bytes.Index(buf, crlfcrlf); end >= 0 {
			end += len(crlfcrlf)
			if parseHead(buf[:end], r) == headFallback {
				return nil, errHandoff
			}
			c.br.Discard(end)
			return c.newResponse(r)
		}
		if len(buf) > 0 {
			if _, st := scanHead(buf); st != headIncomplete || len(buf) == c.br.Size() {
				return nil, errHandoff
			}
		}
		c.headReads++
		if _, err := c.br.Peek(len(buf) + 1); err != nil {
			if c.br.Buffered() == 0 {
				return nil, err // net/http answers nothing
			}
			if isTimeout(err) {
				c.setState(http.StateActive) // it read bytes, as net/http says
				return nil, err
			}
			return nil, errHandoff // net/http judges what there is
		}
	}
}

func numLeadingCRorLF(v []byte) (n int) {
	for _, b := range v {
		if b == '\r' || b == '\n' {
			n++
			continue
		}
		break
	}
	return
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *conn) newResponse(r *request) (*response, error) {
	req := r.req
	c.lastMethod = req.Method
	if c.headReads > 0 {
		c.headerDoneTime = c.now()
	} else {
		c.headerDoneTime = c.t0
	}
	c.phase = phaseBody
	// One allocation holds the response, the request's context and body.
	w := &response{
		conn:             c,
		contentLength:    -1,
		wants10KeepAlive: r.wants10KeepAlive,
		wantsClose:       r.wantsClose,
	}
	w.ctxv = requestContext{parent: c.parent, c: c}
	w.ctx = &w.ctxv
	req = req.WithContext(w.ctx) // the one copy on the heap: r.req is reused
	req.Body = newBody(c, r, req, &w.bodyv)
	req.RemoteAddr = c.remoteAddr
	w.req = req
	w.reqBody = req.Body
	w.cw.res = w
	c.ww.Reset(&w.cw)
	w.w = c.ww
	return w, nil
}

// closeWriteAndWait is net/http's: flush, send FIN, and give the client
// time to read the answer before the close resets it.
func (c *conn) closeWriteAndWait() {
	c.bufw.Flush()
	if tcp, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		tcp.CloseWrite()
	}
	time.Sleep(rstAvoidanceDelay)
}

const rstAvoidanceDelay = 500 * time.Millisecond

// setState records s for the drain and tells srv.ConnState.
func (c *conn) setState(s http.ConnState) {
	c.state.Store(int32(s))
	if hook := c.s.connState; hook != nil {
		hook(c.rwc, s)
	}
}

// hijack is net/http's hijackLocked.
func (c *conn) hijack() (net.Conn, *bufio.ReadWriter, error) {
	if c.hijacked {
		return nil, nil, http.ErrHijacked
	}
	c.cr.abortPendingRead()
	c.hijacked = true
	c.rwc.SetDeadline(time.Time{})
	if c.cr.hasByte {
		if _, err := c.br.Peek(c.br.Buffered() + 1); err != nil {
			return nil, nil, fmt.Errorf("unexpected Peek failure reading buffered byte: %v", err)
		}
	}
	c.bufw.Reset(c.rwc)
	buf := bufio.NewReadWriter(c.br, c.bufw)
	c.ww = nil
	c.setState(http.StateHijacked)
	return c.rwc, buf, nil
}

// handoff gives c, and the bytes read but not served, to net/http.
func (c *conn) handoff() {
	pending, _ := c.br.Peek(c.br.Buffered())
	rest := append([]byte(nil), pending...)
	if c.cr.hasByte {
		rest = append(rest, c.cr.byteBuf[0])
	}
	c.rwc.SetDeadline(time.Time{})
	c.release()
	c.s.handOff(newHandoffConn(c.rwc, rest))
}

// handoffConn is a connection handed to net/http: its reads return the
// bytes the fast path read first. It has CloseWrite where the connection
// has it (net/http half-closes before it closes on a request it refused),
// and ReadFrom only where the connection has it, since net/http frames a
// response copied with io.Copy differently with and without.
type handoffConn struct {
	net.Conn
	pending []byte
}

type handoffReaderFrom struct{ *handoffConn }

func (h handoffReaderFrom) ReadFrom(r io.Reader) (int64, error) {
	return h.Conn.(io.ReaderFrom).ReadFrom(r)
}

func newHandoffConn(c net.Conn, pending []byte) net.Conn {
	h := &handoffConn{Conn: c, pending: pending}
	if _, ok := c.(io.ReaderFrom); ok {
		return handoffReaderFrom{h}
	}
	return h
}

// underlying is the connection a handed one wraps, for ConnState.
func underlying(c net.Conn) (net.Conn, bool) {
	switch h := c.(type) {
	case *handoffConn:
		return h.Conn, true
	case handoffReaderFrom:
		return h.Conn, true
	}
	return c, false
}

func (h *handoffConn) Read(p []byte) (int, error) {
	if len(h.pending) > 0 {
		n := copy(p, h.pending)
		h.pending = h.pending[n:]
		return n, nil
	}
	return h.Conn.Read(p)
}

func (h *handoffConn) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// connReader is net/http's: the reader under the connection's
// bufio.Reader, which can keep one read pending in the background to see
// the client go away, and sets the read deadlines.
type connReader struct {
	c   *conn // nil once the handler hijacked and returned
	rwc net.Conn

	mu       sync.Mutex
	cond     *sync.Cond
	hasByte  bool
	byteBuf  [1]byte
	inRead   bool
	aborted  bool
	eof      bool // the current body was read to its end
	watching bool // someone waits on the current request's end
}

func (cr *connReader) lock() {
	cr.mu.Lock()
	if cr.cond == nil {
		cr.cond = sync.NewCond(&cr.mu)
	}
}

func (cr *connReader) releaseConn() {
	cr.lock()
	cr.c = nil
	cr.mu.Unlock()
}

// bodyDone notes that the request body was read to its end; a watched
// request then starts the background read, as net/http does at once.
func (cr *connReader) bodyDone() {
	cr.lock()
	cr.eof = true
	start := cr.watching
	cr.mu.Unlock()
	if start {
		cr.startBackgroundRead()
	}
}

// watchClient is called when someone waits on the request's context or
// CloseNotify.
func (c *conn) watchClient() {
	cr := &c.cr
	cr.lock()
	start := !cr.watching && cr.eof
	cr.watching = true
	cr.mu.Unlock()
	if start {
		cr.startBackgroundRead()
	}
}

func (cr *connReader) startBackgroundRead() {
	cr.lock()
	defer cr.mu.Unlock()
	if cr.inRead || cr.hasByte || cr.c == nil {
		return
	}
	cr.inRead = true
	// The deadline goes (as net/http does); c.rdl says so again once
	// abortPendingRead, on the connection's goroutine, has ended the read.
	cr.rwc.SetReadDeadline(time.Time{})
	go cr.backgroundRead()
}

func (cr *connReader) backgroundRead() {
	n, err := cr.rwc.Read(cr.byteBuf[:])
	cr.lock()
	if n == 1 {
		cr.hasByte = true
	}
	if ne, ok := err.(net.Error); ok && cr.aborted && ne.Timeout() {
	} else if err != nil {
		cr.handleReadErrorLocked()
	}
	cr.aborted = false
	cr.inRead = false
	cr.mu.Unlock()
	cr.cond.Broadcast()
}

// abortPendingRead ends a background read at the end of a request, and
// resets the per-request watch.
func (cr *connReader) abortPendingRead() {
	cr.lock()
	defer cr.mu.Unlock()
	cr.eof, cr.watching = false, false
	if !cr.inRead {
		return
	}
	cr.aborted = true
	cr.rwc.SetReadDeadline(aLongTimeAgo)
	for cr.inRead {
		cr.cond.Wait()
	}
	cr.rwc.SetReadDeadline(time.Time{})
	if cr.c != nil {
		cr.c.rdl = time.Time{}
	}
}

func (cr *connReader) handleReadErrorLocked() {
	if cr.c == nil {
		return
	}
	cr.c.cancelRequest()
}

func (cr *connReader) Read(p []byte) (n int, err error) {
	cr.lock()
	c := cr.c
	if c == nil {
		cr.mu.Unlock()
		return cr.rwc.Read(p)
	}
	if cr.inRead {
		cr.mu.Unlock()
		if c.hijacked {
			panic("invalid Body.Read call. After hijacked, the original Request must not be used")
		}
		panic("invalid concurrent Body.Read call")
	}
	if len(p) == 0 {
		cr.mu.Unlock()
		return 0, nil
	}
	if cr.hasByte {
		p[0] = cr.byteBuf[0]
		cr.hasByte = false
		cr.mu.Unlock()
		return 1, nil
	}
	cr.inRead = true
	cr.mu.Unlock()
	c.armRead()
	n, err = cr.rwc.Read(p)
	cr.lock()
	cr.inRead = false
	if err != nil {
		cr.handleReadErrorLocked()
	}
	cr.mu.Unlock()
	cr.cond.Broadcast()
	return n, err
}

var _ io.Reader = (*connReader)(nil)
