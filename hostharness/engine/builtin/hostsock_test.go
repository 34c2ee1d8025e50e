package builtin_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasiserve/wasiserve/internal/enginetest"

	"github.com/wasiserve/wasiserve/hostharness/engine"
)

// socketEngines are the embedded engines whose host owns the sockets
// (package hostsock), whose socket layer these tests exercise beyond the
// shared table-driven ones.
var socketEngines = engines.With(engine.HostListener)

func TestKeepAlive(t *testing.T) {
	for _, name := range socketEngines {
		t.Run(name, func(t *testing.T) {
			inst := serve(t, newEngine(t, name), enginetest.Echo.Path(t), engine.Config{})
			client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			reused := 0
			const requests = 20
			for i := range requests {
				body := fmt.Sprintf("request %d", i)
				trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
					if info.Reused {
						reused++
					}
				}}
				req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace),
					http.MethodPost, inst.URL(), strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(got) != body {
					t.Fatalf("request %d: %q, %v; want %q", i, got, err, body)
				}
			}
			if reused != requests-1 {
				t.Errorf("%d of %d requests reused the connection, want all after the first", reused, requests)
			}
		})
	}
}

func TestConcurrentConnections(t *testing.T) {
	const conns, perConn = 64, 5
	for _, name := range socketEngines {
		t.Run(name, func(t *testing.T) {
			inst := serve(t, newEngine(t, name), enginetest.Echo.Path(t), engine.Config{})
			var wg sync.WaitGroup
			errs := make(chan error, conns)
			for c := range conns {
				wg.Go(func() {
					// One transport per goroutine: 64 distinct connections.
					client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{}}
					defer client.CloseIdleConnections()
					for r := range perConn {
						body := bytes.Repeat([]byte(fmt.Sprintf("conn %d request %d;", c, r)), 100*(r+1))
						resp, err := client.Post(inst.URL(), "application/octet-stream", bytes.NewReader(body))
						if err != nil {
							errs <- fmt.Errorf("conn %d request %d: %w", c, r, err)
							return
						}
						got, err := io.ReadAll(resp.Body)
						resp.Body.Close()
						if err != nil || !bytes.Equal(got, body) {
							errs <- fmt.Errorf("conn %d request %d: %d bytes back (%v), want %d byte-exact", c, r, len(got), err, len(body))
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// TestClientAbort drops connections in the middle of a request body and
// in the middle of a large response, then checks that the guest serves on.
func TestClientAbort(t *testing.T) {
	for _, name := range socketEngines {
		t.Run(name, func(t *testing.T) {
			inst := serve(t, newEngine(t, name), enginetest.Echo.Path(t), engine.Config{})
			addr := strings.TrimPrefix(inst.URL(), "http://")
			dial := func() *net.TCPConn {
				conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				conn.SetDeadline(time.Now().Add(30 * time.Second))
				return conn.(*net.TCPConn)
			}
			// Half a body, then a reset.
			conn := dial()
			fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 1<<20)
			conn.Write(make([]byte, 100<<10))
			conn.SetLinger(0)
			conn.Close()
			// A whole 4 MiB body, then a close before reading the echo.
			conn = dial()
			fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 4<<20)
			conn.Write(make([]byte, 4<<20))
			status, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil || !strings.Contains(status, "200") {
				t.Fatalf("status line %q, %v", status, err)
			}
			conn.Close()
			for i := range 3 {
				resp, got := post(t, inst.URL(), "text/plain", []byte("still here"))
				if resp.StatusCode != 200 || string(got) != "still here" {
					t.Fatalf("request %d after the aborts: %d %q", i, resp.StatusCode, got)
				}
			}
		})
	}
}

// TestBlockingAccept serves a guest that keeps its listener and
// connections blocking (plain accept, read and write, as a guest without a
// netpoller does): each call waits in the host until it can proceed.
func TestBlockingAccept(t *testing.T) {
	for _, name := range socketEngines {
		t.Run(name, func(t *testing.T) {
			inst := serve(t, newEngine(t, name), enginetest.FD3.Path(t), engine.Config{Env: []string{"BLOCKING_ACCEPT=2"}})
			for i := range 2 {
				resp, got := get(t, inst.URL())
				if resp.StatusCode != 200 || string(got) != "blocked" {
					t.Fatalf("request %d: %d %q, want 200 \"blocked\"", i, resp.StatusCode, got)
				}
			}
			select {
			case <-inst.Done():
				if err := inst.Wait(); err != nil {
					t.Fatalf("guest after its two connections: %v, want a clean exit", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the guest did not exit after its two connections")
			}
		})
	}
}

// TestMaxConns holds two keep-alive connections open under a limit of two,
// with reclaiming off: a third client must wait (in the kernel backlog,
// not refused) until one of the first two goes away, and is then served.
// (With reclaiming on, the host closes an idle one for it: see
// TestIdleKeepAliveReclaimed.)
func TestMaxConns(t *testing.T) {
	for _, name := range socketEngines {
		t.Run(name, func(t *testing.T) {
			inst := serve(t, newEngine(t, name), enginetest.Echo.Path(t), engine.Config{MaxConns: 2, Reclaim: engine.Reclaim{Off: true}})
			request := func(c net.Conn, body string) (string, error) {
				deadline := time.Now().Add(20 * time.Second)
				c.SetWriteDeadline(deadline)
				fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
				return readEchoBy(c, deadline)
			}
			var held []net.Conn
			for i := range 2 {
				c, err := net.Dial("tcp", inst.Addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if got, err := request(c, fmt.Sprint("held ", i)); err != nil || got != fmt.Sprint("held ", i) {
					t.Fatalf("connection %d: %q, %v", i, got, err)
				}
				held = append(held, c)
			}
			third, err := net.Dial("tcp", inst.Addr) // completes in the backlog
			if err != nil {
				t.Fatal(err)
			}
			defer third.Close()
			fmt.Fprintf(third, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nthird")
			third.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if n, err := third.Read(make([]byte, 1)); n > 0 || !isTimeout(err) {
				t.Fatalf("a third connection over the limit of 2 was served (read %d bytes, %v)", n, err)
			}
			held[0].Close()
			third.SetReadDeadline(time.Now().Add(20 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(third), nil)
			if err != nil {
				t.Fatalf("third connection after one closed: %v", err)
			}
			got, _ := io.ReadAll(resp.Body)
			if string(got) != "third" {
				t.Fatalf("third connection answered %q", got)
			}
		})
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestMaxConnsRefused(t *testing.T) {
	for _, name := range engines.EmbeddedNames() {
		if capabilitiesOf(name).Has(engine.HostListener) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			err := runToExit(t, name, enginetest.Echo.Path(t), engine.Config{MaxConns: 4})
			wantUnsupported(t, err, engine.ConnLimit, "MaxConns")
		})
	}
}

// TestInstanceStats checks the counters an engine whose host owns the
// sockets reports: connections accepted and open, bytes both ways, the
// guest's linear memory, and the final values once the guest stopped;
// engines that bind their socket themselves report none.
func TestInstanceStats(t *testing.T) {
	for _, name := range engines.EmbeddedNames() {
		t.Run(name, func(t *testing.T) {
			inst := serve(t, newEngine(t, name), enginetest.Echo.Path(t), engine.Config{})
			if _, ok := inst.Stats(); !capabilitiesOf(name).Has(engine.HostListener) {
				if ok {
					t.Errorf("%s reports socket counters, but its host does not own the sockets", name)
				}
				return
			}
			conn, err := net.Dial("tcp", strings.TrimPrefix(inst.URL(), "http://"))
			if err != nil {
				t.Fatal(err)
			}
			const body = "count me"
			fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			// The guest counts a send once its call returns, which may be
			// just after the client has the answer.
			st, ok := inst.Stats()
			for deadline := time.Now().Add(5 * time.Second); st.BytesWritten == 0 && time.Now().Before(deadline); st, ok = inst.Stats() {
				time.Sleep(10 * time.Millisecond)
			}
			if !ok || st.AcceptedConns != 1 || st.OpenConns != 1 || st.BytesRead < uint64(len(body)) || st.BytesWritten < uint64(len(body)) || st.MemoryBytes < 1<<20 {
				t.Errorf("stats with one connection open: %+v (ok %v)", st, ok)
			}
			conn.Close()
			if err := inst.Stop(); err != nil {
				t.Fatal(err)
			}
			if st, _ := inst.Stats(); st.AcceptedConns != 1 || st.OpenConns != 0 {
				t.Errorf("stats after the guest stopped: %+v, want 1 accepted, 0 open", st)
			}
		})
	}
}

// wantUnsupported checks that err refuses a setting for lack of a
// capability; which engines have it is the Set's to say (wasiserve
// names them).
func wantUnsupported(t *testing.T, err error, c engine.Capability, setting string) {
	t.Helper()
	var unsupported *engine.UnsupportedError
	if !errors.As(err, &unsupported) || unsupported.Need.Capability != c || unsupported.Need.Setting != setting {
		t.Errorf("%v, want an *engine.UnsupportedError: %s needs %s", err, setting, c)
	}
}
