// Package difftest serves one handler twice, with net/http's server and
// with wasihttp's fast path, and compares their answers to the same bytes
// byte for byte (Date masked): the differential tests and the fuzz target
// of package wasihttp, and the framework checks, use it.
package difftest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/guest/wasihttp"
)

// Pair is one handler served twice on 127.0.0.1: by net/http's server
// (wasihttp.WithNetHTTP) at Ref and by the fast path at Fast.
type Pair struct {
	Ref, Fast string
}

// Start serves newServer() twice, each from wasihttp.ServeContext on a
// listener of its own, and stops both when t ends.
func Start(t testing.TB, newServer func() *http.Server) *Pair {
	t.Helper()
	p := &Pair{}
	for i, opts := range [][]wasihttp.Option{{wasihttp.WithNetHTTP()}, nil} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := newServer()
		if srv.ErrorLog == nil {
			srv.ErrorLog = log.New(io.Discard, "", 0)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- wasihttp.ServeContext(ctx, srv, ln, opts...) }()
		t.Cleanup(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(40 * time.Second):
				t.Errorf("server %d did not stop", i)
			}
		})
		if i == 0 {
			p.Ref = ln.Addr().String()
		} else {
			p.Fast = ln.Addr().String()
		}
	}
	return p
}

// Exchange is how a raw request is sent and its answer read.
type Exchange struct {
	// HalfClose closes the write side after the request (the server then
	// sees EOF); otherwise the answer ends after Quiet.
	HalfClose bool
	// Chunks are written one after the other, Pause between them.
	Chunks []string
	Pause  time.Duration
	// Quiet is how long a silent server is waited for (default 300 ms).
	Quiet time.Duration
}

var dateRE = regexp.MustCompile(`(?m)^Date: [A-Za-z]{3}, \d\d [A-Za-z]{3} \d{4} \d\d:\d\d:\d\d GMT\r$`)

// RoundTrip sends ex to addr and returns every byte the server wrote
// until it closed (or went quiet), Date values masked, and how the
// connection ended: "[closed]", "[reset]" or "[open]".
func RoundTrip(t testing.TB, addr string, ex Exchange) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		for i, ch := range ex.Chunks {
			if i > 0 && ex.Pause > 0 {
				time.Sleep(ex.Pause)
			}
			if _, err := io.WriteString(c, ch); err != nil {
				return
			}
		}
		if ex.HalfClose {
			c.(*net.TCPConn).CloseWrite()
		}
	}()
	var out bytes.Buffer
	buf := make([]byte, 64<<10)
	end := "closed"
	deadline := time.Now().Add(10 * time.Second)
	for {
		wait := ex.Quiet
		if wait == 0 {
			wait = 300 * time.Millisecond
		}
		quiet := time.Now().Add(wait)
		if ex.HalfClose {
			quiet = deadline
		}
		c.SetReadDeadline(quiet)
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				end = "open"
			case errors.Is(err, io.EOF):
			default:
				end = "reset"
			}
			break
		}
	}
	return dateRE.ReplaceAllString(out.String(), "Date: X\r") + "\n[" + end + "]"
}

// Same sends ex to both servers of p and fails t where the answers
// differ.
func (p *Pair) Same(t testing.TB, ex Exchange) {
	t.Helper()
	want := RoundTrip(t, p.Ref, ex)
	got := RoundTrip(t, p.Fast, ex)
	if got != want {
		t.Errorf("fast path answered\n%q\nnet/http answered\n%q", got, want)
	}
}
