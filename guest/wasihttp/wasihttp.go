// Package wasihttp serves an http.Server on a listener from
// wasisock.Listen so that a host's drain or reload loses no request.
//
// A WASI host stops a guest gracefully by stopping its listener: the
// guest's accepts then fail with an error for which wasisock.Drained is
// true. http.Server.Shutdown alone is not enough to finish then: it drops
// every request it reads once it began (the connection closes unanswered)
// and closes idle keep-alive connections at once, so a request already on
// its way is lost. Serve answers those first.
//
//	ln, _, err := wasisock.Listen(wasisock.Config{})
//	if err != nil {
//		log.Fatal(err)
//	}
//	if err := wasihttp.Serve(&http.Server{Handler: h}, ln); err != nil {
//		log.Fatal(err)
//	}
//
// The same code serves natively, where ServeContext also drains when its
// context ends (a signal, say).
//
// # The fast path
//
// By default Serve answers HTTP/1.1 (and 1.0) itself instead of through
// http.Server.Serve: a Go guest on wasm pays for every Go instruction a
// request runs (Go's wasm code generation, golang/go#65440), and
// net/http's server runs many per request: a goroutine to watch the
// client, two contexts, five deadline changes and a dozen clock reads,
// two layers of write buffers, a header map cloned. The fast path gives
// the handler the same *http.Request and an http.ResponseWriter that
// follows net/http's response code step for step (Content-Length or
// chunked, sniffed Content-Type, HEAD, 1xx, 100-continue, trailers,
// Flush, Hijack, CloseNotify, full duplex and deadlines through
// http.ResponseController, what is read of an unread body, when the
// connection closes), so that the bytes on the wire are net/http's,
// Date aside; per connection it keeps one goroutine, one read buffer and
// one write buffer, reads the clock about twice a request, and formats
// Date once a second. WithNetHTTP turns it off.
//
// It parses a plain, strict subset of HTTP/1.x and hands the connection,
// with the bytes read so far, to net/http's own server (srv.Serve on an
// internal listener, so srv's ConnState, limits and HTTP/2 settings
// apply) for anything else: h2c (prior knowledge), Upgrade, CONNECT,
// OPTIONS *, absolute-form targets, any malformed or ambiguous request
// (its error answer is then net/http's own), Transfer-Encoding other than
// one "chunked", several Content-Length, a Trailer declaration, an
// Expect other than 100-continue, a head over 4 KiB (net/http applies
// MaxHeaderBytes), TLS connections, and servers whose Protocols leave
// HTTP/1 out. Once handed over, a connection stays with net/http.
//
// Where it differs from net/http, by design:
//   - ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout cut a
//     connection as there, but a deadline may fire up to a 16th of its
//     timeout (at most 500 ms) later, so that it is not set again for
//     every request.
//   - A request's context is cancelled when the client goes away only
//     once something waits on it (Done, Err, a derived context,
//     CloseNotify): net/http watches every request with a goroutine.
//   - srv.SetKeepAlivesEnabled is not seen by the fast path, and
//     srv.Close lets its requests in flight finish (as Shutdown does).
//   - An http.MaxBytesReader over the request body is noticed when it was
//     made for the handler's own ResponseWriter (as net/http's).
//   - A connection that sends the HTTP/2 preface after HTTP/1 requests
//     gets net/http's h2c server, when srv allows h2c.
package wasihttp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasiserve/wasiserve/guest/wasisock"
)

// DrainTimeout bounds how long Serve waits for the requests in flight once
// told to stop; the host bounds it too (hostharness serve's
// --drain-timeout) and stops a guest that takes longer.
const DrainTimeout = 30 * time.Second

// Serve serves srv on ln until the host stops ln (a drain or a reload),
// then finishes every request the server has (see Drainer) and returns
// nil. Any other end of serving is returned as an error. srv's ConnState
// and Handler are wrapped (see NewDrainer).
//
// HTTP/1.1 is served by the fast path (see the package documentation)
// unless WithNetHTTP is given.
func Serve(srv *http.Server, ln net.Listener, opts ...Option) error {
	return ServeContext(context.Background(), srv, ln, opts...)
}

