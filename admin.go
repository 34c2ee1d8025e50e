package wasiserve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/wasiserve/wasiserve/hostharness/supervise"
	"github.com/wasiserve/wasiserve/internal/metrics"
)

// The admin listener's bounds: every client of it is untrusted, and none
// may hold the host's file descriptors or time (the guest's connections
// share the process's descriptor limit).
const (
	// AdminMaxConns bounds the admin listener's open connections; when a
	// new one comes at the bound, the oldest that is not in a request is
	// closed, and with none such the new one is.
	AdminMaxConns = 64
	// AdminIdleTimeout closes an admin keep-alive connection idle so long.
	AdminIdleTimeout = 30 * time.Second
	// adminReadHeaderTimeout, adminReadTimeout and adminWriteTimeout bound
	// one admin request's reading and answering.
	adminReadHeaderTimeout = 5 * time.Second
	adminReadTimeout       = 10 * time.Second
	adminWriteTimeout      = 10 * time.Second
	adminMaxHeaderBytes    = 8 << 10
	// AdminBusyGrace is how long an admin connection may be in one
	// request before a new connection at AdminMaxConns may close it;
	// adminNewGrace how long a new one has to send its request.
	AdminBusyGrace = time.Second
	adminNewGrace  = 100 * time.Millisecond
	// MinScrapeInterval is the least time between two gathers of the
	// metrics: the scrapes that come meanwhile share the next gather, so
	// that a flood of them costs the host at most one gather per interval.
	MinScrapeInterval = 100 * time.Millisecond
)

// listenAdmin binds the admin address, if any, before anything slow
// starts, so that a port in use fails at once.
func listenAdmin(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &OptionError{Option: "AdminAddr", Err: err}
	}
	return ln, nil
}

// startReloads starts the reloads on request (Reload, Watch); the
// returned function stops them and waits.
func (s *Server) startReloads(ctx context.Context, rl *reloader) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	requests, err := reloadRequests(ctx, s.log, s.reloads, rl.path, s.opts.Watch)
	if err != nil {
		cancel()
		return nil, &OptionError{Option: "Watch", Value: rl.path, Err: err}
	}
	var wg sync.WaitGroup
	wg.Go(func() { rl.run(ctx, requests) })
	return func() {
		cancel()
		wg.Wait()
	}, nil
}

// Readiness says whether the server is ready for requests, as the admin
// listener's /readyz does: every instance is running and the server is
// not stopping. Otherwise reason says why not in a few words: "starting"
// (the guest loads or its instances start), "draining" (Run's ctx is
// done: the shutdown delay, then the drain), or which instance is not
// running (it restarts, or exited). A reload is ready throughout, as the
// old guest serves until the new one does.
func (s *Server) Readiness() (ready bool, reason string) {
	switch {
	case s.stopping.Load():
		return false, "draining"
	case !s.served.Load():
		return false, "starting"
	}
	st := s.Stats()
	for _, in := range st.Instances {
		if in.Running == 0 {
			return false, fmt.Sprintf("instance %d of %d not running", in.Index, len(st.Instances))
		}
	}
	if st.Draining {
		return false, "draining"
	}
	return true, "ok"
}

// serveAdmin serves the admin listener ln until the returned function is
// called, which closes it and waits: /metrics, /livez (200 while the host
// runs) and /readyz (Readiness).
func (s *Server) serveAdmin(ln net.Listener) (stop func()) {
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		s.log.Warn("the admin listener is reachable from other hosts and has no authentication: bind 127.0.0.1 or a private address, or firewall it",
			"at", ln.Addr().String())
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", newScraper(metrics.NewRegistry(serverSource{s}), MinScrapeInterval))
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) { plain(w, http.StatusOK, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if ok, reason := s.Readiness(); !ok {
			plain(w, http.StatusServiceUnavailable, reason)
			return
		}
		plain(w, http.StatusOK, "ok")
	})
	capped := newConnCap(ln, AdminMaxConns)
	srv := &http.Server{Handler: mux, ConnState: capped.track,
		ReadHeaderTimeout: adminReadHeaderTimeout, ReadTimeout: adminReadTimeout, WriteTimeout: adminWriteTimeout,
		IdleTimeout: AdminIdleTimeout, MaxHeaderBytes: adminMaxHeaderBytes,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	s.log.Info("serving metrics", "at", "http://"+ln.Addr().String()+"/metrics", "health", "/livez /readyz")
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(capped); !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("admin server stopped", "err", err)
		}
	})
	return func() {
		srv.Close()
		wg.Wait()
	}
}

// plain answers a one-line text body, never cached.
func plain(w http.ResponseWriter, code int, line string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintln(w, line)
}

// serverSource is a Server as the metrics collector reads it.
type serverSource struct{ s *Server }

// Stats implements metrics.Source.
func (m serverSource) Stats() supervise.Stats { return m.s.Stats() }

// Build implements metrics.Source: before the guest is loaded, it has no
// hash.
func (m serverSource) Build() metrics.Build {
	m.s.mu.Lock()
	rl := m.s.rl
	m.s.mu.Unlock()
	if rl == nil {
		return metrics.Build{Engine: m.s.r.kind.Name, Guest: m.s.guest}
	}
	return rl.Build()
}

