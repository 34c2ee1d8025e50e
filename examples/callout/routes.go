package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/wasiserve/wasiserve/guest/wasinet"
)

// Bounds of one route's work.
const (
	defaultTimeout = 10 * time.Second
	maxBody        = 1 << 20
	// deadlineProbe is the read deadline GET /tcp sets on a connection
	// that receives nothing.
	deadlineProbe = 200 * time.Millisecond
)

// service holds the clients the routes share, so that their connections
// are pooled across requests.
type service struct {
	client *http.Client
	db     *pgxpool.Pool // nil without DATABASE_URL
	redis  *redis.Client // nil without REDIS_URL
}

func (s *service) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("GET /fetch", route(s.fetch))
	mux.Handle("GET /pg", route(s.pg))
	mux.Handle("GET /redis", route(s.redisSetGet))
	mux.Handle("GET /tcp", route(tcpProbe))
	mux.Handle("GET /lookup", route(lookup))
	mux.Handle("GET /connect", route(connect))
	return mux
}

// route answers fn's result as JSON: 200 and the value, or 502 and
// {"error": ...} (400 for a bad request).
func route(fn func(ctx context.Context, r *http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		timeout := defaultTimeout
		if t := r.URL.Query().Get("timeout"); t != "" {
			d, err := time.ParseDuration(t)
			if err != nil || d <= 0 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("timeout %q: want a positive duration", t)})
				return
			}
			timeout = d
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		v, err := fn(ctx, r)
		var bad badRequest
		switch {
		case errors.As(err, &bad):
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		case err != nil:
			writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		default:
			writeJSON(w, http.StatusOK, v)
		}
	})
}

// badRequest is an error in the request's parameters.
type badRequest string

func (b badRequest) Error() string { return string(b) }

// param returns the query parameter name, which must be set.
func param(r *http.Request, name string) (string, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return "", badRequest("missing query parameter " + name)
	}
	return v, nil
}

// dialParam connects to the request's addr parameter.
func dialParam(ctx context.Context, r *http.Request) (net.Conn, string, error) {
	addr, err := param(r, "addr")
	if err != nil {
		return nil, "", err
	}
	c, err := wasinet.DialContext(ctx, "tcp", addr)
	return c, addr, err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// fetchResult is GET /fetch's answer: the upstream's status and body, and
// the connection the request went on.
type fetchResult struct {
	Status int    `json:"status"`
	Proto  string `json:"proto"`
	TLS    bool   `json:"tls"`
	Body   string `json:"body"`
	Reused bool   `json:"reused"`
	Local  string `json:"local"`
	Remote string `json:"remote"`
}

// fetch is GET /fetch?url=URL[&timeout=D]: one GET through the shared
// client.
func (s *service) fetch(ctx context.Context, r *http.Request) (any, error) {
	url, err := param(r, "url")
	if err != nil {
		return nil, err
	}
	var res fetchResult
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		res.Reused = info.Reused
		res.Local, res.Remote = info.Conn.LocalAddr().String(), info.Conn.RemoteAddr().String()
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, url, nil)
	if err != nil {
		return nil, badRequest(err.Error())
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("read the body of %s: %w", url, err)
	}
	res.Status, res.Proto, res.TLS, res.Body = resp.StatusCode, resp.Proto, resp.TLS != nil, string(body)
	return res, nil
}

// pg is GET /pg?a=N&b=M: one query on the pool.
func (s *service) pg(ctx context.Context, r *http.Request) (any, error) {
	if s.db == nil {
		return nil, badRequest("no DATABASE_URL")
	}
	a, errA := strconv.Atoi(r.URL.Query().Get("a"))
	b, errB := strconv.Atoi(r.URL.Query().Get("b"))
	if errA != nil || errB != nil {
		return nil, badRequest("want integers a and b")
	}
	var res struct {
		Sum  int    `json:"sum"`
		User string `json:"user"`
	}
	err := s.db.QueryRow(ctx, "SELECT $1::int + $2::int, current_user", a, b).Scan(&res.Sum, &res.User)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	return res, nil
}

// redisSetGet is GET /redis?key=K&value=V: SET, GET and INCR of K's
// counter.
func (s *service) redisSetGet(ctx context.Context, r *http.Request) (any, error) {
	if s.redis == nil {
		return nil, badRequest("no REDIS_URL")
	}
	key, err := param(r, "key")
	if err != nil {
		return nil, err
	}
	if err := s.redis.Set(ctx, key, r.URL.Query().Get("value"), time.Minute).Err(); err != nil {
		return nil, fmt.Errorf("redis SET: %w", err)
	}
	var res struct {
		Value string `json:"value"`
		Count int64  `json:"count"`
	}
	if res.Value, err = s.redis.Get(ctx, key).Result(); err != nil {
		return nil, fmt.Errorf("redis GET: %w", err)
	}
	if res.Count, err = s.redis.Incr(ctx, key+":count").Result(); err != nil {
		return nil, fmt.Errorf("redis INCR: %w", err)
	}
	return res, nil
}

// tcpResult is GET /tcp's answer.
type tcpResult struct {
	Network string `json:"network"`
	Local   string `json:"local"`
	Remote  string `json:"remote"`
	// Echoed is what came back after the payload and a CloseWrite.
	Echoed string `json:"echoed"`
	// DeadlineTimeout: a read on an idle connection ended at its
	// deadline with os.ErrDeadlineExceeded, after DeadlineMS.
	DeadlineTimeout bool  `json:"deadline_timeout"`
	DeadlineMS      int64 `json:"deadline_ms"`
}

// tcpProbe is GET /tcp?addr=HOST:PORT&send=TEXT against an echo server
// that echoes until EOF: the payload comes back whole once the write side
// is shut, and a read on a second connection, which sends nothing, ends
// at its deadline.
func tcpProbe(ctx context.Context, r *http.Request) (any, error) {
	c, addr, err := dialParam(ctx, r)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	res := tcpResult{Network: c.LocalAddr().Network(), Local: c.LocalAddr().String(), Remote: c.RemoteAddr().String()}
	if _, err := io.WriteString(c, r.URL.Query().Get("send")); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		return nil, fmt.Errorf("close write: %w", err)
	}
	echoed, err := io.ReadAll(io.LimitReader(c, maxBody))
	if err != nil {
		return nil, fmt.Errorf("read the echo: %w", err)
	}
	res.Echoed = string(echoed)

	idle, err := wasinet.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer idle.Close()
	start := time.Now()
	idle.SetReadDeadline(start.Add(deadlineProbe))
	_, err = idle.Read(make([]byte, 1))
	res.DeadlineMS = time.Since(start).Milliseconds()
	res.DeadlineTimeout = errors.Is(err, os.ErrDeadlineExceeded)
	return res, nil
}

// lookup is GET /lookup?host=NAME.
func lookup(ctx context.Context, r *http.Request) (any, error) {
	host, err := param(r, "host")
	if err != nil {
		return nil, err
	}
	addrs, err := wasinet.LookupHost(ctx, host)
	if err != nil {
		return nil, err
	}
	return map[string][]string{"addrs": addrs}, nil
}

// connect is GET /connect?addr=HOST:PORT: a connection made and closed,
// what a dial costs.
func connect(ctx context.Context, r *http.Request) (any, error) {
	c, _, err := dialParam(ctx, r)
	if err != nil {
		return nil, err
	}
	remote := c.RemoteAddr().String()
	if err := c.Close(); err != nil {
		return nil, fmt.Errorf("close: %w", err)
	}
	return map[string]string{"remote": remote}, nil
}