// ServeContext is Serve that also drains, and returns nil, when ctx is
// done: natively, a context that a signal cancels. On wasip1 no signal
// reaches the guest; the host drains it by stopping ln. The start of a
// drain is logged to srv.ErrorLog, when set.
func ServeContext(ctx context.Context, srv *http.Server, ln net.Listener, opts ...Option) error {
	cfg := newConfig(opts)
	var (
		d     *Drainer
		fast  *server
		serve func() error
	)
	if cfg.netHTTP || !usesFastPath(srv) {
		d = NewDrainer(srv)
		serve = func() error { return srv.Serve(ln) }
	} else {
		fast = newServer(srv, ln)
		d = fast.drainer
		serve = func() error { return fast.serve(ln) }
	}
	drain := func(reason string) error {
		err := d.drain(reason)
		if fast != nil {
			wctx, cancel := context.WithTimeout(context.Background(), DrainTimeout)
			defer cancel()
			if werr := fast.wait(wctx); werr != nil && err == nil {
				err = fmt.Errorf("drain: %w", werr)
			}
		}
		return err
	}
	drained := make(chan error, 1)
	stop := context.AfterFunc(ctx, func() {
		drained <- drain(fmt.Sprint(context.Cause(ctx)))
	})
	err := serve()
	switch {
	case wasisock.Drained(err):
		if !stop() { // ctx ended too: its drain is under way
			return <-drained
		}
		return drain("listener stopped by the host")
	case errors.Is(err, http.ErrServerClosed) && !stop():
		return <-drained
	default:
		stop()
		return fmt.Errorf("serve: %w", err)
	}
}

// logf logs to srv.ErrorLog, if it is set.
func logf(srv *http.Server, format string, args ...any) {
	if srv.ErrorLog != nil {
		srv.ErrorLog.Printf(format, args...)
	}
}

// Bounds on how long Drainer.Shutdown waits before it shuts the server
// down: for new and busy connections, and for idle keep-alive ones.
const (
	busyGrace = 5 * time.Second
	idleGrace = time.Second
)

// Drainer stops an http.Server without losing a request that reached it:
// see Shutdown. Serve uses one; a guest that runs its server itself may
// too.
type Drainer struct {
	srv      *http.Server
	draining atomic.Bool
	mu       sync.Mutex
	states   map[net.Conn]http.ConnState
	// more counts connections that srv does not serve itself (the fast
	// path's), or is nil.
	more func() (busy, idle int)
}

// NewDrainer tracks srv's connections (it wraps srv.ConnState and
// srv.Handler); call it before srv serves.
func NewDrainer(srv *http.Server) *Drainer {
	d := newDrainer(srv, nil)
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		d.track(c, s)
		if prev != nil {
			prev(c, s)
		}
	}
	return d
}

// newDrainer wraps srv.Handler only; the caller feeds track.
func newDrainer(srv *http.Server, more func() (busy, idle int)) *Drainer {
	d := &Drainer{srv: srv, states: map[net.Conn]http.ConnState{}, more: more}
	h := srv.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.draining.Load() {
			w.Header().Set("Connection", "close") // the server closes it after this answer
		}
		h.ServeHTTP(w, r)
	})
	return d
}

// track records that c is in state s.
func (d *Drainer) track(c net.Conn, s http.ConnState) {
	d.mu.Lock()
	if s == http.StateClosed || s == http.StateHijacked {
		delete(d.states, c)
	} else {
		d.states[c] = s
	}
	d.mu.Unlock()
}

// Shutdown answers every further request with "Connection: close", waits
// until no connection is new or busy (at most busyGrace) and no keep-alive
// connection is idle (at most idleGrace), so that each request the server
// has is read and answered, then shuts the server down as
// http.Server.Shutdown does.
func (d *Drainer) Shutdown(ctx context.Context) error {
	d.draining.Store(true)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for {
		busy, idle := d.count()
		waited := time.Since(start)
		if (busy == 0 || waited > busyGrace) && (idle == 0 || waited > idleGrace) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return d.srv.Shutdown(ctx)
}

// drain is Shutdown bounded by DrainTimeout, logged with its reason once
// every further request is answered with "Connection: close".
func (d *Drainer) drain(reason string) error {
	d.draining.Store(true)
	logf(d.srv, "wasihttp: %s: finishing requests in flight", reason)
	ctx, cancel := context.WithTimeout(context.Background(), DrainTimeout)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	return nil
}

// count returns the number of connections that are new (their request
// not read yet) or active, and of those idle.
func (d *Drainer) count() (busy, idle int) {
	if d.more != nil {
		busy, idle = d.more()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.states {
		if s == http.StateIdle {
			idle++
		} else {
			busy++
		}
	}
	return busy, idle
}
