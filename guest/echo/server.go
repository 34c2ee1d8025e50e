package echo

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ServerConfig holds the http.Server limits of the echo service.
type ServerConfig struct {
	// ReadHeaderTimeout bounds how long a client may take to send headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds how long a client may take to send a whole
	// request, body included, so that a body trickled at 1 byte/s cannot
	// hold a connection (and the guest's memory for it) for ever.
	ReadTimeout time.Duration
	// WriteTimeout bounds how long a response may take, from the end of
	// the request's headers, against a client that reads it slowly.
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a keep-alive connection may sit idle.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers.
	MaxHeaderBytes int
}

// Environment variables read by ServerConfigFromEnv.
const (
	EnvReadHeaderTimeout = "ECHO_READ_HEADER_TIMEOUT"
	EnvReadTimeout       = "ECHO_READ_TIMEOUT"
	EnvWriteTimeout      = "ECHO_WRITE_TIMEOUT"
	EnvIdleTimeout       = "ECHO_IDLE_TIMEOUT"
	EnvMaxHeaderBytes    = "ECHO_MAX_HEADER_BYTES"
)

// DefaultServerConfig returns the limits used when the environment sets none.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    http.DefaultMaxHeaderBytes,
	}
}

// ServerConfigFromEnv returns DefaultServerConfig overridden by the
// ECHO_* variables that getenv reports. Durations use time.ParseDuration.
func ServerConfigFromEnv(getenv func(string) string) (ServerConfig, error) {
	cfg := DefaultServerConfig()
	durations := []struct {
		key string
		dst *time.Duration
	}{
		{EnvReadHeaderTimeout, &cfg.ReadHeaderTimeout},
		{EnvReadTimeout, &cfg.ReadTimeout},
		{EnvWriteTimeout, &cfg.WriteTimeout},
		{EnvIdleTimeout, &cfg.IdleTimeout},
	}
	for _, d := range durations {
		v := getenv(d.key)
		if v == "" {
			continue
		}
		parsed, err := time.ParseDuration(v)
		if err != nil || parsed <= 0 {
			return cfg, fmt.Errorf("%s=%q: want a positive duration such as 10s", d.key, v)
		}
		*d.dst = parsed
	}
	if v := getenv(EnvMaxHeaderBytes); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return cfg, fmt.Errorf("%s=%q: want a positive byte count", EnvMaxHeaderBytes, v)
		}
		cfg.MaxHeaderBytes = n
	}
	return cfg, nil
}

// NewServer returns an http.Server for handler with cfg's limits, serving
// HTTP/1.1 and unencrypted HTTP/2 (prior knowledge) alike.
func NewServer(handler http.Handler, cfg ServerConfig) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		Protocols:         &protocols,
	}
}

// Bounds on how long Drainer.Shutdown waits before it shuts the server
// down: for new and busy connections, and for idle keep-alive ones.
const (
	busyGrace = 5 * time.Second
	idleGrace = time.Second
)

// Drainer stops an http.Server without losing a request that reached it.
// http.Server.Shutdown alone drops every request it reads once it began
// (the connection closes unanswered, with a reset if the request had a
// body), and closes idle keep-alive connections at once: a connection
// accepted just before the listener was drained, whose request is not
// read yet, and a keep-alive connection whose next request is on its way,
// would lose theirs.
type Drainer struct {
	srv      *http.Server
	draining atomic.Bool
	mu       sync.Mutex
	states   map[net.Conn]http.ConnState
}

// NewDrainer tracks srv's connections (it wraps srv.ConnState and
// srv.Handler); call it before srv serves.
func NewDrainer(srv *http.Server) *Drainer {
	d := &Drainer{srv: srv, states: map[net.Conn]http.ConnState{}}
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		d.mu.Lock()
		if s == http.StateClosed || s == http.StateHijacked {
			delete(d.states, c)
		} else {
			d.states[c] = s
		}
		d.mu.Unlock()
		if prev != nil {
			prev(c, s)
		}
	}
	h := srv.Handler
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.draining.Load() {
			w.Header().Set("Connection", "close") // the server closes it after this answer
		}
		h.ServeHTTP(w, r)
	})
	return d
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

// count returns the number of connections that are new (their request
// not read yet) or active, and of those idle.
func (d *Drainer) count() (busy, idle int) {
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
