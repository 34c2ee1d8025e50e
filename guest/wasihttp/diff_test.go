package wasihttp_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/guest/wasihttp/internal/difftest"
)

// handlers are the handlers the differential tests serve, each doing
// something net/http's ResponseWriter has rules for.
var handlers = map[string]http.HandlerFunc{
	"echo": func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		io.Copy(w, r.Body)
	},
	"echo-duplex": func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		if _, err := io.Copy(w, r.Body); err != nil {
			panic(http.ErrAbortHandler)
		}
	},
	"dump": func(w http.ResponseWriter, r *http.Request) {
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range r.Header {
				if !yield(k) {
					return
				}
			}
		})
		fmt.Fprintf(w, "%s %q %q %s %d.%d host=%q cl=%d te=%q close=%v\n", r.Method, r.RequestURI, r.URL.String(), r.Proto, r.ProtoMajor, r.ProtoMinor, r.Host, r.ContentLength, r.TransferEncoding, r.Close)
		fmt.Fprintf(w, "path=%q rawpath=%q query=%q\n", r.URL.Path, r.URL.RawPath, r.URL.RawQuery)
		for _, k := range keys {
			fmt.Fprintf(w, "%s: %q\n", k, r.Header[k])
		}
		b, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "body=%q err=%v trailer=%q\n", b, err, r.Trailer)
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		_, hasSrv := r.Context().Value(http.ServerContextKey).(*http.Server)
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		fmt.Fprintf(w, "remote=%s srv=%v local=%v\n", host, hasSrv, local != nil)
	},
	"hello": func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello, world\n")
	},
	"html": func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<!DOCTYPE html><html><body>x</body></html>")
	},
	"big": func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("0123456789abcdef"), 700)) // past the 2 KiB of Content-Length
	},
	"length": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "12345")
	},
	"short-length": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "12345")
	},
	"bad-length": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "x")
		io.WriteString(w, "12345")
	},
	"status": func(w http.ResponseWriter, r *http.Request) {
		code := 200
		fmt.Sscan(r.URL.Query().Get("code"), &code)
		w.Header().Set("X-Code", fmt.Sprint(code))
		w.WriteHeader(code)
		io.WriteString(w, "body")
	},
	"header-after": func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
		w.Header().Set("X-Late", "ignored")
		io.WriteString(w, "x")
	},
	"trailers": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum, Host")
		w.Header().Add("Trailer", "X-Other")
		io.WriteString(w, "part")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Sum", "42")
		w.Header().Set("X-Other", "o")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	},
	"flush": func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "a")
		w.(http.Flusher).Flush()
		io.WriteString(w, "b")
	},
	"early-hints": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(103)
		w.WriteHeader(200)
		io.WriteString(w, "done")
	},
	"panic": func(w http.ResponseWriter, r *http.Request) {
		panic("boom")
	},
	"abort": func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	},
	"read-some": func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 3)
		io.ReadFull(r.Body, b)
		fmt.Fprintf(w, "%q", b)
	},
	"close-body": func(w http.ResponseWriter, r *http.Request) {
		r.Body.Close()
		io.WriteString(w, "closed")
	},
	"max-bytes": func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 8)
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		io.WriteString(w, "fits")
	},
	"conn-close": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	},
	"keep-alive-10": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		w.Header().Set("Connection", "keep-alive")
		io.WriteString(w, "ok")
	},
	"identity": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Transfer-Encoding", "identity")
		io.WriteString(w, "streamed")
	},
	"te-chunked": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Transfer-Encoding", "chunked")
		io.WriteString(w, "chunked by hand")
	},
	"no-date": func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"] = nil
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Newline", "a\r\nb")
		io.WriteString(w, "x")
	},
	"error": func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusBadRequest)
	},
	"redirect": func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere?a=1", http.StatusFound)
	},
	"hijack": func(w http.ResponseWriter, r *http.Request) {
		c, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		defer c.Close()
		rest, _ := rw.Reader.Peek(rw.Reader.Buffered())
		fmt.Fprintf(rw, "HTTP/1.1 101 Switched\r\n\r\nbuffered=%q\n", rest)
		rw.Flush()
	},
	"write-after-hijack": func(w http.ResponseWriter, r *http.Request) {
		c, _, _ := w.(http.Hijacker).Hijack()
		_, err := w.Write([]byte("x"))
		fmt.Fprintf(c, "err=%v\n", err)
		c.Close()
	},
	"done": func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			fmt.Fprintln(w, "cancelled", r.Context().Err())
		case <-time.After(200 * time.Millisecond):
			fmt.Fprintln(w, "waited")
		}
	},
	"head-aware": func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "HEAD" {
			return
		}
		io.WriteString(w, "body")
	},
	"mux": http.NewServeMux().ServeHTTP,
}

