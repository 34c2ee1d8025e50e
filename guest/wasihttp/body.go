package wasihttp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"sync"
	"sync/atomic"
)

// maxPostHandlerReadBytes is net/http's: how much of a request body the
// server reads after the handler to keep the connection.
const maxPostHandlerReadBytes = 256 << 10

// body is a request body, with net/http's semantics (its type body in
// transfer.go): a declared length or chunked coding with trailers, an
// early EOF is io.ErrUnexpectedEOF, reads after Close fail, and Close
// reads up to maxPostHandlerReadBytes to keep the connection.
type body struct {
	src     io.Reader
	lr      io.LimitedReader // src, for a declared length
	req     *http.Request    // non-nil: chunked, read the trailer at EOF
	br      *bufio.Reader    // the connection's reader, for the trailer
	closing bool             // the connection closes after this request

	mu         sync.Mutex
	sawEOF     bool
	closed     bool
	earlyClose bool
	onHitEOF   func()
}

// newBody sets up b as req's body, or returns http.NoBody for a request
// without one, as net/http does.
func newBody(c *conn, r *request, req *http.Request, b *body) io.ReadCloser {
	switch {
	case r.chunked:
		b.src, b.req, b.br, b.closing = httputil.NewChunkedReader(c.br), req, c.br, req.Close
		return b
	case req.ContentLength > 0:
		b.br, b.closing = c.br, req.Close
		b.lr = io.LimitedReader{R: c.br, N: req.ContentLength}
		b.src = &b.lr
		return b
	}
	return http.NoBody
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.readLocked(p)
}

func (b *body) readLocked(p []byte) (n int, err error) {
	if b.sawEOF {
		return 0, io.EOF
	}
	n, err = b.src.Read(p)
	if err == io.EOF {
		b.sawEOF = true
		if b.req != nil {
			if e := b.readTrailer(); e != nil {
				err = e
				b.sawEOF = false
				b.closed = true
			}
			b.req = nil
		} else if b.lr.N > 0 {
			err = io.ErrUnexpectedEOF
		}
	}
	if err == nil && n > 0 && b.src == &b.lr && b.lr.N == 0 {
		err = io.EOF
		b.sawEOF = true
	}
	if b.sawEOF && b.onHitEOF != nil {
		b.onHitEOF()
	}
	return n, err
}

var errTrailerEOF = errors.New("http: unexpected EOF reading trailer")

// readTrailer is net/http's: the trailer of a chunked body, bounded by
// the reader's buffer.
func (b *body) readTrailer() error {
	buf, err := b.br.Peek(2)
	if bytes.Equal(buf, crlf) {
		b.br.Discard(2)
		return nil
	}
	if len(buf) < 2 {
		return errTrailerEOF
	}
	if err != nil {
		return err
	}
	if !seeUpcomingDoubleCRLF(b.br) {
		return errors.New("http: suspiciously long trailer after chunked body")
	}
	hdr, err := textproto.NewReader(b.br).ReadMIMEHeader()
	if err != nil {
		if err == io.EOF {
			return errTrailerEOF
		}
		return err
	}
	if b.req.Trailer == nil {
		b.req.Trailer = http.Header(hdr)
	} else {
		maps.Copy(b.req.Trailer, http.Header(hdr))
	}
	return nil
}

func seeUpcomingDoubleCRLF(r *bufio.Reader) bool {
	for peekSize := 4; ; peekSize++ {
		buf, err := r.Peek(peekSize)
		if bytes.HasSuffix(buf, []byte("\r\n\r\n")) {
			return true
		}
		if err != nil {
			return false
		}
	}
}

// unreadDataSizeLocked is the declared length not yet read, or -1.
func (b *body) unreadDataSizeLocked() int64 {
	if b.src == &b.lr {
		return b.lr.N
	}
	return -1
}

func (b *body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	var err error
	switch {
	case b.sawEOF:
	case b.req == nil && b.closing:
	default:
		if b.src == &b.lr && b.lr.N > maxPostHandlerReadBytes {
			b.earlyClose = true
		} else {
			var n int64
			n, err = io.CopyN(io.Discard, bodyLocked{b}, maxPostHandlerReadBytes)
			if err == io.EOF {
				err = nil
			}
			if n == maxPostHandlerReadBytes {
				b.earlyClose = true
			}
		}
	}
	b.closed = true
	return err
}

func (b *body) didEarlyClose() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.earlyClose
}

func (b *body) bodyRemains() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.sawEOF
}

func (b *body) registerOnHitEOF(fn func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onHitEOF = fn
}

type bodyLocked struct{ b *body }

func (bl bodyLocked) Read(p []byte) (int, error) {
	if bl.b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return bl.b.readLocked(p)
}

// expectContinueReader sends "100 Continue" before the first read of a
// body whose client asked for it, as net/http does.
type expectContinueReader struct {
	resp       *response
	readCloser io.ReadCloser
	closed     atomic.Bool
	sawEOF     atomic.Bool
}

func (ecr *expectContinueReader) Read(p []byte) (int, error) {
	if ecr.closed.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	w := ecr.resp
	if w.canWriteContinue.Load() {
		w.writeContinueMu.Lock()
		if w.canWriteContinue.Load() {
			w.conn.bufw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			w.conn.bufw.Flush()
			w.canWriteContinue.Store(false)
		}
		w.writeContinueMu.Unlock()
	}
	n, err := ecr.readCloser.Read(p)
	if err == io.EOF {
		ecr.sawEOF.Store(true)
	}
	return n, err
}

func (ecr *expectContinueReader) Close() error {
	ecr.closed.Store(true)
	return ecr.readCloser.Close()
}