// scraper answers /metrics in the Prometheus text format from gathers
// that run one at a time, at least interval apart; each answer comes from
// a gather begun after its request came, and the requests that come
// while one waits share it.
type scraper struct {
	reg      prometheus.Gatherer
	interval time.Duration

	mu   sync.Mutex
	next *gather // the gather that requests coming now share; nil: none yet

	gathering sync.Mutex // held by the gather that runs
	last      time.Time  // when the last gather ended (under gathering)
}

// gather is one gather's result, set before done closes.
type gather struct {
	done chan struct{}
	body []byte
	err  error
}

// newScraper is a scraper of reg whose gathers are at least interval apart.
func newScraper(reg prometheus.Gatherer, interval time.Duration) *scraper {
	return &scraper{reg: reg, interval: interval}
}

// ServeHTTP joins the next gather (starting one if none is pending),
// waits for it or for the client to go, and answers its result.
func (s *scraper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	g := s.next
	if g == nil {
		g = &gather{done: make(chan struct{})}
		s.next = g
		go s.run(g)
	}
	s.mu.Unlock()
	select {
	case <-g.done:
	case <-r.Context().Done():
		return
	}
	if g.err != nil {
		plain(w, http.StatusInternalServerError, "gathering the metrics: "+g.err.Error())
		return
	}
	w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	w.Header().Set("Cache-Control", "no-store")
	w.Write(g.body)
}

// run waits for its turn and the interval, then gathers for g and every
// request that joined it meanwhile.
func (s *scraper) run(g *gather) {
	s.gathering.Lock()
	defer s.gathering.Unlock()
	if wait := time.Until(s.last.Add(s.interval)); wait > 0 {
		time.Sleep(wait)
	}
	s.mu.Lock()
	s.next = nil // requests from now on are after this gather began
	s.mu.Unlock()
	g.body, g.err = s.encode()
	s.last = time.Now()
	close(g.done)
}

// encode gathers the metrics and encodes them in the text format.
func (s *scraper) encode() ([]byte, error) {
	families, err := s.reg.Gather()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// connCap is a listener of at most max open connections, whose states
// track records: when a connection comes at the bound, the oldest idle
// keep-alive one is closed for it; with none, the oldest of those new
// for longer than adminNewGrace (a client that sends nothing holds its
// connection until the header timeout) or in a request for longer than
// AdminBusyGrace (one that never reads its answers holds its request
// until the write timeout); and without one either, it is closed itself.
// Neither idle clients nor ones that hold connections or requests open
// can keep every slot, while a new connection has adminNewGrace to send
// its request and a request AdminBusyGrace to be answered before another
// may take its slot.
type connCap struct {
	net.Listener
	max int

	mu    sync.Mutex
	conns map[net.Conn]*capped
	seq   uint64
}

// capped is a connection's state (new, active: in a request, or idle
// between keep-alive requests); seq orders the connections by the time
// they last changed state, since is when they did.
type capped struct {
	state http.ConnState
	seq   uint64
	since time.Time
}

// evictable reports whether another connection may take st's slot at
// now, and whether st is idle.
func (st *capped) evictable(now time.Time) (ok, idle bool) {
	switch st.state {
	case http.StateIdle:
		return true, true
	case http.StateNew:
		return now.Sub(st.since) > adminNewGrace, false
	}
	return now.Sub(st.since) > AdminBusyGrace, false
}

func newConnCap(ln net.Listener, max int) *connCap {
	return &connCap{Listener: ln, max: max, conns: map[net.Conn]*capped{}}
}

// Accept returns the next connection given a slot.
func (l *connCap) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.admit(c) {
			return c, nil
		}
		c.Close() // every slot is within its grace
	}
}

// admit gives c a slot, closing another connection when there is none
// free (see connCap); it reports false when none may be closed.
func (l *connCap) admit(c net.Conn) bool {
	l.mu.Lock()
	now := time.Now()
	var victim net.Conn
	if len(l.conns) >= l.max {
		var idle, busy *capped
		var idleConn, busyConn net.Conn
		for conn, st := range l.conns {
			ok, isIdle := st.evictable(now)
			switch {
			case isIdle && (idle == nil || st.seq < idle.seq):
				idleConn, idle = conn, st
			case ok && !isIdle && (busy == nil || st.seq < busy.seq):
				busyConn, busy = conn, st
			}
		}
		victim = idleConn
		if victim == nil {
			victim = busyConn
		}
		if victim == nil {
			l.mu.Unlock()
			return false
		}
		delete(l.conns, victim)
	}
	l.seq++
	l.conns[c] = &capped{state: http.StateNew, seq: l.seq, since: now}
	l.mu.Unlock()
	if victim != nil {
		victim.Close()
	}
	return true
}

// track is the http.Server's ConnState hook.
func (l *connCap) track(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st, ok := l.conns[c]
	switch {
	case state == http.StateClosed || state == http.StateHijacked:
		delete(l.conns, c)
	case !ok: // closed for another one already
	case state == http.StateActive, state == http.StateIdle:
		l.seq++
		st.state, st.seq, st.since = state, l.seq, time.Now()
	}
}
