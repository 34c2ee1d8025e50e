package wasihttp

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// bufferBeforeChunkingSize is net/http's: a response body up to this size
// whose handler returns gets a Content-Length; a longer one is chunked.
const bufferBeforeChunkingSize = 2048

// response is the fast path's http.ResponseWriter. It follows net/http's
// response and chunkWriter (server.go) step for step, so that headers,
// framing and connection reuse come out byte for byte the same; what
// differs is below it: one connection writer, no per-request goroutine,
// the request body's buffers reused, a cached Date.
type response struct {
	conn             *conn
	req              *http.Request
	reqBody          io.ReadCloser
	ctx              *requestContext
	wroteHeader      bool
	wants10KeepAlive bool
	wantsClose       bool

	writeContinueMu  sync.Mutex
	canWriteContinue atomic.Bool

	w  *bufio.Writer
	cw chunkWriter

	handlerHeader http.Header
	calledHeader  bool

	written       int64
	contentLength int64
	status        int

	closeAfterReply     bool
	fullDuplex          bool
	requestBodyLimitHit bool
	trailers            []string
	handlerDone         atomic.Bool

	// headerTime is when the header was written; headerAtFinish that it
	// was after the handler returned (then the connection idles from
	// then on, and needs no other reading of the clock).
	headerTime     time.Time
	headerAtFinish bool

	clenBuf   [10]byte
	statusBuf [3]byte

	lazyCloseNotifyMu    sync.Mutex
	closeNotifyCh        chan bool
	closeNotifyTriggered bool

	ctxv  requestContext
	bodyv body
}

// chunkWriter is net/http's: it finalises the header on the first write
// and frames the body in chunks when chunking.
type chunkWriter struct {
	res         *response
	header      http.Header
	wroteHeader bool
	chunking    bool
}

func (cw *chunkWriter) Write(p []byte) (n int, err error) {
	if !cw.wroteHeader {
		cw.writeHeader(p)
	}
	if cw.res.req.Method == "HEAD" {
		return len(p), nil
	}
	bw := cw.res.conn.bufw
	if cw.chunking {
		var hex [16]byte
		b := strconv.AppendInt(hex[:0], int64(len(p)), 16)
		b = append(b, '\r', '\n')
		if _, err = bw.Write(b); err != nil {
			cw.res.conn.rwc.Close()
			return
		}
	}
	n, err = bw.Write(p)
	if cw.chunking && err == nil {
		_, err = bw.Write(crlf)
	}
	if err != nil {
		cw.res.conn.rwc.Close()
	}
	return
}

func (cw *chunkWriter) flush() error {
	if !cw.wroteHeader {
		cw.writeHeader(nil)
	}
	return cw.res.conn.bufw.Flush()
}

func (cw *chunkWriter) close() {
	if !cw.wroteHeader {
		cw.writeHeader(nil)
	}
	if cw.chunking {
		bw := cw.res.conn.bufw
		bw.WriteString("0\r\n")
		if trailers := cw.res.finalTrailers(); trailers != nil {
			trailers.Write(bw)
		}
		bw.WriteString("\r\n")
	}
}

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
func (w *response) SetReadDeadline(deadline time.Time) error {
	return w.conn.setReadDeadlineExact(deadline)
}

func (w *response) SetWriteDeadline(deadline time.Time) error {
	return w.conn.setWriteDeadlineExact(deadline)
}

// EnableFullDuplex serves http.ResponseController.
func (w *response) EnableFullDuplex() error {
	w.fullDuplex = true
	return nil
}

func (w *response) finalTrailers() http.Header {
	var t http.Header
	for k, vv := range w.handlerHeader {
		if kk, found := strings.CutPrefix(k, http.TrailerPrefix); found {
			if t == nil {
				t = make(http.Header)
			}
			t[kk] = vv
		}
	}
	for _, k := range w.trailers {
		if t == nil {
			t = make(http.Header)
		}
		for _, v := range w.handlerHeader[k] {
			t.Add(k, v)
		}
	}
	return t
}

