package wasihttp_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/guest/wasihttp"
)

// stopListening stops ln the way a host drains a guest: shutdown(SHUT_RD)
// on the listening socket, after which accept fails with EINVAL (what
// wasisock.Drained recognises) while the connections already accepted
// stay up.
func stopListening(t *testing.T, ln net.Listener) {
	t.Helper()
	raw, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = syscall.Shutdown(int(fd), syscall.SHUT_RD) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Skipf("shutdown(SHUT_RD) on a listener is not supported here: %v", serr)
	}
}

// request writes one keep-alive request on conn and reads its answer.
func request(t *testing.T, conn net.Conn, r *bufio.Reader, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://x/", strings.NewReader(body))
	if err := req.Write(conn); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(r, req)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != body {
		t.Fatalf("body %q, want %q", got, body)
	}
	return resp
}

// lineWriter sends each write (a log line) on ch.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}

func echoServer() *http.Server {
	return &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	})}
}

// modes are the two ways Serve serves: the fast path and net/http's.
var modes = []struct {
	name string
	opts []wasihttp.Option
}{{"fast", nil}, {"net-http", []wasihttp.Option{wasihttp.WithNetHTTP()}}}

// forModes runs test once per mode.
func forModes(t *testing.T, test func(t *testing.T, opts []wasihttp.Option)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { test(t, m.opts) })
	}
}

// A request on a keep-alive connection that arrives once the listener is
// stopped is still answered (with Connection: close), and Serve then
// returns nil: the drain a host starts loses nothing.
func TestServeDrainsOnListenerStop(t *testing.T) { forModes(t, testServeDrainsOnListenerStop) }

func testServeDrainsOnListenerStop(t *testing.T, opts []wasihttp.Option) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := echoServer()
	logs := make(chan string, 4)
	srv.ErrorLog = log.New(lineWriter(logs), "", 0)
	done := make(chan error, 1)
	go func() { done <- wasihttp.Serve(srv, ln, opts...) }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	request(t, conn, r, "before")
	stopListening(t, ln)
	if line := <-logs; !strings.Contains(line, "listener stopped by the host: finishing requests in flight") {
		t.Fatalf("log %q, want the drain's", line)
	}
	if resp := request(t, conn, r, "during"); !resp.Close {
		t.Errorf("answer during the drain without Connection: close")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v, want nil after a drain", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
}

// ServeContext drains when its context ends, and returns nil.
func TestServeContextDrainsOnCancel(t *testing.T) { forModes(t, testServeContextDrainsOnCancel) }

func testServeContextDrainsOnCancel(t *testing.T, opts []wasihttp.Option) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- wasihttp.ServeContext(ctx, echoServer(), ln, opts...) }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	request(t, conn, bufio.NewReader(conn), "x")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeContext = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeContext did not return after cancel")
	}
}

// Any other end of the listener is an error.
func TestServeOtherErrors(t *testing.T) {
	forModes(t, func(t *testing.T, opts []wasihttp.Option) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		if err := wasihttp.Serve(echoServer(), ln, opts...); err == nil {
			t.Fatal("Serve on a closed listener = nil, want an error")
		}
	})
}

// During a drain the fast path loses nothing either on the connections
// it handed to net/http (a request it does not serve itself, here a
// folded header line) nor on pipelined requests: every request already
// sent is answered, the last with Connection: close, and Serve returns
// nil.
func TestServeDrainsHandedAndPipelined(t *testing.T) {
	forModes(t, func(t *testing.T, opts []wasihttp.Option) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		srv := echoServer()
		done := make(chan error, 1)
		go func() { done <- wasihttp.Serve(srv, ln, opts...) }()
		dial := func() (net.Conn, *bufio.Reader) {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c, bufio.NewReader(c)
		}
		handed, hr := dial()
		io.WriteString(handed, "POST / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\nhi")
		if resp, err := http.ReadResponse(hr, nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("handed request: %v %v", resp, err)
		} else {
			io.Copy(io.Discard, resp.Body)
		}
		piped, pr := dial()
		request(t, piped, pr, "first")
		stopListening(t, ln)
		time.Sleep(50 * time.Millisecond)
		// Three requests in one write, after the drain began.
		var all strings.Builder
		for _, b := range []string{"a", "bb", "ccc"} {
			fmt.Fprintf(&all, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(b), b)
		}
		io.WriteString(piped, all.String())
		resp, err := http.ReadResponse(pr, nil)
		if err != nil {
			t.Fatalf("pipelined during the drain: %v", err)
		}
		got, _ := io.ReadAll(resp.Body)
		if string(got) != "a" || !resp.Close {
			t.Errorf("pipelined answer %q close=%v, want %q with Connection: close", got, resp.Close, "a")
		}
		if resp := request(t, handed, hr, "handed"); !resp.Close {
			t.Errorf("handed connection's answer during the drain without Connection: close")
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Serve = %v, want nil after a drain", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Serve did not return after the drain")
		}
	})
}

// srv.Shutdown, called by the guest itself, stops the fast path as it
// stops net/http's server: Serve returns, and so does Shutdown, after the
// request in flight was answered.
func TestShutdownStopsFastPath(t *testing.T) {
	forModes(t, func(t *testing.T, opts []wasihttp.Option) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		release := make(chan struct{})
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-release
			io.WriteString(w, "late")
		})}
		done := make(chan error, 1)
		go func() { done <- wasihttp.Serve(srv, ln, opts...) }()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(50 * time.Millisecond)
		shut := make(chan error, 1)
		go func() { shut <- srv.Shutdown(context.Background()) }()
		time.Sleep(50 * time.Millisecond)
		close(release)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("request in flight: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != "late" {
			t.Errorf("body %q", body)
		}
		for _, ch := range []chan error{shut, done} {
			select {
			case <-ch:
			case <-time.After(10 * time.Second):
				t.Fatal("Shutdown or Serve did not return")
			}
		}
		if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
			t.Error("listener still accepts after Shutdown")
		}
	})
}
