package compare

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// runRaw runs a raw case: it opens c.Connections connections to addr at
// once and runs the exchange on each, then checks the server still serves.
func runRaw(ctx context.Context, c *Case, addr string) Observation {
	deadline := time.Now().Add(c.timeout())
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	dialer := &net.Dialer{Deadline: deadline}
	n := atLeastOne(c.Connections)
	conns := make([]net.Conn, n)
	var obs Observation
	for i := range conns {
		conn, err := dialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			obs.Errors = append(obs.Errors, "dial: "+errClass(err))
			closeAll(conns)
			return obs
		}
		conn.SetDeadline(deadline)
		if c.ReadBuffer > 0 {
			conn.(*net.TCPConn).SetReadBuffer(c.ReadBuffer)
		}
		conns[i] = conn
	}
	stop := context.AfterFunc(ctx, func() { closeAll(conns) })
	defer stop()
	results := make([]Observation, n)
	var wg sync.WaitGroup
	for i, conn := range conns {
		wg.Go(func() {
			defer conn.Close()
			results[i] = exchange(c, conn)
		})
	}
	wg.Wait()
	for _, r := range results {
		obs.Responses = append(obs.Responses, r.Responses...)
		obs.Errors = append(obs.Errors, r.Errors...)
		if r.Close != "" {
			obs.Close = r.Close
		}
	}
	if c.ThenHealthz {
		obs.Healthz = healthz(ctx, addr, deadline)
	}
	return obs
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// exchange runs c's exchange c.Repeat times on conn. Each time it writes
// the head and body while reading the responses, since the echo service
// answers while the body is still arriving.
func exchange(c *Case, conn net.Conn) Observation {
	var obs Observation
	br := bufio.NewReader(conn)
	var slow func(io.Reader) io.Reader
	if c.ReadChunk > 0 {
		slow = func(r io.Reader) io.Reader {
			return &slowReader{r: r, chunk: c.ReadChunk, delay: time.Duration(c.ReadDelay)}
		}
	}
	for range atLeastOne(c.Repeat) {
		writeErr := make(chan error, 1)
		go func() { writeErr <- send(c, conn) }()
		if c.AbortAfter > 0 {
			// Abort mid-body: close once the partial request is out.
			<-writeErr
			conn.Close()
			return obs
		}
		for range atLeastOne(c.Responses) {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				obs.Errors = append(obs.Errors, "read response: "+errClass(err))
				conn.Close() // unblocks the writer
				<-writeErr
				return obs
			}
			obs.Responses = append(obs.Responses, readResponse(resp, slow))
		}
		// A server may answer (431, 400) before reading all it was sent and
		// close: a write error then is expected and timing-dependent, so
		// only the responses count.
		<-writeErr
	}
	if c.CheckClose {
		obs.Close = checkClose(conn, br)
	}
	return obs
}

// send writes c's head and body to conn, in WriteChunk pieces when set,
// stopping after AbortAfter body bytes when set; HalfClose then shuts the
// write side.
func send(c *Case, conn net.Conn) error {
	var w io.Writer = conn
	if c.WriteChunk > 0 {
		w = &chunkWriter{w: conn, chunk: c.WriteChunk, delay: time.Duration(c.WriteDelay)}
	}
	if _, err := w.Write(c.head); err != nil {
		return fmt.Errorf("write head: %w", err)
	}
	body := c.Body.Reader()
	if c.AbortAfter > 0 {
		body = io.LimitReader(body, c.AbortAfter)
	}
	if _, err := io.Copy(w, body); err != nil {
		return fmt.Errorf("write body: %w", err)
	}
	if c.HalfClose {
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			return fmt.Errorf("half-close: %w", err)
		}
	}
	return nil
}

// chunkWriter writes at most chunk bytes per Write call, delay apart.
type chunkWriter struct {
	w     io.Writer
	chunk int
	delay time.Duration
}

func (cw *chunkWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(cw.chunk, len(p))
		m, err := cw.w.Write(p[:n])
		written += m
		if err != nil {
			return written, err
		}
		p = p[n:]
		time.Sleep(cw.delay)
	}
	return written, nil
}

// closeWait bounds how long checkClose waits for the server's close;
// net/http sends its FIN as soon as the response is out.
const closeWait = 2 * time.Second

// checkClose waits up to closeWait for what follows the responses: "eof"
// when the server closes the connection.
func checkClose(conn net.Conn, br *bufio.Reader) string {
	conn.SetReadDeadline(time.Now().Add(closeWait))
	_, err := br.ReadByte()
	switch {
	case err == nil:
		return "data"
	case errors.Is(err, io.EOF):
		return "eof"
	default:
		return errClass(err)
	}
}

// healthz asks GET /healthz on a new connection.
func healthz(ctx context.Context, addr string, deadline time.Time) *Response {
	hc := &Case{Name: "healthz", Kind: KindRaw, head: []byte("GET /healthz HTTP/1.1\r\nHost: compare\r\nConnection: close\r\n\r\n")}
	conn, err := (&net.Dialer{Deadline: deadline}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return &Response{BodyErr: "dial: " + errClass(err)}
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	obs := exchange(hc, conn)
	if len(obs.Responses) != 1 {
		return &Response{BodyErr: fmt.Sprint(obs.Errors)}
	}
	return &obs.Responses[0]
}