func (w *response) declareTrailer(k string) {
	k = http.CanonicalHeaderKey(k)
	if strings.HasPrefix(k, "If-") || badTrailer[k] {
		return // forbidden in a trailer (RFC 9110, section 6.5.1), as httpguts says
	}
	w.trailers = append(w.trailers, k)
}

// badTrailer is httpguts' list of fields a trailer may not carry.
var badTrailer = map[string]bool{
	"Authorization": true, "Cache-Control": true, "Connection": true, "Content-Encoding": true,
	"Content-Length": true, "Content-Range": true, "Content-Type": true, "Expect": true,
	"Host": true, "Keep-Alive": true, "Max-Forwards": true, "Pragma": true,
	"Proxy-Authenticate": true, "Proxy-Authorization": true, "Proxy-Connection": true,
	"Range": true, "Realm": true, "Te": true, "Trailer": true, "Transfer-Encoding": true,
	"Www-Authenticate": true,
}

// requestTooLarge is what net/http does when an http.MaxBytesReader over
// the request body hits its limit.
func (w *response) requestTooLarge() {
	w.closeAfterReply = true
	w.requestBodyLimitHit = true
	if !w.wroteHeader {
		w.Header().Set("Connection", "close")
	}
}

// checkMaxBytes notices an http.MaxBytesReader over the request body that
// hit its limit: net/http's tells its own ResponseWriter through an
// unexported method, which no other writer can have.
func (w *response) checkMaxBytes() {
	if !w.requestBodyLimitHit && maxBytesHit(w.req.Body, w) {
		w.requestTooLarge()
	}
}

func (w *response) disableWriteContinue() {
	if !w.canWriteContinue.Load() {
		return // nothing pending: a 100 Continue being written keeps it true until written
	}
	w.writeContinueMu.Lock()
	w.canWriteContinue.Store(false)
	w.writeContinueMu.Unlock()
}

type writerOnly struct{ io.Writer }

// ReadFrom is net/http's: sniff, then let the connection copy.
func (w *response) ReadFrom(src io.Reader) (n int64, err error) {
	buf := getCopyBuf()
	defer putCopyBuf(buf)
	rf := w.conn.rf
	if rf == nil {
		return io.CopyBuffer(writerOnly{w}, src, *buf)
	}
	if !w.cw.wroteHeader {
		n0, err := io.CopyBuffer(writerOnly{w}, io.LimitReader(src, sniffLen), *buf)
		n += n0
		if err != nil || n0 < sniffLen {
			return n, err
		}
	}
	w.w.Flush()
	w.cw.flush()
	if !w.cw.chunking && w.bodyAllowed() && w.req.Method != "HEAD" {
		w.conn.armWrite()
		n0, err := rf.ReadFrom(src)
		n += n0
		w.written += n0
		return n, err
	}
	n0, err := io.CopyBuffer(writerOnly{w}, src, *buf)
	n += n0
	return n, err
}

const sniffLen = 512

var copyBufPool = sync.Pool{New: func() any { return new([]byte) }}

func getCopyBuf() *[]byte {
	b := copyBufPool.Get().(*[]byte)
	if *b == nil {
		*b = make([]byte, 32<<10)
	}
	return b
}

func putCopyBuf(b *[]byte) { copyBufPool.Put(b) }

// Header makes the header map on first use: a handler that sets none
// costs no map (net/http makes one for every response; a nil map reads
// the same everywhere below).
func (w *response) Header() http.Header {
	if w.handlerHeader == nil {
		w.handlerHeader = make(http.Header)
	}
	if w.cw.header == nil && w.wroteHeader && !w.cw.wroteHeader {
		w.cw.header = w.handlerHeader.Clone()
	}
	w.calledHeader = true
	return w.handlerHeader
}

func checkWriteHeaderCode(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
}

