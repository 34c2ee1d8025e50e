// Package echo is the wasiserve echo service: an http.Handler that answers
// every request with its own body, plus a health check and a route that says
// how the process got its listener and what addresses it sees. The guest main package serves it under
// WASI; the host harness serves the very same code natively.
package echo

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"

	"github.com/wasiserve/wasiserve/guest/wasisock"
)

// DefaultContentType is the response type of a request that names none.
const DefaultContentType = "text/plain"

// Report is the JSON body of GET /listener.
type Report struct {
	// Listener says how the process obtained its listening socket.
	Listener wasisock.Info `json:"listener"`
	// GoVersion is runtime.Version() of the build that serves.
	GoVersion string `json:"go_version"`
	// GOOS and GOARCH name the build's target.
	GOOS   string `json:"goos"`
	GOARCH string `json:"goarch"`
	// RemoteAddr is the request's client address (http.Request.RemoteAddr).
	RemoteAddr string `json:"remote_addr"`
	// LocalAddr is the address its connection was accepted on
	// (http.LocalAddrContextKey), empty if unknown.
	LocalAddr string `json:"local_addr"`
}

// NewHandler returns the echo service. info is reported by GET /listener;
// logger receives per-request errors (nil discards them).
func NewHandler(info wasisock.Info, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	report := Report{Listener: info, GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /listener", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		report := report
		report.RemoteAddr = r.RemoteAddr
		if local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			report.LocalAddr = local.String()
		}
		if err := enc.Encode(report); err != nil {
			logger.Warn("write /listener", "err", err)
		}
	})
	echo := echoHandler{logger: logger}
	mux.Handle("/", echo)
	return router{mux: mux, echo: echo}
}

// router routes as mux, the ServeMux above, does; a request mux would
// give the echo ("/") without redirecting it goes there at once: routing
// in a ServeMux (cleaning and matching the path) is a tenth of an echo's
// cost on wasm.
type router struct {
	mux  *http.ServeMux
	echo echoHandler
}

func (rt router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect && r.RequestURI != "*" && echoPath(r.URL) {
		r.Pattern = "/"
		rt.echo.ServeHTTP(w, r)
		return
	}
	rt.mux.ServeHTTP(w, r)
}

// echoPath reports whether mux routes u's path, as it is, to "/": a clean
// path of unreserved characters (so its escaped form is itself) other
// than the two routes of their own.
func echoPath(u *url.URL) bool {
	p := u.Path
	if u.RawPath != "" || p == "" || p[0] != '/' || p == "/healthz" || p == "/listener" {
		return false
	}
	for i := 0; i < len(p); i++ {
		switch b := p[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '-', b == '_', b == '~':
		case b == '/':
			if i > 0 && p[i-1] == '/' {
				return false // "//"
			}
		case b == '.':
			// "/." or "/.." as a whole segment is cleaned away.
			seg := i > 0 && p[i-1] == '/'
			end := i + 1
			if end < len(p) && p[end] == '.' {
				end++
			}
			if seg && (end == len(p) || p[end] == '/') {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// echoHandler streams the request body back without buffering it whole.
type echoHandler struct {
	logger *slog.Logger
}

func (h echoHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	contentType := r.Header.Get("Content-Type")
	if contentType == "" {
		contentType = DefaultContentType
	}
	w.Header().Set("Content-Type", contentType)
	// HTTP/1 servers otherwise drain the body before the first response
	// byte, which would force whole-body buffering. HTTP/2 is always full
	// duplex and reports ErrNotSupported.
	if err := http.NewResponseController(w).EnableFullDuplex(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		h.logger.Warn("enable full duplex", "err", err)
	}
	if _, err := io.Copy(w, r.Body); err != nil {
		// The client went away, sent a broken body or was too slow (the
		// server's ReadTimeout); the status line may already be out, so
		// there is nothing better to tell it. Abort the connection: else
		// the server would answer the part it got and read what follows
		// as the next request, and a slow client would keep its
		// connection.
		h.logger.Debug("echo body", "method", r.Method, "path", r.URL.Path, "err", err)
		panic(http.ErrAbortHandler)
	}
}