func init() {
	m := http.NewServeMux()
	m.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "item %s pattern %q", r.PathValue("id"), r.Pattern)
	})
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "root") })
	handlers["mux"] = m.ServeHTTP
}

// router serves every handler of handlers under /NAME.
func router() http.Handler {
	mux := http.NewServeMux()
	for name, h := range handlers {
		mux.Handle("/"+name, h)
		mux.Handle("/"+name+"/", http.StripPrefix("/"+name, h))
	}
	return mux
}

func routerServer() *http.Server {
	return &http.Server{Handler: router(), MaxHeaderBytes: 2048}
}

// rawCases are request bytes sent to both servers: ordinary requests for
// each handler, and the shapes the fast path hands to net/http.
var rawCases = []struct {
	name string
	ex   difftest.Exchange
}{}

func req(method, path, extra, body string) string {
	return method + " " + path + " HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n" + body
}

func init() {
	add := func(name string, halfClose bool, chunks ...string) {
		rawCases = append(rawCases, struct {
			name string
			ex   difftest.Exchange
		}{name, difftest.Exchange{HalfClose: halfClose, Chunks: chunks}})
	}
	for name := range handlers {
		add(name+"/get", true, req("GET", "/"+name, "", ""))
		add(name+"/head", true, req("HEAD", "/"+name, "", ""))
		add(name+"/post", true, req("POST", "/"+name, "Content-Length: 11\r\nContent-Type: text/x-test\r\n", "hello world"))
		add(name+"/chunked", true, req("POST", "/"+name, "Transfer-Encoding: chunked\r\n", "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n"))
		add(name+"/http10", true, "GET /"+name+" HTTP/1.0\r\nHost: x\r\n\r\n")
		add(name+"/http10-keepalive", false, "GET /"+name+" HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
		add(name+"/keepalive-open", false, req("GET", "/"+name, "", ""))
		add(name+"/pipelined", true, req("POST", "/"+name, "Content-Length: 3\r\n", "abc")+req("GET", "/"+name, "", "")+req("GET", "/"+name, "Connection: close\r\n", ""))
		if !strings.Contains(name, "hijack") { // whether the body is there before the close is the client's timing
			add(name+"/expect", false, req("POST", "/"+name, "Content-Length: 4\r\nExpect: 100-continue\r\n", ""), "body")
		}
	}
	add("status/codes", true,
		req("GET", "/status?code=204", "", "")+req("GET", "/status?code=304", "", "")+
			req("GET", "/status?code=404", "", "")+req("GET", "/status?code=599", "", "")+
			req("GET", "/status?code=999", "", "")+req("HEAD", "/status?code=200", "", ""))
	add("big-unread-body", true, req("POST", "/hello", "Content-Length: 300000\r\n", strings.Repeat("x", 300000)))
	add("unread-body", true, req("POST", "/hello", "Content-Length: 5000\r\n", strings.Repeat("x", 5000))+req("GET", "/hello", "", ""))
	add("max-bytes-over", true, req("POST", "/max-bytes", "Content-Length: 20\r\n", strings.Repeat("y", 20))+req("GET", "/hello", "", ""))
	add("max-bytes-fits", true, req("POST", "/max-bytes", "Content-Length: 4\r\n", "yyyy")+req("GET", "/hello", "", ""))
	add("short-body-eof", true, req("POST", "/echo", "Content-Length: 10\r\n", "abc"))
	add("bad-chunk", true, req("POST", "/dump", "Transfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n")+req("GET", "/hello", "", ""))
	add("chunk-no-trailer-end", true, req("POST", "/dump", "Transfer-Encoding: chunked\r\n", "3\r\nabc\r\n0\r\n"))
	add("leading-crlf-after-post", true, req("POST", "/echo", "Content-Length: 2\r\n", "ab")+"\r\n"+req("GET", "/hello", "", ""))
	add("query-and-escapes", true, req("GET", "/dump/a%20b/c%2Fd?x=1&y=%41;z#frag", "", ""))
	add("dot-segments", true, req("GET", "/dump/../etc/./passwd", "", ""))
	add("mux-pattern", true, req("GET", "/mux/items/42", "", "")+req("POST", "/mux/items/42", "", "")+req("GET", "/mux/items/", "", ""))
	add("many-headers", true, req("GET", "/dump", "A: 1\r\nb: 2\r\nA: 3\r\nx-lower: v\r\nSPACES:   padded \t \r\nEmpty:\r\nPragma: no-cache\r\nConnection: keep-alive, Upgrade-Insecure\r\nUTF8: caf\xc3\xa9\r\n", ""))
	add("connection-close", true, req("GET", "/hello", "Connection: close\r\n", "")+req("GET", "/hello", "", ""))
	add("connection-close-token", true, req("GET", "/hello", "Connection: foo, CLOSE\r\n", "")+req("GET", "/hello", "", ""))
	add("http10-post", true, "POST /echo HTTP/1.0\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
	add("http10-post-keepalive", false, "POST /echo HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc")
	// Handed to net/http.
	add("expect-other", true, req("POST", "/echo", "Content-Length: 3\r\nExpect: something\r\n", "abc"))
	add("cl-and-te", true, req("POST", "/dump", "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", "3\r\nabc\r\n0\r\n\r\n")+req("GET", "/hello", "", ""))
	add("two-cl", true, req("POST", "/dump", "Content-Length: 3\r\nContent-Length: 4\r\n", "abcd"))
	add("same-two-cl", true, req("POST", "/dump", "Content-Length: 3\r\nContent-Length: 3\r\n", "abc"))
	add("te-gzip", true, req("POST", "/dump", "Transfer-Encoding: gzip\r\n", "abc"))
	add("te-two", true, req("POST", "/dump", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"))
	add("te-http10", true, "POST /dump HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	add("cl-plus", true, req("POST", "/dump", "Content-Length: +3\r\n", "abc"))
	add("cl-empty", true, req("POST", "/dump", "Content-Length: \r\n", "abc"))
	add("obs-fold", true, req("GET", "/dump", "X-Folded: a\r\n b\r\n", ""))
	add("bare-lf", true, "GET /dump HTTP/1.1\nHost: x\n\n")
	add("lone-cr", true, "GET /dump HTTP/1.1\r\nHost: x\rY: z\r\n\r\n")
	add("no-host", true, "GET /dump HTTP/1.1\r\n\r\n")
	add("two-hosts", true, "GET /dump HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
	add("bad-host", true, "GET /dump HTTP/1.1\r\nHost: a b\r\n\r\n")
	add("host-comma", true, "GET /dump HTTP/1.1\r\nHost: a,b\r\n\r\n")
	add("absolute-uri", true, "GET http://example.com/dump?x=1 HTTP/1.1\r\nHost: other\r\n\r\n")
	add("options-star", true, "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
	add("connect", true, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
	add("upgrade", true, req("GET", "/dump", "Connection: Upgrade\r\nUpgrade: websocket\r\n", ""))
	add("trailer-declared", true, req("POST", "/dump", "Transfer-Encoding: chunked\r\nTrailer: X-T\r\n", "3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"))
	add("h2c-preface", true, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	add("http2-line", true, "GET /dump HTTP/2.0\r\nHost: x\r\n\r\n")
	add("http09", true, "GET /dump\r\n\r\n")
	add("bad-version", true, "GET /dump HTTP/1.x\r\nHost: x\r\n\r\n")
	add("lower-version", true, "GET /dump http/1.1\r\nHost: x\r\n\r\n")
	add("space-in-uri", true, "GET /du mp HTTP/1.1\r\nHost: x\r\n\r\n")
	add("bad-method", true, "G(T /dump HTTP/1.1\r\nHost: x\r\n\r\n")
	add("ctl-in-value", true, req("GET", "/dump", "X: a\x01b\r\n", ""))
	add("space-before-colon", true, req("GET", "/dump", "X : v\r\n", ""))
	add("empty-name", true, req("GET", "/dump", ": v\r\n", ""))
	add("garbage", true, "\x00\x01\x02 garbage\r\n\r\n")
	add("empty-line-first", true, "\r\n"+req("GET", "/dump", "", ""))
	add("utf8-path", true, "GET /dump/caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n")
	add("head-too-big-for-fast", true, req("GET", "/dump", "X-Big: "+strings.Repeat("b", 1800)+"\r\n", ""))
	add("head-over-limit", true, req("GET", "/dump", "X-Big: "+strings.Repeat("b", 8000)+"\r\n", ""))
	add("second-request-falls-back", true, req("GET", "/hello", "", "")+"GET /dump HTTP/1.1\nHost: x\n\n")
	add("fallback-then-more", true, req("GET", "/dump", "X-Folded: a\r\n b\r\n", "")+req("GET", "/hello", "", ""))
	add("truncated-line", true, "GET /trunc")
	add("truncated-head", true, "GET /dump HTTP/1.1\r\nHost: x\r\n")
	add("short-then-eof", true, req("GET", "/hello", "", "")+"GE")
	add("post-then-short", true, req("POST", "/echo", "Content-Length: 1\r\n", "a")+"\r\nGE")
}

// Every case of rawCases gets the same bytes back from the fast path as
// from net/http's server (Date masked), and the connection ends the same
// way (closed, reset, or left open).
func TestFastPathMatchesNetHTTP(t *testing.T) {
	p := difftest.Start(t, routerServer)
	for _, tc := range rawCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p.Same(t, tc.ex)
		})
	}
}

// Timeouts cut slow clients on the fast path as on net/http's: a head
// trickled past ReadHeaderTimeout, a body past ReadTimeout, an idle
// connection past IdleTimeout (give or take the fast path's slack).
func TestFastPathTimeouts(t *testing.T) {
	p := difftest.Start(t, func() *http.Server {
		return &http.Server{Handler: router(), ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 600 * time.Millisecond, IdleTimeout: 400 * time.Millisecond}
	})
	cases := []struct {
		name  string
		ex    difftest.Exchange
		after time.Duration // the server should have closed by then
	}{
		{"slow-head", difftest.Exchange{Chunks: []string{"GET /hello HTTP/1.1\r\n", "Host: x\r\n", "X: y\r\n", "\r\n"}, Pause: 250 * time.Millisecond, Quiet: 3 * time.Second}, time.Second},
		{"slow-body", difftest.Exchange{Chunks: []string{req("POST", "/echo-duplex", "Content-Length: 4\r\n", "a"), "b", "c", "d"}, Pause: 250 * time.Millisecond, Quiet: 3 * time.Second}, 1500 * time.Millisecond},
		{"idle", difftest.Exchange{Chunks: []string{req("GET", "/hello", "", "")}, Quiet: 3 * time.Second}, time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, addr := range []string{p.Ref, p.Fast} {
				start := time.Now()
				got := difftest.RoundTrip(t, addr, tc.ex)
				if took := time.Since(start); !strings.HasSuffix(got, "[closed]") || took > tc.after+time.Second {
					t.Errorf("%s: %q after %v, want closed within %v", addr, got, took, tc.after)
				}
			}
			p.Same(t, tc.ex)
		})
	}
}