// relevantCaller is the first caller outside net/http and this package,
// for the same log lines as net/http's.
func relevantCaller() runtime.Frame {
	pc := make([]uintptr, 16)
	n := runtime.Callers(1, pc)
	frames := runtime.CallersFrames(pc[:n])
	var frame runtime.Frame
	for {
		frame, more := frames.Next()
		if !strings.HasPrefix(frame.Function, "net/http.") && !strings.Contains(frame.Function, "/guest/wasihttp.") {
			return frame
		}
		if !more {
			break
		}
	}
	return frame
}

func (w *response) WriteHeader(code int) {
	if w.conn.hijacked {
		caller := relevantCaller()
		w.conn.s.logf("http: response.WriteHeader on hijacked connection from %s (%s:%d)", caller.Function, path.Base(caller.File), caller.Line)
		return
	}
	if w.wroteHeader {
		caller := relevantCaller()
		w.conn.s.logf("http: superfluous response.WriteHeader call from %s (%s:%d)", caller.Function, path.Base(caller.File), caller.Line)
		return
	}
	checkWriteHeaderCode(code)
	if code < 101 || code > 199 {
		w.disableWriteContinue()
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		writeStatusLine(w.conn.bufw, w.req.ProtoAtLeast(1, 1), code, w.statusBuf[:])
		writeSubset(w.conn.bufw, w.handlerHeader, excludedHeadersNoBody)
		w.conn.bufw.Write(crlf)
		w.conn.bufw.Flush()
		return
	}
	w.checkMaxBytes()
	w.wroteHeader = true
	w.status = code
	if w.calledHeader && w.cw.header == nil {
		w.cw.header = w.handlerHeader.Clone()
	}
	if cl := get(w.handlerHeader, "Content-Length"); cl != "" {
		v, err := strconv.ParseInt(cl, 10, 64)
		if err == nil && v >= 0 {
			w.contentLength = v
		} else {
			w.conn.s.logf("http: invalid Content-Length of %q", cl)
			w.handlerHeader.Del("Content-Length")
		}
	}
}

var (
	suppressedHeaders304    = []string{"Content-Type", "Content-Length", "Transfer-Encoding"}
	suppressedHeadersNoBody = []string{"Content-Length", "Transfer-Encoding"}
	excludedHeadersNoBody   = map[string]bool{"Content-Length": true, "Transfer-Encoding": true}
)

func suppressedHeaders(status int) []string {
	switch {
	case status == 304:
		return suppressedHeaders304
	case !bodyAllowedForStatus(status):
		return suppressedHeadersNoBody
	}
	return nil
}

func bodyAllowedForStatus(status int) bool {
	switch {
	case status >= 100 && status <= 199, status == 204, status == 304:
		return false
	}
	return true
}

