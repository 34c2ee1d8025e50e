package wasihttp_test

import (
	"bufio"
	"context"
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

// A request on a keep-alive connection that arrives once the listener is
// stopped is still answered (with Connection: close), and Serve then
// returns nil: the drain a host starts loses nothing.
func TestServeDrainsOnListenerStop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := echoServer()
	logs := make(chan string, 4)
	srv.ErrorLog = log.New(lineWriter(logs), "", 0)
	done := make(chan error, 1)
	go func() { done <- wasihttp.Serve(srv, ln) }()
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
func TestServeContextDrainsOnCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- wasihttp.ServeContext(ctx, echoServer(), ln) }()
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := wasihttp.Serve(echoServer(), ln); err == nil {
		t.Fatal("Serve on a closed listener = nil, want an error")
	}
}