// get is http.Header.Get for a key already canonical.
func get(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func has(h http.Header, key string) bool {
	_, ok := h[key]
	return ok
}

// extraHeader is net/http's: the headers the server adds.
type extraHeader struct {
	contentType      string
	connection       string
	transferEncoding string
	date             []byte
	contentLength    []byte
}

func (h *extraHeader) write(w *bufio.Writer) {
	if h.date != nil {
		w.WriteString("Date: ")
		w.Write(h.date)
		w.Write(crlf)
	}
	if h.contentLength != nil {
		w.WriteString("Content-Length: ")
		w.Write(h.contentLength)
		w.Write(crlf)
	}
	for i, v := range [3]string{h.contentType, h.connection, h.transferEncoding} {
		if v != "" {
			w.WriteString([3]string{"Content-Type", "Connection", "Transfer-Encoding"}[i])
			w.WriteString(": ")
			w.WriteString(v)
			w.Write(crlf)
		}
	}
}

// writeHeader is net/http's chunkWriter.writeHeader: it decides the
// framing (Content-Length, chunked, close), sniffs a Content-Type, adds
// Date, and writes the header to the connection's writer.
func (cw *chunkWriter) writeHeader(p []byte) {
	if cw.wroteHeader {
		return
	}
	cw.wroteHeader = true
	w := cw.res
	w.checkMaxBytes()
	keepAlivesEnabled := w.conn.s.doKeepAlives()
	isHEAD := w.req.Method == "HEAD"

	header := cw.header
	owned := header != nil
	if !owned {
		header = w.handlerHeader
	}
	var excludeHeader map[string]bool
	delHeader := func(key string) {
		if owned {
			header.Del(key)
			return
		}
		if _, ok := header[key]; !ok {
			return
		}
		if excludeHeader == nil {
			excludeHeader = make(map[string]bool)
		}
		excludeHeader[key] = true
	}
	var setHeader extraHeader

	trailers := false
	for k := range cw.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			if excludeHeader == nil {
				excludeHeader = make(map[string]bool)
			}
			excludeHeader[k] = true
			trailers = true
		}
	}
	for _, v := range cw.header["Trailer"] {
		trailers = true
		foreachHeaderElement(v, cw.res.declareTrailer)
	}

	te := get(header, "Transfer-Encoding")
	hasTE := te != ""

	if w.handlerDone.Load() && !trailers && !hasTE && bodyAllowedForStatus(w.status) && !has(header, "Content-Length") && (!isHEAD || len(p) > 0) {
		w.contentLength = int64(len(p))
		setHeader.contentLength = strconv.AppendInt(cw.res.clenBuf[:0], int64(len(p)), 10)
	}

	if w.wants10KeepAlive && keepAlivesEnabled {
		sentLength := get(header, "Content-Length") != ""
		if sentLength && get(header, "Connection") == "keep-alive" {
			w.closeAfterReply = false
		}
	}

	hasCL := w.contentLength != -1

	if w.wants10KeepAlive && (isHEAD || hasCL || !bodyAllowedForStatus(w.status)) {
		if _, set := header["Connection"]; !set {
			setHeader.connection = "keep-alive"
		}
	} else if !w.req.ProtoAtLeast(1, 1) || w.wantsClose {
		w.closeAfterReply = true
	}

	if get(header, "Connection") == "close" || !keepAlivesEnabled {
		w.closeAfterReply = true
	}

	if ecr, ok := w.req.Body.(*expectContinueReader); ok && !ecr.sawEOF.Load() {
		w.closeAfterReply = true
	}

	if w.req.ContentLength != 0 && !w.closeAfterReply && !w.fullDuplex {
		var discard, tooBig bool
		switch bdy := w.req.Body.(type) {
		case *expectContinueReader:
		case *body:
			bdy.mu.Lock()
			switch {
			case bdy.closed:
				if !bdy.sawEOF {
					w.closeAfterReply = true
				}
			case bdy.unreadDataSizeLocked() >= maxPostHandlerReadBytes:
				tooBig = true
			default:
				discard = true
			}
			bdy.mu.Unlock()
		default:
			discard = true
		}
		if discard {
			_, err := io.CopyN(io.Discard, w.reqBody, maxPostHandlerReadBytes+1)
			switch err {
			case nil:
				tooBig = true
			case http.ErrBodyReadAfterClose:
			case io.EOF:
				if err := w.reqBody.Close(); err != nil {
					w.closeAfterReply = true
				}
			default:
				w.closeAfterReply = true
			}
		}
		if tooBig {
			w.requestTooLarge()
			delHeader("Connection")
			setHeader.connection = "close"
		}
	}

	code := w.status
	if bodyAllowedForStatus(code) {
		_, haveType := header["Content-Type"]
		hasCE := len(get(header, "Content-Encoding")) > 0
		if !hasCE && !haveType && !hasTE && len(p) > 0 {
			setHeader.contentType = http.DetectContentType(p)
		}
	} else {
		for _, k := range suppressedHeaders(code) {
			delHeader(k)
		}
	}

	w.headerTime = time.Now()
	w.headerAtFinish = w.handlerDone.Load()
	if !has(header, "Date") {
		setHeader.date = w.conn.s.date(w.headerTime)
	}

	if hasCL && hasTE && te != "identity" {
		w.conn.s.logf("http: WriteHeader called with both Transfer-Encoding of %q and a Content-Length of %d",
			te, w.contentLength)
		delHeader("Content-Length")
		hasCL = false
	}

	if w.req.Method == "HEAD" || !bodyAllowedForStatus(code) || code == http.StatusNoContent {
		delHeader("Transfer-Encoding")
	} else if hasCL {
		delHeader("Transfer-Encoding")
	} else if w.req.ProtoAtLeast(1, 1) {
		if hasTE && te == "identity" {
			cw.chunking = false
			w.closeAfterReply = true
			delHeader("Transfer-Encoding")
		} else {
			cw.chunking = true
			setHeader.transferEncoding = "chunked"
			if hasTE && te == "chunked" {
				delHeader("Transfer-Encoding")
			}
		}
	} else {
		w.closeAfterReply = true
		delHeader("Transfer-Encoding")
	}

	if cw.chunking {
		delHeader("Content-Length")
	}
	if !w.req.ProtoAtLeast(1, 0) {
		return
	}

	delConnectionHeader := w.closeAfterReply &&
		(!keepAlivesEnabled || !hasToken(get(cw.header, "Connection"), "close")) &&
		!isProtocolSwitchResponse(w.status, header)
	if delConnectionHeader {
		delHeader("Connection")
		if w.req.ProtoAtLeast(1, 1) {
			setHeader.connection = "close"
		}
	}

	bw := w.conn.bufw
	writeStatusLine(bw, w.req.ProtoAtLeast(1, 1), code, w.statusBuf[:])
	writeSubset(bw, cw.header, excludeHeader)
	setHeader.write(bw)
	bw.Write(crlf)
}

// writeSubset is http.Header.WriteSubset: the fields of h not in
// exclude, sorted by name, those with invalid names left out, CR and LF
// in values turned into spaces and the values trimmed; without its pool,
// sort and replacer for the few fields of a response.
func writeSubset(bw *bufio.Writer, h http.Header, exclude map[string]bool) {
	var small [8]string
	keys := small[:0]
	for k := range h {
		if !exclude[k] && validFieldName(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			if strings.ContainsAny(v, "\r\n") {
				v = headerNewlineToSpace.Replace(v)
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(trimASCIISpace(v))
			bw.Write(crlf)
		}
	}
}

var headerNewlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

// validFieldName is httpguts.ValidHeaderFieldName.
func validFieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !tokenTable[k[i]] {
			return false
		}
	}
	return true
}

func isProtocolSwitchResponse(code int, h http.Header) bool {
	return code == http.StatusSwitchingProtocols && h.Get("Upgrade") != "" &&
		headerValuesContainToken(h["Connection"], "Upgrade")
}

func foreachHeaderElement(v string, fn func(string)) {
	v = trimASCIISpace(v)
	if v == "" {
		return
	}
	if !strings.Contains(v, ",") {
		fn(v)
		return
	}
	for f := range strings.SplitSeq(v, ",") {
		if f = trimASCIISpace(f); f != "" {
			fn(f)
		}
	}
}

// trimASCIISpace is textproto.TrimString.
func trimASCIISpace(s string) string {
	isSpace := func(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// statusLines holds "HTTP/1.1 200 OK\r\n" and the like, built once.
var statusLines = func() (m [2][600]string) {
	for code := 100; code < 600; code++ {
		if text := http.StatusText(code); text != "" {
			m[0][code] = "HTTP/1.0 " + strconv.Itoa(code) + " " + text + "\r\n"
			m[1][code] = "HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\n"
		}
	}
	return m
}()

func writeStatusLine(bw *bufio.Writer, is11 bool, code int, _ []byte) {
	v := 0
	if is11 {
		v = 1
	}
	if code < 600 {
		if line := statusLines[v][code]; line != "" {
			bw.WriteString(line)
			return
		}
	}
	bw.WriteString([2]string{"HTTP/1.0 ", "HTTP/1.1 "}[v])
	fmt.Fprintf(bw, "%03d status code %d\r\n", code, code)
}

func (w *response) bodyAllowed() bool {
	if !w.wroteHeader {
		panic("net/http: bodyAllowed called before the header was written")
	}
	return bodyAllowedForStatus(w.status)
}

func (w *response) Write(data []byte) (int, error) { return w.write(len(data), data, "") }

func (w *response) WriteString(data string) (int, error) { return w.write(len(data), nil, data) }

func (w *response) write(lenData int, dataB []byte, dataS string) (n int, err error) {
	if w.conn.hijacked {
		if lenData > 0 {
			caller := relevantCaller()
			w.conn.s.logf("http: response.Write on hijacked connection from %s (%s:%d)", caller.Function, path.Base(caller.File), caller.Line)
		}
		return 0, http.ErrHijacked
	}
	if w.canWriteContinue.Load() {
		w.disableWriteContinue()
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if lenData == 0 {
		return 0, nil
	}
	if !w.bodyAllowed() {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(lenData)
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if dataB != nil {
		return w.w.Write(dataB)
	}
	return w.w.WriteString(dataS)
}

func (w *response) finishRequest() {
	w.handlerDone.Store(true)
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.w.Flush()
	w.cw.close()
	w.conn.bufw.Flush()
	w.conn.cr.abortPendingRead()
	w.reqBody.Close()
	if w.req.MultipartForm != nil {
		w.req.MultipartForm.RemoveAll()
	}
}

func (w *response) shouldReuseConnection() bool {
	if w.closeAfterReply {
		return false
	}
	if w.req.Method != "HEAD" && w.contentLength != -1 && w.bodyAllowed() && w.contentLength != w.written {
		return false
	}
	if w.conn.werr != nil {
		return false
	}
	return !w.closedRequestBodyEarly()
}

func (w *response) closedRequestBodyEarly() bool {
	b, ok := w.req.Body.(*body)
	return ok && b.didEarlyClose()
}

func (w *response) Flush() { w.FlushError() }

// FlushError serves http.ResponseController.Flush.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	err := w.w.Flush()
	e2 := w.cw.flush()
	if err == nil {
		err = e2
	}
	return err
}

func (w *response) sendExpectationFailed() {
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusExpectationFailed)
	w.finishRequest()
}

// Hijack implements http.Hijacker as net/http's: the connection, with
// what was read and not yet consumed, and the deadlines net/http would
// have set.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.handlerDone.Load() {
		panic("net/http: Hijack called after ServeHTTP finished")
	}
	w.disableWriteContinue()
	if w.wroteHeader {
		w.cw.flush()
	}
	rwc, buf, err := w.conn.hijack()
	if err == nil {
		w.w = nil
	}
	return rwc, buf, err
}

// CloseNotify implements http.CloseNotifier.
func (w *response) CloseNotify() <-chan bool {
	w.lazyCloseNotifyMu.Lock()
	if w.handlerDone.Load() {
		w.lazyCloseNotifyMu.Unlock()
		panic("net/http: CloseNotify called after ServeHTTP finished")
	}
	first := w.closeNotifyCh == nil
	if first {
		w.closeNotifyCh = make(chan bool, 1)
		if w.closeNotifyTriggered {
			w.closeNotifyCh <- true
		}
	}
	ch := w.closeNotifyCh
	w.lazyCloseNotifyMu.Unlock()
	if first {
		w.conn.watchClient()
	}
	return ch
}

func (w *response) closeNotify() {
	w.lazyCloseNotifyMu.Lock()
	defer w.lazyCloseNotifyMu.Unlock()
	if w.closeNotifyTriggered {
		return
	}
	w.closeNotifyTriggered = true
	if w.closeNotifyCh != nil {
		w.closeNotifyCh <- true
	}
}
